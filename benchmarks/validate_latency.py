"""`kerasflow validate` wall time divided by `python -c "import tensorflow"`,
both measured here, in fresh processes, interleaved. Goal: ratio <= 0.05.

    python benchmarks/validate_latency.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

SPEC = Path(__file__).resolve().parents[1] / "tests" / "specs" / "valid_mlp.yaml"


def _wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--spec", default=str(SPEC))
    args = parser.parse_args()
    validate_cmd = [sys.executable, "-m", "kerasflow.cli", "validate", args.spec]
    tf_cmd = [sys.executable, "-c", "import tensorflow"]
    _wall(tf_cmd)  # warm the page cache for both before measuring
    _wall(validate_cmd)
    v_times, tf_times = [], []
    for _ in range(args.repeats):
        v_times.append(_wall(validate_cmd))
        tf_times.append(_wall(tf_cmd))
    v, t = statistics.median(v_times), statistics.median(tf_times)
    print(f"kerasflow validate: median {v:.3f} s over {args.repeats} runs")
    print(f"import tensorflow:  median {t:.3f} s over {args.repeats} runs")
    print(f"ratio validate / import tensorflow = {v / t:.3f} (goal <= 0.05)")


if __name__ == "__main__":
    main()
