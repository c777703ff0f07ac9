"""The embedded server under load, against the in-process signature, digits MLP.

Trains a small MLP on sklearn digits, exports it with `export_version`, and
measures, in one run:

- the baseline: `tf.saved_model.load(...).signatures["serving_default"]`
  called in process, one row per call, from the same number of threads
  (measured before and after the server runs; the median is used);
- the embedded server in its own process, batching off and on (TF Serving's
  text-format parameters file, printed below), loaded by
  * `ab` (apache2-utils): REST, a new connection per request;
  * `wrk`: REST, keep-alive connections;
  * `h2load` (nghttp2-client): gRPC Predict, one HTTP/2 connection per client, the
    request as a prebuilt gRPC frame; an answer without the full PredictResponse
    (grpc-status != 0) counts as an error;
  * Python threads: REST keep-alive, REST new connection, gRPC with the
    official `tensorflow-serving-api` stub (one channel shared by the threads);
  with 16 and 64 clients, one row per request.
- 20,000 requests from 64 clients with a new connection each, with and
  without 100 idle keep-alive connections held open: failed requests and the
  server's RSS before/after.

Compiled load generators keep the client's own cost from hiding the server's;
without `wrk`/`ab`/`h2load` on PATH (`apt-get install wrk apache2-utils
nghttp2-client`) those rows are skipped. Prints req/s, the ratio to the in-process rate, p50/p99, errors,
and the server process's CPU time (user + system, all threads) per request:
on a shared machine a rate says as much about the other jobs as about the
server, its CPU per request much less.

    python benchmarks/serving.py [--quick] [--seconds 5] [--requests 20000]

It ends with the issue's must-hold figures (16 clients, batching off/on).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import socket
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

BATCHING = """max_batch_size { value: 64 }
batch_timeout_micros { value: 0 }
max_enqueued_batches { value: 1000 }
num_batch_threads { value: 1 }
"""

_SERVER = """
import sys
import kerasflow
from kerasflow.serve import EmbeddedServer
from kerasflow.serve.batching import BatchingParameters
batching = BatchingParameters.from_file(sys.argv[2]) if len(sys.argv) > 2 else None
server = EmbeddedServer(sys.argv[1], model_name="digits", rest_port=0, grpc_port=0, batching=batching).start()
print(server.rest_port, server.grpc_port, kerasflow.__file__, flush=True)
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


class Result:
    def __init__(self, count: int, seconds: float, latencies, errors: int = 0, note: str = ""):
        self.count, self.seconds, self.errors, self.note = count, seconds, errors, note
        self.cpu = float("nan")  # CPU seconds of the serving side over the run (server process or in-process calls)
        lat = np.asarray(latencies, dtype=float)
        self.p50, self.p99 = (np.percentile(lat, [50, 99]) * 1e3) if lat.size else (float("nan"),) * 2

    @property
    def rate(self) -> float:
        return self.count / self.seconds


