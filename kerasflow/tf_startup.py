"""Quiet TensorFlow start-up for the command line.

TensorFlow 2.21 logs through absl before absl is initialized, so
TF_CPP_MIN_LOG_LEVEL no longer hides its start-up lines (oneDNN, CPU
features, `cudart_stub`, `cuInit ... UNKNOWN ERROR (303)` on machines without
a GPU): a newcomer reads them as errors. `install()` makes the first
`import tensorflow` run with file descriptor 2 captured, initializes the
devices inside the same window (where `cuInit` logs), and writes back every
captured line that is not start-up noise. TF_CPP_MIN_LOG_LEVEL=0 keeps them all.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\)|I0000 |To enable the following instructions"
    r"|[EW]0000 .*(cuda|cuInit|cudart|TensorRT|cuDNN|cuFFT|cuBLAS))"
)


class _QuietImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once; the real import below finds the package normally
        _import_quietly()
        return importlib.util.find_spec(name)  # already in sys.modules: import returns it


def _import_quietly() -> None:
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow

            tensorflow.config.list_physical_devices()  # device start-up logs (cuInit) here, not at the first op
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode("utf-8", "replace").splitlines()
                    if not _NOISE.match(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")


def install() -> None:
    """Quiet the first `import tensorflow` of this process (not when TF_CPP_MIN_LOG_LEVEL is 0)."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0" or "tensorflow" in sys.modules:
        return
    if not any(isinstance(f, _QuietImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietImport())
