"""Wall time of `kerasflow train` divided by an equivalent hand-written Keras
script: the seed MLP (64 -> 128 ReLU -> 64 ReLU -> 10 softmax) on scikit-learn
digits, same split sizes, normalization, optimizer, batch size, epochs and
seed; both fit with validation each epoch, evaluate on the test split and save
the model. Whole fresh processes, interleaved (the order alternates per pair).
Goal: median ratio <= 1.05.

    python benchmarks/overhead.py [--pairs 5] [--epochs 20] [--tracking]

`--tracking` leaves MLflow on in kerasflow (a fresh sqlite store per run) to
show its cost; by default it is off, since the baseline logs nothing.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SPEC = """\
kerasflow: 1
name: overhead-mlp
extends: [{repo}/specs/models/digits_mlp.yaml]
seed: 42
data:
  source: {{type: sklearn, name: digits}}
  features:
    pixels: {{type: numeric, shape: [64], normalize: true}}
  target: {{name: label, type: category, num_classes: 10}}
  split: {{validation: 0.1, test: 0.1, stratify: true}}
  batch_size: {batch}
training:
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
  stages:
    - name: main
      epochs: {epochs}
      optimizer: {{type: adam, learning_rate: 0.001}}
tracking: {{enabled: {tracking}}}
"""

# What a user would write by hand for the same experiment.
BASELINE = """\
import sys
import keras
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

epochs, batch, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
keras.utils.set_random_seed(42)
digits = load_digits()
x, y = digits.data.astype("float32"), digits.target.astype("int32")
x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=0.1, stratify=y, random_state=42)
x_train, x_val, y_train, y_val = train_test_split(x_rest, y_rest, test_size=0.1 / 0.9, stratify=y_rest, random_state=42)

norm = keras.layers.Normalization(axis=-1)
norm.adapt(x_train)
inputs = keras.Input((64,), name="pixels")
h = keras.layers.Dense(128, activation="relu")(norm(inputs))
h = keras.layers.Dense(64, activation="relu")(h)
outputs = keras.layers.Dense(10, activation="softmax")(h)
model = keras.Model(inputs, outputs)
model.compile(keras.optimizers.Adam(0.001), "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, batch_size=batch, epochs=epochs, validation_data=(x_val, y_val), verbose=0)
print(model.evaluate(x_test, y_test, verbose=0, return_dict=True))
model.save(out + "/model.keras")
"""


def _run(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _kerasflow_cmd(spec: Path, run_dir: Path) -> list[str]:
    """The `kerasflow train` verb when the CLI has it, else the same call through Python."""
    probe = subprocess.run([sys.executable, "-m", "kerasflow.cli", "train", "--help"], capture_output=True)
    if probe.returncode == 0:
        return [sys.executable, "-m", "kerasflow.cli", "train", str(spec), "--run-dir", str(run_dir), "--quiet"]
    code = ("from kerasflow.spec.loader import load_spec; from kerasflow.train.stages import train; "
            f"train(load_spec({str(spec)!r}), run_dir={str(run_dir)!r}, quiet=True)")
    return [sys.executable, "-c", code]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--tracking", action="store_true", help="keep MLflow tracking on in kerasflow")
    args = parser.parse_args()
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")

    with tempfile.TemporaryDirectory(prefix="kerasflow-overhead-") as tmp:
        tmp = Path(tmp)
        spec = tmp / "spec.yaml"
        spec.write_text(SPEC.format(repo=REPO, batch=args.batch_size, epochs=args.epochs,
                                    tracking=str(args.tracking).lower()))
        script = tmp / "baseline.py"
        script.write_text(BASELINE)

        command = _kerasflow_cmd(spec, tmp / "run")

        def kerasflow(i: int) -> tuple[float, float]:
            cwd = tmp / f"cwd{i}"  # a fresh directory (and MLflow store) per run
            cwd.mkdir()
            return _run([a.replace(str(tmp / "run"), str(cwd / "run")) for a in command], cwd=cwd)

        def keras_script(i: int) -> tuple[float, float]:
            out = tmp / f"baseline{i}"
            out.mkdir()
            return _run([sys.executable, str(script), str(args.epochs), str(args.batch_size), str(out)], cwd=tmp)

        kerasflow(-1)  # warm the page cache (and bytecode) for both before measuring
        keras_script(-1)
        wall, cpu = [], []
        print(f"{args.pairs} pairs, {args.epochs} epochs, batch {args.batch_size}, "
              f"tracking {'on' if args.tracking else 'off'}")
        for i in range(args.pairs):
            order = (kerasflow, keras_script) if i % 2 == 0 else (keras_script, kerasflow)
            times = {fn.__name__: fn(i) for fn in order}
            (kf_wall, kf_cpu), (k_wall, k_cpu) = times["kerasflow"], times["keras_script"]
            wall.append(kf_wall / k_wall)
            cpu.append(kf_cpu / k_cpu)
            print(f"pair {i + 1}: kerasflow {kf_wall:.2f} s ({kf_cpu:.2f} s CPU), keras script {k_wall:.2f} s "
                  f"({k_cpu:.2f} s CPU), wall ratio {wall[-1]:.3f}", flush=True)
        print(f"median CPU-time ratio kerasflow / hand-written keras = {statistics.median(cpu):.3f}")
        print(f"median wall-time ratio kerasflow / hand-written keras = {statistics.median(wall):.3f} (goal <= 1.05)")


if __name__ == "__main__":
    main()