def _threads(clients: int, seconds: float, call) -> Result:
    """`call(k, i)` back to back from `clients` threads for `seconds`; exceptions count as errors."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client(k: int) -> None:
        start.wait()
        mine, i = latencies[k], k
        while time.perf_counter() < deadline[0]:
            t0 = time.perf_counter()
            try:
                call(k, i)
                mine.append(time.perf_counter() - t0)
            except Exception:  # noqa: BLE001 - a failed request is a figure, not a crash
                errors[k] += 1
            i += clients

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    deadline[0] = time.perf_counter() + seconds
    t0 = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    flat = [v for per in latencies for v in per]
    return Result(len(flat), time.perf_counter() - t0, flat, sum(errors))


def _in_process(path: Path, rows: np.ndarray, clients: int, seconds: float) -> Result:
    import tensorflow as tf

    fn = tf.saved_model.load(str(path)).signatures["serving_default"]
    one_row = [tf.constant(rows[i:i + 1]) for i in range(len(rows))]

    def call(k: int, i: int) -> None:
        fn(pixels=one_row[i % len(rows)])["probabilities"].numpy()

    _threads(clients, 0.3, call)  # warm-up
    cpu = time.process_time()
    result = _threads(clients, seconds, call)
    result.cpu = time.process_time() - cpu  # this process's CPU: the signature calls (and their threads)
    return result


class Server:
    """The embedded server in its own process (as deployed: it doesn't share the clients' GIL)."""

    code = REPO  # the kerasflow checkout the server runs (--server-code)

    def __init__(self, base: Path, batching_file: Path | None):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(self.code), os.environ.get("PYTHONPATH", "")])}
        args = [sys.executable, "-c", _SERVER, str(base)] + ([str(batching_file)] if batching_file else [])
        # cwd: `python -c` puts the working directory first on sys.path, ahead of PYTHONPATH, so run
        # from anywhere else the server would import that directory's kerasflow, not `code`'s
        self.process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                        cwd=self.code)
        rest_port, grpc_port, package = self.process.stdout.readline().split()
        self.rest_port, self.grpc_port = int(rest_port), int(grpc_port)
        if not Path(package).resolve().is_relative_to(self.code):
            self.stop()
            raise SystemExit(f"the server imported {package}, not the kerasflow of {self.code}")
        self.path = "/v1/models/digits:predict"
        self.url = f"http://127.0.0.1:{self.rest_port}{self.path}"

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (all its threads)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024

    def stop(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _python_rest(server: Server, bodies: list[bytes], clients: int, seconds: float, keep_alive: bool) -> Result:
    conns = [None] * clients
    headers = {"Content-Type": "application/json"}

    def call(k: int, i: int) -> None:
        conn = conns[k] if keep_alive else None
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
        try:
            conn.request("POST", server.path, bodies[i % len(bodies)], headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(response.status)
        except Exception:
            conn.close()
            conns[k] = None
            raise
        if keep_alive:
            conns[k] = conn
        else:
            conn.close()

    return _threads(clients, seconds, call)


def _python_grpc(server: Server, rows: np.ndarray, clients: int, seconds: float) -> Result:
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    requests = []
    for row in rows[:256]:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "digits"
        request.inputs["pixels"].CopyFrom(tf.make_tensor_proto(row[None, :]))
        requests.append(request)
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        return _threads(clients, seconds, lambda k, i: stub.Predict(requests[i % len(requests)], timeout=30))


def _wrk(server: Server, body_file: Path, clients: int, seconds: float) -> Result | None:
    if not shutil.which("wrk"):
        return None
    script = body_file.with_suffix(".lua")
    script.write_text(f'wrk.method = "POST"\nwrk.body = io.open("{body_file}"):read("*a")\n'
                      'wrk.headers["Content-Type"] = "application/json"\n')
    out = subprocess.run(["wrk", "-t2", f"-c{clients}", f"-d{max(1, round(seconds))}s", "-s", str(script),
                          "--latency", server.url], capture_output=True, text=True, timeout=seconds + 60,
                         check=True).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))
    duration = float(re.search(r"requests in ([\d.]+)s", out).group(1))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors += int(non2xx.group(1)) if non2xx else 0
    pct = {p: _ms(v) for p, v in re.findall(r"\s(50|99)%\s+([\d.]+\w+)", out)}
    result = Result(total, duration, [], errors)
    result.p50, result.p99 = pct.get("50", float("nan")), pct.get("99", float("nan"))
    return result


def _h2load_grpc(server: Server, frame_file: Path, response_bytes: int, clients: int,
                 seconds: float) -> Result | None:
    """gRPC Predict from `h2load` (nghttp2-client): `clients` HTTP/2 connections, one call in flight on each.

    Every answer to the same request is the same `response_bytes` long (checked against the
    official stub's answer, grpc-status 0); an error (grpc-status != 0) comes back as trailers
    only, without that message, so answers short of it count as errors, like non-2xx ones.
    """
    if not shutil.which("h2load"):
        return None
    log = frame_file.with_suffix(".log")
    out = subprocess.run(["h2load", "-c", str(clients), "-m", "1", "-t", "1", "-D", str(max(1, round(seconds))),
                          "-d", str(frame_file), "-H", "content-type: application/grpc", "-H", "te: trailers",
                          "--log-file", str(log),
                          f"http://127.0.0.1:{server.grpc_port}/tensorflow.serving.PredictionService/Predict"],
                         capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    done = int(re.search(r"(\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout", out).group(1))
    errors = sum(map(int, re.search(r"succeeded, (\d+) failed, (\d+) errored, (\d+) timeout", out).groups()))
    non2xx = sum(map(int, re.search(r"status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out).groups()))
    data = int(re.search(r"\(\d+\) total, .*\((\d+)\) data", out).group(1))
    short = max(0, done - non2xx - data // response_bytes)
    duration = float(re.search(r"finished in ([\d.]+)s", out).group(1))
    latencies = [int(line.split("\t")[2]) * 1e-6 for line in log.read_text().splitlines() if line]
    return Result(done - non2xx - short, duration, latencies, errors + non2xx + short)


def _grpc_frame(server: Server, rows: np.ndarray, path: Path) -> int:
    """Write one PredictRequest as a gRPC frame for h2load; returns the byte size of the stub's answer as a frame."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "digits"
    request.inputs["pixels"].CopyFrom(tf.make_tensor_proto(rows[:1]))
    message = request.SerializeToString()
    path.write_bytes(b"\0" + len(message).to_bytes(4, "big") + message)  # uncompressed, length-prefixed
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    return 5 + response.ByteSize()


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def _ab(server: Server, body_file: Path, clients: int, requests: int) -> Result | None:
    if not shutil.which("ab"):
        return None
    out = subprocess.run(["ab", "-q", "-r", "-s", "30", "-n", str(requests), "-c", str(clients), "-p", str(body_file),
                          "-T", "application/json", server.url], capture_output=True, text=True, timeout=900,
                         check=True).stdout
    done = int(re.search(r"Complete requests:\s+(\d+)", out).group(1))
    failed = int(re.search(r"Failed requests:\s+(\d+)", out).group(1))
    non2xx = re.search(r"Non-2xx responses:\s+(\d+)", out)
    duration = float(re.search(r"Time taken for tests:\s+([\d.]+)", out).group(1))
    result = Result(done - failed, duration, [], failed + (int(non2xx.group(1)) if non2xx else 0) + requests - done)
    result.p50, result.p99 = (float(re.search(rf"\s{p}%\s+(\d+)", out).group(1)) for p in (50, 99))
    return result


def _idle_connections(server: Server, n: int) -> list[socket.socket]:
    """`n` keep-alive connections that made one request and then stay open, silent."""
    socks = []
    for _ in range(n):
        sock = socket.create_connection(("127.0.0.1", server.rest_port))
        sock.sendall(b"GET /v1/models/digits HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.recv(65536)
        socks.append(sock)
    return socks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (~4 minutes in all)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per timed mode")
    parser.add_argument("--requests", type=int, default=20000, help="requests in the new-connection runs")
    parser.add_argument("--server-code", type=Path, default=REPO,
                        help="kerasflow checkout whose server is measured (e.g. another branch's worktree)")
    args = parser.parse_args()
    Server.code = args.server_code.resolve()
    seconds, total = (3.0, 6000) if args.quick else (args.seconds, args.requests)

    rows_out: list[tuple[str, str, Result]] = []
    memory: list[tuple[str, float, float, int, int]] = []
    baselines: dict[int, list[float]] = {16: [], 64: []}
    baseline_cpu: dict[int, list[float]] = {16: [], 64: []}  # us of CPU per call
    with tempfile.TemporaryDirectory(prefix="kerasflow-bench-") as tmp:
        tmp = Path(tmp)
        base = tmp / "digits"
        x = _train_and_export(base)
        rows = x[:512]
        bodies = [json.dumps({"instances": [row.tolist()]}).encode() for row in rows]
        body_file = tmp / "body.json"
        body_file.write_bytes(bodies[0])
        batching_file = tmp / "batching.txt"
        batching_file.write_text(BATCHING)

        def baseline():
            for clients, rates in baselines.items():
                result = _in_process(base / "1", rows, clients, seconds)
                rates.append(result.rate)
                baseline_cpu[clients].append(result.cpu / result.count * 1e6)

        baseline()
        for label, params in (("off", None), ("on", batching_file)):
            server = Server(base, params)
            try:
                _python_rest(server, bodies, 4, 0.5, keep_alive=True)  # warm-up
                frame_file = tmp / "predict.grpc"
                response_bytes = _grpc_frame(server, rows, frame_file)
                for clients in (16, 64):
                    runs = [("REST new conn", "ab", _ab, (body_file, clients, total // 4)),
                            ("REST keep-alive", "wrk", _wrk, (body_file, clients, seconds)),
                            ("REST keep-alive", "python", _python_rest, (bodies, clients, seconds, True)),
                            ("REST new conn", "python", _python_rest, (bodies, clients, seconds, False)),
                            ("gRPC", "h2load", _h2load_grpc, (frame_file, response_bytes, clients, seconds)),
                            ("gRPC", "python", _python_grpc, (rows, clients, seconds))]
                    for mode, tool, run, run_args in runs:
                        cpu = server.cpu_seconds()
                        result = run(server, *run_args)
                        if result is not None:
                            result.cpu = server.cpu_seconds() - cpu
                            rows_out.append((f"{mode}, batching {label}", f"{tool} c{clients}", result))
                for idle in (0, 100):
                    held = _idle_connections(server, idle)
                    before = server.rss_mb()
                    result = _ab(server, body_file, 64, total)
                    after = server.rss_mb()
                    if result is not None:
                        rows_out.append((f"REST new conn, batching {label}, {idle} idle conns", f"ab c64 n{total}",
                                         result))
                        memory.append((f"batching {label}, {idle} idle", before, after, result.errors, total))
                    for sock in held:
                        sock.close()
            finally:
                server.stop()
        baseline()

    rate = {c: float(np.median(v)) for c, v in baselines.items()}
    print(f"\ndigits MLP, 1 row per request; {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}; {'quick' if args.quick else 'full'} run; server code "
          f"{Server.code}; load average {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print("in-process signature, one row per call: " +
          ", ".join(f"{c} threads {rate[c]:.0f} calls/s (runs: {', '.join(f'{r:.0f}' for r in v)}; "
                    f"{', '.join(f'{u:.0f}' for u in baseline_cpu[c])} us CPU/call)" for c, v in baselines.items()))
    print("batching parameters (on):", " ".join(BATCHING.split()))
    head = f"| {'mode':<44} | {'client':<13} | {'requests':>8} | {'req/s':>7} | {'x in-proc':>9} | " \
           f"{'p50 ms':>7} | {'p99 ms':>7} | {'errors':>6} | {'srv us/req':>10} |"
    print(head)
    print("|" + "|".join("-" * (len(cell)) for cell in head.split("|")[1:-1]) + "|")
    for mode, client, r in rows_out:
        clients = int(re.search(r"c(\d+)", client).group(1))
        print(f"| {mode:<44} | {client:<13} | {r.count:>8} | {r.rate:>7.0f} | {r.rate / rate[clients]:>9.2f} | "
              f"{r.p50:>7.1f} | {r.p99:>7.1f} | {r.errors:>6} | {r.cpu / r.count * 1e6:>10.0f} |")
    print("\nserver RSS over the new-connection runs (64 clients):")
    for label, before, after, errors, n in memory:
        print(f"  {label}: {before:.0f} MB -> {after:.0f} MB ({(after - before) / before:+.1%}) over {n} requests, "
              f"{errors} failed")
    _must_hold(rows_out, rate, memory)


def _must_hold(rows_out, rate: dict, memory) -> None:
    """The issue's must-hold figures, from the rows above (16 clients; the compiled load generator
    of each mode, the Python client where that generator is not installed)."""
    print("\nmust hold (16 clients, one row per request):")
    for label, goal in (("off", 0.5), ("on", 1.0)):
        for mode, tools in (("REST keep-alive", ("wrk", "python")), ("REST new conn", ("ab", "python")),
                            ("gRPC", ("h2load", "python"))):
            found = [(tool, r) for tool in tools for m, c, r in rows_out
                     if m == f"{mode}, batching {label}" and c == f"{tool} c16"][:1]
            for tool, r in found:
                ratio = r.rate / rate[16]
                print(f"  batching {label:<3} {mode:<15} ({tool:<6}): {ratio:4.2f}x (goal >= {goal}x) "
                      f"p99 {r.p99:5.1f} ms (goal <= 20) errors {r.errors}  "
                      f"server {r.cpu / r.count * 1e6:3.0f} us CPU/request  "
                      f"{'ok' if ratio >= goal and r.p99 <= 20 and not r.errors else 'SHORT'}")
    failed = sum(r.errors for _, _, r in rows_out)
    growth = max(((after - before) / before for _, before, after, _, _ in memory), default=0.0)
    print(f"  failed requests in all runs: {failed} (goal 0); largest RSS growth {growth:+.1%} (goal < 10%)")


if __name__ == "__main__":
    main()
