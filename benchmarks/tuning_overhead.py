"""What kerasflow adds to a KerasTuner search, and what a second worker buys.

1. The same random search (digits MLP, `units` x log `learning_rate`, same seed,
   so both sample the same values) run through `kerasflow.tune.tune` and
   through a plain KerasTuner script, interleaved in this process; the ratio of
   the fastest runs. Goal: kerasflow with MLflow on (a sqlite store, as users
   get it: a parent run, a nested run per trial, epoch metrics) / plain <= 1.05;
   kerasflow with tracking off follows. The tracking worker is started and the
   store opened before timing, as MLflow's import was before it had a worker
   (`kerasflow tune` in a fresh process pays that in parallel with TensorFlow's import).
2. The kerasflow search in chief/worker mode, in fresh processes on 127.0.0.1:
   wall time until the search is done with 2 workers divided by with 1 worker.

    python benchmarks/tuning_overhead.py [--trials 6] [--epochs 5] [--repeats 2]
        [--dist-trials 8] [--dist-epochs 10] [--worker-threads N] [--no-overhead] [--no-distributed] [--quick]

`--quick`: 3 trials x 3 epochs, one repeat, no distributed part.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BASE = REPO / "tests" / "specs" / "valid_mlp.yaml"
DRIVER = """
import sys
from kerasflow.spec.loader import load_spec
from kerasflow.tune import tune
spec, run_dir, role, address, port, worker = sys.argv[1:7]
tune(load_spec(spec), run_dir=run_dir, quiet=True, role=role, chief_address=address or None,
     port=int(port) if port else None, worker_id=worker or None)
"""


def write_spec(root: Path, trials: int, epochs: int, tracking: dict) -> Path:
    spec = yaml.safe_load(BASE.read_text())
    spec["name"] = "bench"
    spec["model"]["nodes"]["h1"]["units"] = {"tune": "int", "min": 32, "max": 256, "step": 32}
    spec["training"].update(stages=[{"name": "main", "epochs": epochs, "optimizer": {
        "type": "adam", "learning_rate": {"tune": "float", "min": 1e-4, "max": 1e-2, "sampling": "log"}}}])
    spec["tuning"] = {"tuner": "random", "objective": "val_accuracy", "max_trials": trials, "seed": 1}
    spec["tracking"] = tracking
    path = root / f"bench-{len(list(root.glob('*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def kerasflow_search(spec: Path, run_dir: Path) -> float:
    from kerasflow.spec.loader import load_spec
    from kerasflow.tune import tune

    start = time.perf_counter()
    tune(load_spec(spec), run_dir=run_dir, quiet=True)  # data preparation included, as in plain_search
    return time.perf_counter() - start


def plain_search(run_dir: Path, trials: int, epochs: int) -> float:
    """The search a user would write with KerasTuner alone: the same data, split,
    normalization, model, optimizer and space (declared in the same order)."""
    start = time.perf_counter()
    import keras
    import keras_tuner as kt
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = x.astype("float32")
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.2, stratify=y, random_state=42)
    x_val, _, y_val, _ = train_test_split(x_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=42)
    mean, var = x_train.mean(axis=0), x_train.var(axis=0)

    def build(hp):
        keras.utils.set_random_seed(42)
        inputs = keras.Input((64,), name="pixels")
        h = keras.layers.Normalization(mean=mean, variance=var)(inputs)
        h = keras.layers.Dense(hp.Int("units", 32, 256, step=32), activation="relu")(h)
        h = keras.layers.Dense(64, activation="relu")(h)
        outputs = keras.layers.Dense(10, activation="softmax")(h)
        model = keras.Model(inputs, {"label": outputs})
        lr = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")
        model.compile(keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    tuner = kt.RandomSearch(build, objective="val_accuracy", max_trials=trials, seed=1,
                            directory=str(run_dir), project_name="plain")
    tuner.search(x_train, y_train, validation_data=(x_val, y_val), epochs=epochs, batch_size=64, verbose=0)
    return time.perf_counter() - start


def distributed_search(spec: Path, run_dir: Path, workers: int, threads: int | None) -> float:
    """Seconds until every worker has finished (the chief then exits on its own schedule)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    if threads:  # TensorFlow's own thread pools, per process
        env.update(TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS=str(threads))

    def launch(*args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", DRIVER, str(spec), str(run_dir), *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    start = time.perf_counter()
    chief = launch("chief", "127.0.0.1", port, "")
    procs = [launch("worker", f"127.0.0.1:{port}", "", f"w{i}") for i in range(workers)]
    codes = [p.wait() for p in procs]
    elapsed = time.perf_counter() - start
    if chief.wait(timeout=120) or any(codes):
        raise SystemExit(f"distributed search failed: chief {chief.returncode}, workers {codes}")
    return elapsed


def overhead(root: Path, args) -> None:
    spec = write_spec(root, args.trials, args.epochs, {"enabled": False})
    uri = f"sqlite:///{root / 'mlflow.db'}"
    tracked = write_spec(root, args.trials, args.epochs, {"uri": uri})
    from kerasflow.track.mlflow import warm_up
    from kerasflow.track.worker import sync

    warm_up({"uri": uri}, {"name": "bench"})  # the worker starts and creates the store's tables outside the timing
    sync()
    ours, plain, tracked_runs = [], [], []
    for i in range(args.repeats):  # the order rotates, so load from other processes hits each alike
        runs = [lambda: plain.append(plain_search(root / f"plain{i}", args.trials, args.epochs)),
                lambda: tracked_runs.append(kerasflow_search(tracked, root / f"kf-mlflow{i}")),
                lambda: ours.append(kerasflow_search(spec, root / f"kf{i}"))]
        for run in runs[i % 3:] + runs[: i % 3]:
            run()
    kf, pl, tr = min(ours), min(plain), min(tracked_runs)
    print(f"random search, {args.trials} trials x {args.epochs} epochs, digits MLP, best of {args.repeats}:")
    print(f"  plain KerasTuner: {pl:.2f} s   kerasflow + MLflow sqlite: {tr:.2f} s   kerasflow untracked: {kf:.2f} s")
    print(f"ratio kerasflow with MLflow / plain KerasTuner = {tr / pl:.3f} (goal <= 1.05)")
    print(f"ratio kerasflow untracked / plain KerasTuner = {kf / pl:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--dist-trials", type=int, default=8)
    parser.add_argument("--dist-epochs", type=int, default=10)
    parser.add_argument("--worker-threads", type=int, help="TensorFlow threads per process (default: TF's own)")
    parser.add_argument("--no-overhead", action="store_true")
    parser.add_argument("--no-distributed", action="store_true")
    parser.add_argument("--quick", action="store_true", help="3 trials x 3 epochs, one repeat, no distributed part")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.epochs, args.repeats, args.no_distributed = 3, 3, 1, True
    import keras_tuner  # noqa: F401  (imports TensorFlow: measured by neither search)
    import sklearn.model_selection  # noqa: F401

    import kerasflow.tune.tuners  # noqa: F401

    root = Path(tempfile.mkdtemp(prefix="kerasflow-tuning-bench-"))
    try:
        if not args.no_overhead:
            overhead(root, args)
        if not args.no_distributed:
            spec = write_spec(root, args.dist_trials, args.dist_epochs, {"enabled": False})
            one = distributed_search(spec, root / "dist1", 1, args.worker_threads)
            two = distributed_search(spec, root / "dist2", 2, args.worker_threads)
            print(f"distributed, {args.dist_trials} trials x {args.dist_epochs} epochs, fresh processes, "
                  f"{args.worker_threads or 'default'} TF threads each (os.cpu_count()={os.cpu_count()}):")
            print(f"  chief + 1 worker: {one:.2f} s   chief + 2 workers: {two:.2f} s")
            print(f"ratio 2 workers / 1 worker wall = {two / one:.3f}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
