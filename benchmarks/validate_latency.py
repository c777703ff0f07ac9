"""`kerasflow validate` wall time divided by `python -c "import tensorflow"`,
both measured here, in fresh processes, interleaved. Goal: ratio <= 0.05.

    python benchmarks/validate_latency.py [--repeats 5]

Both run with Python's bytecode cache, as installed packages do: TensorFlow's
`.pyc` files were written when pip installed it, so with PYTHONDONTWRITEBYTECODE
set (some sandboxes set it) an editable kerasflow would recompile its ~30
modules on every run while TensorFlow never does. The warm-up run writes
kerasflow's cache (`__pycache__/`, git-ignored). `--env-as-is` keeps
PYTHONDONTWRITEBYTECODE (kerasflow is then compiled on every run only if no
`__pycache__/` is left from an earlier run).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SPEC = Path(__file__).resolve().parents[1] / "tests" / "specs" / "valid_mlp.yaml"


def _wall(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--spec", default=str(SPEC))
    parser.add_argument("--env-as-is", action="store_true", help="Keep PYTHONDONTWRITEBYTECODE if it is set.")
    args = parser.parse_args()
    env = dict(os.environ)
    if not args.env_as_is:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    validate_cmd = [sys.executable, "-m", "kerasflow.cli", "validate", args.spec]
    tf_cmd = [sys.executable, "-c", "import tensorflow"]
    _wall(tf_cmd, env)  # warm the page cache (and bytecode cache) for both before measuring
    _wall(validate_cmd, env)
    v_times, tf_times = [], []
    for _ in range(args.repeats):
        v_times.append(_wall(validate_cmd, env))
        tf_times.append(_wall(tf_cmd, env))
    v, t = statistics.median(v_times), statistics.median(tf_times)
    print(f"kerasflow validate: median {v:.3f} s over {args.repeats} runs")
    print(f"import tensorflow:  median {t:.3f} s over {args.repeats} runs")
    kept = " PYTHONDONTWRITEBYTECODE kept" if env.get("PYTHONDONTWRITEBYTECODE") else ""
    print(f"ratio validate / import tensorflow = {v / t:.3f} (goal <= 0.05){kept}")


if __name__ == "__main__":
    main()
