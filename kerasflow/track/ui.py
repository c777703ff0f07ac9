"""`kerasflow ui`: the MLflow UI on 127.0.0.1 against the configured store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable

from kerasflow.spec.errors import Problem, SpecError

_READY_TIMEOUT_S = 120.0


def launch_ui(uri: str, host: str = "127.0.0.1", port: int = 5000, *,
              on_ready: Callable[[str], None] | None = None) -> int:
    """Serve the MLflow UI for the store at `uri` until interrupted; returns the exit code.

    Runs `mlflow server` (one worker) in its own process group and, once `/health`
    answers, prints the URL (or calls `on_ready(url)`). Ctrl-C (or SIGTERM) stops
    the whole group. An http(s) `uri` is already a server with a UI: its URL is
    reported and nothing is started.

    Raises:
        SpecError: when `uri` is a sqlite store whose file does not exist (the
            UI would show an empty store, almost always the wrong directory).
    """
    on_ready = on_ready or (lambda url: print(f"MLflow UI for {uri}: {url}  (Ctrl-C stops it)", flush=True))
    if uri.startswith(("http://", "https://")):
        on_ready(uri)
        return 0
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        if not db.exists():
            raise SpecError(Problem(
                path="tracking.uri", message=f"no MLflow store at {db}",
                expected="an existing sqlite file written by kerasflow train", received=uri,
                hint="run the command from the directory holding mlflow.db, or pass the store URI",
            ))
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
           "--host", host, "--port", str(port), "--workers", "1"]
    # The job runner (GenAI evaluation jobs) starts its own sessions, which a
    # process-group stop would not reach; the UI does not need it.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    url = f"http://{host}:{port}"
    try:  # SIGTERM (a service manager, `kill`) takes the same way out as Ctrl-C
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:  # not the main thread: signals stay as they are
        previous = None
    try:
        if not _wait_healthy(url, proc):  # the server's own stderr says why
            code = proc.poll()
            return 1 if code is None else code
        on_ready(url)
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        stop_group(proc)


def stop_group(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the process group led by `proc`; SIGKILL it if still alive after `timeout`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return  # the whole group is gone
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader, or it would count as alive
            if not _group_alive(proc.pid):
                return
            time.sleep(0.2)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_healthy(url: str, proc: subprocess.Popen) -> bool:
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.5)
    return False


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt
