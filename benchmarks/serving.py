"""Embedded REST server vs in-process signature calls, digits MLP.

Trains a small MLP on sklearn digits, exports it with `export_version`, then
runs the same load twice for a fixed time: N concurrent clients (threads),
each sending one-row predict requests back to back,

1. in-process: `tf.saved_model.load(...).signatures["serving_default"]` called
   directly (the floor: no HTTP, no JSON);
2. REST: `POST /v1/models/digits:predict` with `{"instances": [row]}` against
   the embedded server running in its own process (as in a deployment, the
   server does not share the clients' interpreter lock).

Prints requests/s, the REST / in-process ratio and p50/p99 latencies.

    python benchmarks/serving.py [--clients 16] [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

_SERVER = """
import sys
from kerasflow.serve import EmbeddedServer
server = EmbeddedServer(sys.argv[1], model_name="digits", rest_port=0, grpc_port=None).start()
print(server.rest_port, flush=True)
sys.stdin.read()  # until the benchmark closes our stdin
server.stop()
"""


def _train_and_export(base: Path) -> np.ndarray:
    import keras
    from sklearn.datasets import load_digits

    from kerasflow.export import export_version

    keras.utils.set_random_seed(0)
    x, y = load_digits(return_X_y=True)
    x = x.astype("float32")
    pixels = keras.Input(shape=(64,), name="pixels")
    h = keras.layers.Dense(128, activation="relu")(keras.layers.Rescaling(1 / 16)(pixels))
    h = keras.layers.Dense(64, activation="relu")(h)
    model = keras.Model({"pixels": pixels}, {"label": keras.layers.Dense(10, activation="softmax", name="label")(h)})
    model.compile("adam", {"label": "sparse_categorical_crossentropy"})
    model.fit({"pixels": x}, {"label": y}, epochs=5, batch_size=64, verbose=0)
    export_version(model, base, sample_inputs={"pixels": x[:256]},
                   target_info={"label": {"type": "category", "class_names": [str(i) for i in range(10)]}},
                   model_name="digits")
    return x


def _run(clients: int, seconds: float, call) -> tuple[int, np.ndarray]:
    """`call(i)` back to back from `clients` threads for `seconds`; returns count and latencies (s)."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client(k: int) -> None:
        start.wait()
        mine, i = latencies[k], k
        while time.perf_counter() < deadline[0]:
            t0 = time.perf_counter()
            call(i)
            mine.append(time.perf_counter() - t0)
            i += clients

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    deadline[0] = time.perf_counter() + seconds
    start.wait()
    for t in threads:
        t.join()
    flat = np.array([v for per in latencies for v in per])
    return len(flat), flat


def _in_process(path: Path, rows: np.ndarray, clients: int, seconds: float):
    import tensorflow as tf

    fn = tf.saved_model.load(str(path)).signatures["serving_default"]
    one_row = [tf.constant(rows[i:i + 1]) for i in range(len(rows))]

    def call(i: int) -> None:
        fn(pixels=one_row[i % len(rows)])["probabilities"].numpy()

    _run(clients, 0.5, call)  # warm-up
    return _run(clients, seconds, call)


def _rest(base: Path, rows: np.ndarray, clients: int, seconds: float):
    import requests

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    server = subprocess.Popen([sys.executable, "-c", _SERVER, str(base)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        port = int(server.stdout.readline())
        url = f"http://127.0.0.1:{port}/v1/models/digits:predict"
        bodies = [{"instances": [row.tolist()]} for row in rows]
        sessions = [requests.Session() for _ in range(clients)]

        def call(i: int) -> None:
            response = sessions[i % clients].post(url, json=bodies[i % len(bodies)])
            response.raise_for_status()

        _run(clients, 0.5, call)  # warm-up (and connection setup)
        return _run(clients, seconds, call)
    finally:
        server.stdin.close()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="kerasflow-bench-") as tmp:
        base = Path(tmp) / "digits"
        x = _train_and_export(base)
        rows = x[:512]
        results = {
            "in-process signature": _in_process(base / "1", rows, args.clients, args.seconds),
            "embedded REST server": _rest(base, rows, args.clients, args.seconds),
        }

    print(f"\ndigits MLP, {args.clients} concurrent clients, {args.seconds:g} s per mode, 1 row per request, "
          f"{os.cpu_count()} CPUs")
    print(f"{'mode':<24}{'requests':>10}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    rates = {}
    for mode, (count, lat) in results.items():
        rates[mode] = count / args.seconds
        print(f"{mode:<24}{count:>10}{rates[mode]:>10.0f}"
              f"{np.percentile(lat, 50) * 1e3:>10.2f}{np.percentile(lat, 99) * 1e3:>10.2f}")
    ratio = rates["embedded REST server"] / rates["in-process signature"]
    print(f"REST / in-process throughput ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
