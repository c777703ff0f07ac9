"""A real `mlflow server` for tests: sqlite backend and artifacts under a temp dir,
127.0.0.1 on a free port, its own process group, stopped as a whole group."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

READY_TIMEOUT_S = 90.0


@dataclass
class MlflowServer:
    uri: str
    root: Path  # holds mlflow.db, artifacts/ and server.log
    proc: subprocess.Popen

    @property
    def pgid(self) -> int:
        return self.proc.pid  # start_new_session: the leader's pid is the group id

    @property
    def backend_uri(self) -> str:
        """The server's own sqlite store, readable after the server is gone."""
        return f"sqlite:///{self.root / 'mlflow.db'}"

    def kill(self) -> None:
        """SIGKILL the whole group at once: an abrupt outage, no graceful shutdown."""
        _signal_group(self.pgid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        _wait_group_gone(self.pgid, timeout=10)

    def stop(self) -> None:
        """SIGTERM the group, SIGKILL whatever is left after 15 s."""
        if _signal_group(self.pgid, signal.SIGTERM):
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
            if not _wait_group_gone(self.pgid, timeout=15):
                _signal_group(self.pgid, signal.SIGKILL)
                _wait_group_gone(self.pgid, timeout=10)
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)

    def log_tail(self, n: int = 40) -> str:
        path = self.root / "server.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() else ""


def migrated_store(path: Path) -> Path:
    """Create an MLflow sqlite store at `path`. MLflow's schema migrations take
    seconds; tests copy one migrated file instead of migrating per test."""
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments(max_results=1)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group `pgid`, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command: state ppid pgrp ...
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


@contextlib.contextmanager
def mlflow_server(root: Path, template: Path | None = None) -> Iterator[MlflowServer]:
    """Start `mlflow server` for the duration of the block; the whole group is stopped after.

    `template`: an already migrated store (see `migrated_store`) copied in as the backend.
    """
    root.mkdir(parents=True, exist_ok=True)
    if template is not None:
        shutil.copyfile(template, root / "mlflow.db")
    port = free_port()
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1",
    ]
    # Job execution starts runner processes in sessions of their own, out of reach
    # of a group kill; tracking does not use it.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(root / "server.log", "wb") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = MlflowServer(uri=f"http://127.0.0.1:{port}", root=root, proc=proc)
    try:
        _wait_ready(server)
        yield server
    finally:
        server.stop()


def _wait_ready(server: MlflowServer) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {server.proc.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.uri}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"mlflow server not healthy after {READY_TIMEOUT_S} s:\n{server.log_tail()}")


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False


def _wait_group_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while group_members(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True
