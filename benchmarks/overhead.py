"""Wall time of `kerasflow train pipelines/quickstart.yaml` (digits MLP, 30
epochs, batch 64) divided by a hand-written Keras script doing the same work:
the same split sizes, normalization, model, optimizer, batch size, epochs and
seed; both fit with validation each epoch, evaluate on the test split and
save the model. Whole fresh processes, as a user runs them.

Tracking is ON, as users get it: the default sqlite store `mlflow.db` in the
working directory (one directory for all kerasflow runs, so the store exists
after the first, as it does for a user). Each round runs kerasflow tracked,
kerasflow with `--set tracking.enabled=false` and the script, in a rotating
order; the ratios are medians over rounds. Goals: tracked <= 1.05,
untracked <= 1.02.

What counts as kerasflow's overhead: the script does what a user's own
script does (load, split, normalize, fit with validation, evaluate the test
split, save). Everything kerasflow does beyond it is counted against
kerasflow, none of it is added to the script: validating the spec and
checking the model's shapes before any data is read, the data fingerprint,
`history.csv` and the per-epoch resume backup (the `--resume` guarantee),
the NaN check, the model summary, `metrics.json`, the predictions behind the
confusion matrix and the plots. The plots are drawn by the background worker
while the process evaluates, so they cost only what is left of them when the
run ends; the process still waits for them (and, tracked, for MLflow to hold
everything) before it exits, so nothing is lost or half-written after it
returns.

On a shared machine the wall-time ratios swing with other processes' load;
the CPU-time ratios (this process and its children, the tracking worker
included) move less and show whether a change helped.

A last kerasflow run under cProfile breaks the extra seconds down (cProfile
slows Python-heavy phases, so read it for proportions).

    python benchmarks/overhead.py [--rounds 5] [--epochs 30] [--quick]

`--quick`: 2 rounds of 10 epochs, no profile (a smoke test of the benchmark).
"""

from __future__ import annotations

import argparse
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "pipelines" / "quickstart.yaml"

# What a user would write by hand for the same experiment (specs/data/digits.yaml:
# stratified 80/10/10 split; the MLP of specs/models/digits_mlp.yaml; Adam 1e-3).
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

# (label, file suffix, function name): where kerasflow's seconds go, from cProfile.
PHASES = [
    ("load + validate the spec", "kerasflow/spec/loader.py", "load_spec"),
    ("start the tracking worker (spawn)", "kerasflow/track/worker.py", "__init__"),
    ("check shapes before data (imports Keras)", "kerasflow/train/session.py", "check_shapes"),
    ("seed (TensorFlow already imported)", "kerasflow/train/strategy.py", "seed_everything"),
    ("prepare data", "kerasflow/data/pipeline.py", "prepare_data"),
    ("start the MLflow run (wait)", "kerasflow/track/mlflow.py", "start"),
    ("build the model", "kerasflow/model/builder.py", "build_model"),
    ("summary, tags, class weights", "kerasflow/train/engine.py", "_set_up"),
    ("compile", "kerasflow/train/compile.py", "compile_model"),
    ("fit (all epochs)", "keras/src/backend/tensorflow/trainer.py", "fit"),
    ("  history.csv rows", "kerasflow/train/callbacks.py", "on_epoch_end"),
    ("  MLflow epoch callback (send)", "kerasflow/track/callback.py", "on_epoch_end"),
    ("predictions for the confusion matrix", "kerasflow/train/evaluate.py", "collect_predictions"),
    ("save model.keras", "keras/src/saving/saving_api.py", "save_model"),
    ("log the model (signature outputs, send)", "kerasflow/track/mlflow.py", "log_model_later"),
    ("evaluate (validation inside fit included)", "keras/src/backend/tensorflow/trainer.py", "evaluate"),
    ("end the MLflow run (wait for delivery)", "kerasflow/track/mlflow.py", "end"),
    ("waiting on the tracking worker, in all", "kerasflow/track/worker.py", "_result"),
]


