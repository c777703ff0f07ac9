"""KerasTuner's chief/worker roles, which it reads from the environment:
`KERASTUNER_TUNER_ID` (`chief` or a worker id), `KERASTUNER_ORACLE_IP` and
`KERASTUNER_ORACLE_PORT`."""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Iterator, Literal

from kerasflow.spec.errors import Problem, SpecError

Role = Literal["standalone", "chief", "worker"]
ENV = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")


def role_environment(role: Role, chief_address: str | None, port: int | None, worker_id: str | None) -> dict:
    """KerasTuner's distribution variables for `role` (None values are unset)."""
    if role == "standalone":
        return {name: None for name in ENV}
    if role == "chief":
        if port is None:
            raise SpecError(Problem(path="--port", message="a chief needs a port to serve the oracle on",
                                    hint="kerasflow tune FILE --chief --port 8000"))
        host = chief_address.rsplit(":", 1)[0] if chief_address else "0.0.0.0"
        return {"KERASTUNER_TUNER_ID": "chief", "KERASTUNER_ORACLE_IP": host, "KERASTUNER_ORACLE_PORT": str(port)}
    if role == "worker":
        host, sep, text = (chief_address or "").rpartition(":")
        if not sep or not host or not text.isdigit():
            raise SpecError(Problem(path="--chief-address", message="a worker needs the chief's address",
                                    expected="HOST:PORT", received=repr(chief_address)))
        worker_id = worker_id or f"worker-{socket.gethostname()}-{os.getpid()}"
        if "chief" in worker_id:
            raise SpecError(Problem(path="--worker-id", message="a worker id must not contain `chief`",
                                    received=worker_id,
                                    hint="KerasTuner treats any id containing `chief` as the chief"))
        return {"KERASTUNER_TUNER_ID": worker_id, "KERASTUNER_ORACLE_IP": host, "KERASTUNER_ORACLE_PORT": text}
    raise SpecError(Problem(path="role", message=f"unknown role `{role}`", expected="standalone, chief or worker"))


@contextlib.contextmanager
def environment(values: dict) -> Iterator[None]:
    """KerasTuner reads its role from the environment; set it for this search only."""
    saved = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
