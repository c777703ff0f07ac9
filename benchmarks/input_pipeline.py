"""Input pipeline throughput: a generated 1M-row CSV (8 numeric features, a
binary label) read through kerasflow's pipeline vs the same data from
in-memory tensors, both doing the same work per epoch: every row once, in a
new random order, batched, prefetched.

    python benchmarks/input_pipeline.py [--rows 1000000] [--batch-size 256] [--epochs 3] [--quick]

The baseline is what the tf.data guide has a user write for arrays in memory:
`from_tensor_slices((x, y)).shuffle(len(x)).batch(b).prefetch(AUTOTUNE)`.
Timed: the best of N full epochs over the training split, after one warm-up
epoch (the steady state a training loop sees), epochs of the pipelines
interleaved. Prints examples/s and the ratios kerasflow / in-memory:
in memory (`stream: false`, goal >= 0.90) and `stream: true` (goal >= 0.5),
with its parsed blocks cached (the default) and with `cache: false` (tf.data
reads and parses the CSV every epoch). Loading (CSV parse, split,
stats) is reported separately. `--quick`: 200k rows, 2 epochs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FEATURES = 8


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    y = (x @ rng.normal(size=FEATURES) > 0).astype(np.int64)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(FEATURES)])
    frame["label"] = y
    frame.to_csv(path, index=False, float_format="%.6g")


def spec_for(path: Path, batch_size: int, stream: bool, cache: bool = True):
    from kerasflow.spec.loader import load_spec_dict

    data = {
        "cache": cache,
        "source": {"type": "csv", "path": str(path), "stream": stream},
        "features": {"x": {"type": "numeric", "shape": [FEATURES], "normalize": True,
                           "column": [f"x{i}" for i in range(FEATURES)]}},
        "target": {"name": "label", "type": "binary"},
        "split": {"validation": 0.0, "test": 0.0},
        "batch_size": batch_size,
    }
    raw = {"kerasflow": 1, "name": "bench", "data": data,
           "model": {"sequential": [{"layer": "dense", "units": 1}]},
           "training": {"loss": "binary_crossentropy", "stages": [{"name": "main", "epochs": 1}]}}
    return load_spec_dict(raw).spec


def epoch_rate(ds) -> float:
    """Examples per second over one full epoch, consumed in the graph as `fit`
    does (a Python loop over batches would time Python, not the pipeline)."""
    import tensorflow as tf

    start = time.perf_counter()
    count = int(ds.reduce(tf.constant(0, tf.int64), lambda n, batch: n + tf.shape(batch[1]["label"], tf.int64)[0]))
    return count / (time.perf_counter() - start)


def best_rates(pipelines: dict, epochs: int) -> dict[str, float]:
    """Best epoch of each pipeline, epochs interleaved so that load from other
    processes hits every pipeline alike; one warm-up epoch each first."""
    for ds in pipelines.values():
        epoch_rate(ds)
    rates = {name: 0.0 for name in pipelines}
    for _ in range(epochs):
        for name, ds in pipelines.items():
            rates[name] = max(rates[name], epoch_rate(ds))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="200k rows, 2 epochs")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.epochs = min(args.rows, 200_000), min(args.epochs, 2)

    import tensorflow as tf

    from kerasflow.data.pipeline import prepare_data

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "numbers.csv"
        write_csv(path, args.rows)
        size_mb = path.stat().st_size / 1e6

        start = time.perf_counter()
        prepared = prepare_data(spec_for(path, args.batch_size, stream=False))
        load_s = time.perf_counter() - start
        features, targets = prepared.arrays("train")
        n = len(targets["label"])
        baseline = (tf.data.Dataset.from_tensor_slices((features, targets))
                    .shuffle(n, seed=0, reshuffle_each_iteration=True)
                    .batch(args.batch_size).prefetch(tf.data.AUTOTUNE))
        unshuffled = tf.data.Dataset.from_tensor_slices((features, targets)).batch(args.batch_size)

        streamed = prepare_data(spec_for(path, args.batch_size, stream=True)).train
        parsed = prepare_data(spec_for(path, args.batch_size, stream=True, cache=False)).train
        rates = best_rates({"base": baseline, "ours": prepared.train, "stream": streamed, "parsed": parsed,
                            "bound": unshuffled}, args.epochs)
        base, ours = rates["base"], rates["ours"]

    print(f"rows={args.rows:,} csv={size_mb:.0f} MB batch_size={args.batch_size} epochs={args.epochs}")
    print(f"kerasflow load (parse, split, stats): {load_s:.2f} s")
    print(f"in-memory tensors, shuffled (the baseline):   {base:,.0f} examples/s")
    print(f"in-memory tensors, unshuffled (no shuffle):   {rates['bound']:,.0f} examples/s")
    print(f"kerasflow stream: false (in memory):          {ours:,.0f} examples/s")
    print(f"kerasflow stream: true (parsed blocks cached): {rates['stream']:,.0f} examples/s")
    print(f"kerasflow stream: true, cache: false (CSV read and parsed every epoch): {rates['parsed']:,.0f} examples/s")
    print(f"ratio kerasflow in memory / baseline: {ours / base:.2f} (goal >= 0.90); "
          f"/ unshuffled: {ours / rates['bound']:.2f}")
    print(f"ratio kerasflow stream / baseline:    {rates['stream'] / base:.2f} cached, "
          f"{rates['parsed'] / base:.2f} parsing every epoch (goal >= 0.5); "
          f"/ unshuffled: {rates['stream'] / rates['bound']:.2f}, {rates['parsed'] / rates['bound']:.2f}")


if __name__ == "__main__":
    main()