def _run(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and its children) of one whole process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _kerasflow(epochs: int, run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, *extra, "-m", "kerasflow.cli", "train", str(QUICKSTART), "--run-dir", str(run_dir),
            "--quiet", "--set", f"training.stages.0.epochs={epochs}"]


def _breakdown(profile: Path, total: float) -> None:
    stats = pstats.Stats(str(profile)).stats
    print(f"\nwhere a tracked kerasflow run spends its time (cProfile, {total:.2f} s wall with the profiler):")
    for label, suffix, name in PHASES:
        seconds = max((ct for (file, _, func), (_, _, _, ct, _) in stats.items()
                       if func == name and file.replace("\\", "/").endswith(suffix)), default=0.0)
        print(f"  {label:<45} {seconds:6.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (each runs all three)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="2 rounds of 10 epochs, no profile")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.epochs = min(args.rounds, 2), min(args.epochs, 10)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    batch = 64  # specs/data/digits.yaml

    with tempfile.TemporaryDirectory(prefix="kerasflow-overhead-") as tmp:
        tmp = Path(tmp)
        work = tmp / "work"  # the user's directory: mlflow.db and runs/ accumulate here
        work.mkdir()
        script = tmp / "baseline.py"
        script.write_text(BASELINE)
        counter = iter(range(10**6))

        def tracked() -> tuple[float, float]:
            return _run(_kerasflow(args.epochs, work / "runs" / f"t{next(counter)}"), cwd=work)

        def untracked() -> tuple[float, float]:
            return _run(_kerasflow(args.epochs, work / "runs" / f"u{next(counter)}") + ["--set", "tracking.enabled=false"],
                        cwd=work)

        def keras_script() -> tuple[float, float]:
            out = tmp / f"baseline{next(counter)}"
            out.mkdir()
            return _run([sys.executable, str(script), str(args.epochs), str(batch), str(out)], cwd=tmp)

        runs = {"tracked": tracked, "untracked": untracked, "keras": keras_script}
        for fn in runs.values():  # warm the page cache and bytecode; creates the store, as a user's first run does
            fn()
        print(f"{args.rounds} rounds, quickstart for {args.epochs} epochs, batch {batch}, tracking to {work}/mlflow.db")
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in runs}
        names = list(runs)
        for i in range(args.rounds):
            order = names[i % 3:] + names[: i % 3]
            for name in order:
                times[name].append(runs[name]())
            t, u, k = (times[n][-1][0] for n in names)
            print(f"round {i + 1}: tracked {t:.2f} s, untracked {u:.2f} s, keras script {k:.2f} s "
                  f"-> {t / k:.3f}, {u / k:.3f}", flush=True)

        def median_ratio(name: str, index: int) -> float:
            return statistics.median(a[index] / b[index] for a, b in zip(times[name], times["keras"]))

        wall = {n: statistics.median(w for w, _ in times[n]) for n in names}
        print(f"median wall: tracked {wall['tracked']:.2f} s, untracked {wall['untracked']:.2f} s, "
              f"keras script {wall['keras']:.2f} s")
        print(f"median CPU-time ratio tracked / keras = {median_ratio('tracked', 1):.3f}, "
              f"untracked / keras = {median_ratio('untracked', 1):.3f} (includes the tracking worker's CPU)")
        print(f"median wall-time ratio kerasflow tracked / hand-written keras = {median_ratio('tracked', 0):.3f} "
              f"(goal <= 1.05)")
        print(f"median wall-time ratio kerasflow untracked / hand-written keras = {median_ratio('untracked', 0):.3f} "
              f"(goal <= 1.02)")
        print(f"extra seconds: tracked {wall['tracked'] - wall['keras']:+.2f} s, "
              f"untracked {wall['untracked'] - wall['keras']:+.2f} s")
        if not args.quick:
            profile = tmp / "kerasflow.prof"
            total, _ = _run(_kerasflow(args.epochs, work / "runs" / "profiled", "-m", "cProfile", "-o", str(profile)),
                            cwd=work)
            _breakdown(profile, total)


if __name__ == "__main__":
    main()
