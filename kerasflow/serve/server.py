"""The embedded model server: TF Serving's REST and gRPC APIs in one process.

`EmbeddedServer` polls the base path, serves the newest version (or the
newest `num_versions`), answers REST on an aiohttp event loop and gRPC on
grpc's thread-pool server (grpc.aio with batching), optionally merges concurrent requests into batches (TF Serving's
`--enable_batching`), and binds 127.0.0.1 unless told otherwise. `serve` is what
`kerasflow serve` runs: the real `tensorflow_model_server` when it is on
PATH, this server otherwise, until SIGINT/SIGTERM.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Mapping

from kerasflow.spec.errors import Problem, SpecError

log = logging.getLogger("kerasflow.serve")

DEFAULT_MAX_BODY_BYTES = 16 << 20


class EmbeddedServer:
    """TF Serving-compatible REST + gRPC server for one model's base path.

    Args:
        base_path: directory of numeric version subdirectories (must exist).
        model_name: the name in `/v1/models/<name>` and in gRPC `ModelSpec.name`.
        host: interface to bind (default loopback only).
        rest_port, grpc_port: ports; 0 picks a free one, None disables that API.
        poll_seconds: how often the base path is checked for new versions.
        max_body_bytes: largest REST body / gRPC message accepted (413 / RESOURCE_EXHAUSTED).
        num_versions: serve the newest N versions; None serves all of them.
        version_labels: label -> version for `/labels/<label>` and `version_label`.
        batching: a `BatchingParameters` to merge concurrent requests into one signature
            call (TF Serving's `--enable_batching`); None calls the signature per request.
        request_timeout: seconds a REST client may take to send a request body (then 408).
        idle_timeout: seconds a REST connection may go without a complete request header:
            idle keep-alive connections and clients trickling headers are closed after it.
        model_threads: threads running unbatched REST model calls (gRPC's run on its 16 handler threads).
    """

    def __init__(self, base_path: str | os.PathLike, *, model_name: str, host: str = "127.0.0.1",
                 rest_port: int | None = 8501, grpc_port: int | None = 8500, poll_seconds: float = 2.0,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, num_versions: int | None = 1,
                 version_labels: Mapping[str, int] | None = None, batching=None,
                 request_timeout: float = 30.0, idle_timeout: float = 30.0, model_threads: int = 4):
        if poll_seconds <= 0:
            raise SpecError(Problem("serve.poll_seconds", "poll interval must be positive",
                                    expected="> 0", received=str(poll_seconds)))
        self.base_path = Path(base_path)
        self.model_name = model_name
        self.host = host
        self._ports = {"rest": rest_port, "grpc": grpc_port}
        self.poll_seconds = poll_seconds
        self.max_body_bytes = max_body_bytes
        self.num_versions = num_versions
        self.version_labels = dict(version_labels or {})
        self.batching = batching
        self.request_timeout = request_timeout
        self.idle_timeout = idle_timeout
        self.model_threads = model_threads
        self.repository = None
        self._executor = self._scheduler = None
        self._rest = self._grpc = self._poller = None
        self._stopping = threading.Event()
        self._first_poll = threading.Event()

    @property
    def rest_port(self) -> int | None:
        return self._ports["rest"]

    @property
    def grpc_port(self) -> int | None:
        return self._ports["grpc"]

    @property
    def batch_scheduler(self):
        """The `BatchScheduler` when batching is on (its `stats` count batches and requests), else None."""
        return self._scheduler

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.rest_port}"

    def start(self, *, wait_for_model: bool = True, timeout: float = 300.0) -> "EmbeddedServer":
        """Bind the ports and start polling; by default wait until the first poll has loaded."""
        from kerasflow.serve.servables import ModelRepository

        if not self.base_path.is_dir():
            raise SpecError(Problem("serve.base_path", "base path is not a directory",
                                    expected="a directory with numeric version subdirectories",
                                    received=str(self.base_path), hint="run `kerasflow export` first"))
        if self.batching is not None:
            from kerasflow.serve.batching import BatchScheduler

            self._scheduler = BatchScheduler(self.batching)
            log.info("batching enabled: %s", self.batching)
        self._executor = ThreadPoolExecutor(self.model_threads, thread_name_prefix="kerasflow-model")
        self.repository = ModelRepository(self.base_path, self.model_name, num_versions=self.num_versions,
                                          version_labels=self.version_labels, scheduler=self._scheduler)
        try:
            self._start_apis()
        except OSError as err:
            self.stop()
            raise SpecError(Problem("serve", f"cannot bind {self.host}: {err}",
                                    received=f"rest_port={self._ports['rest']}, grpc_port={self._ports['grpc']}",
                                    hint="pick free ports, or 0 for any free port")) from err
        self._poller = threading.Thread(target=self._poll_loop, name="kerasflow-poll", daemon=True)
        self._poller.start()
        if wait_for_model and not self._first_poll.wait(timeout):
            log.warning("first load of %s did not finish within %.0fs", self.model_name, timeout)
        return self

    def _start_apis(self) -> None:
        if self._ports["rest"] is not None:
            from kerasflow.serve.rest import RestServer

            self._rest = RestServer(self.host, self._ports["rest"], self.repository, self.max_body_bytes,
                                    executor=self._executor, body_timeout=self.request_timeout,
                                    keepalive_timeout=self.idle_timeout)
            self._ports["rest"] = self._rest.start()
        if self._ports["grpc"] is not None:
            from kerasflow.serve.grpc_api import GrpcServer

            self._grpc = GrpcServer(self.host, self._ports["grpc"], self.repository,
                                    max_message_bytes=self.max_body_bytes, executor=self._executor)
            self._ports["grpc"] = self._grpc.start()

    def _poll_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.repository.poll()
            except Exception:  # a bad poll (e.g. base path briefly gone) must not stop serving
                log.exception("polling %s failed", self.base_path)
            self._first_poll.set()
            self._stopping.wait(self.poll_seconds)

    def stop(self) -> None:
        """Stop polling and both APIs (idempotent)."""
        self._stopping.set()
        if self._rest is not None:
            self._rest.stop()
            self._rest = None
        if self._grpc is not None:
            self._grpc.stop(grace=1.0)
            self._grpc = None
        if self._poller is not None and self._poller is not threading.current_thread():
            self._poller.join(timeout=30)
            self._poller = None
        if self._scheduler is not None:
            self._scheduler.stop()
            self._scheduler = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> "EmbeddedServer":
        return self if self._poller else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve(base_path: str | os.PathLike, *, model_name: str, host: str = "127.0.0.1", rest_port: int = 8501,
          grpc_port: int = 8500, poll_seconds: float = 2.0, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
          num_versions: int | None = 1, use_tfserving: bool | None = None, enable_batching: bool = False,
          batching_parameters_file: str | os.PathLike | None = None) -> int:
    """Serve `base_path` until SIGINT/SIGTERM; returns an exit code.

    `use_tfserving`: None launches `tensorflow_model_server` if it is on PATH and
    the embedded server otherwise; True requires the binary; False never uses it.
    `enable_batching` / `batching_parameters_file`: TF Serving's flags of the same
    names (the file is text-format `BatchingParameters`, read by either server).
    """
    from kerasflow.serve.batching import BatchingParameters
    from kerasflow.serve.tfserving import batching_flags, find_model_server, launch_model_server

    if batching_parameters_file and not enable_batching:
        raise SpecError(Problem("serve.batching_parameters_file", "a batching parameters file needs batching on",
                                hint="add --enable-batching"))
    batching = None
    if enable_batching:  # parsed even for TF Serving: a bad file fails here, with a clear message
        batching = (BatchingParameters.from_file(batching_parameters_file) if batching_parameters_file
                    else BatchingParameters())
    binary = find_model_server() if use_tfserving is not False else None
    if use_tfserving and binary is None:
        raise SpecError(Problem("serve", "tensorflow_model_server is not on PATH",
                                hint="install TF Serving, use the tensorflow/serving Docker image, "
                                     "or drop --tfserving to use the embedded server"))
    stop = threading.Event()
    previous = _install_signal_handlers(stop)
    try:
        if binary:
            process = launch_model_server(base_path, model_name, rest_port, grpc_port, host,
                                          poll_seconds=poll_seconds, executable=binary,
                                          extra_args=batching_flags(enable_batching, batching_parameters_file))
            while process.poll() is None and not stop.wait(0.5):
                pass
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except Exception:
                    process.kill()
            return process.wait() if process.returncode is None else process.returncode
        with EmbeddedServer(base_path, model_name=model_name, host=host, rest_port=rest_port,
                            grpc_port=grpc_port, poll_seconds=poll_seconds, max_body_bytes=max_body_bytes,
                            num_versions=num_versions, batching=batching).start(wait_for_model=False) as server:
            print(f"kerasflow: serving '{model_name}' from {Path(base_path).resolve()}\n"
                  f"  REST {server.rest_url}/v1/models/{model_name}\n"
                  f"  gRPC {host}:{server.grpc_port}\n"
                  "  (Ctrl-C to stop)", file=sys.stderr, flush=True)
            stop.wait()
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def served_outputs(base_path: str | os.PathLike, model_name: str, version: int,
                   rows: Mapping[str, Any]) -> dict:
    """What the embedded server answers over REST for `rows` from `version` of
    `base_path` (the path a client takes); output name -> values as JSON decodes them."""
    import json
    import urllib.request

    import numpy as np

    payload = json.dumps({"inputs": {k: np.asarray(v).tolist() for k, v in rows.items()}}).encode()
    with EmbeddedServer(base_path, model_name=model_name, rest_port=0, grpc_port=None).start() as server:
        url = f"{server.rest_url}/v1/models/{model_name}/versions/{version}:predict"
        request = urllib.request.Request(url, data=payload, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())["outputs"]


def _install_signal_handlers(stop: threading.Event) -> dict:
    if threading.current_thread() is not threading.main_thread():
        return {}  # signals only reach the main thread; the caller stops us another way
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, lambda *_: stop.set())
    return previous
