"""Launch the real `tensorflow_model_server` when it is installed.

The binary has no pip package (it ships in the `tensorflow/serving` Docker
image and an apt repository), so `kerasflow serve` uses it only when it is on
PATH and otherwise falls back to the embedded server.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

log = logging.getLogger("kerasflow.serve")

BINARY = "tensorflow_model_server"


WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def binds_all_interfaces(host: str) -> bool:
    """Whether `host` asks for every interface, the only thing the binary can do.

    `tensorflow_model_server` has no bind-address flag: it listens on 0.0.0.0
    (tensorflow/serving#1969). So kerasflow launches it only when the user asked
    for all interfaces; the default loopback host uses the embedded server.
    """
    return host in WILDCARD_HOSTS


def find_model_server() -> str | None:
    """Path of `tensorflow_model_server` on PATH, or None."""
    return shutil.which(BINARY)


def batching_flags(enable_batching: bool, batching_parameters_file: str | os.PathLike | None = None) -> list[str]:
    """TF Serving's own batching flags; the parameters file is passed as is (same text format)."""
    if not enable_batching:
        return []
    flags = ["--enable_batching=true"]
    if batching_parameters_file:
        flags.append(f"--batching_parameters_file={Path(batching_parameters_file).resolve()}")
    return flags


def model_server_command(
    base_path: str | os.PathLike,
    model_name: str,
    rest_port: int = 8501,
    grpc_port: int = 8500,
    *,
    executable: str = BINARY,
    poll_seconds: float = 2.0,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The command line `launch_model_server` runs."""
    return [
        executable,
        f"--port={grpc_port}",
        f"--rest_api_port={rest_port}",
        f"--model_name={model_name}",
        f"--model_base_path={Path(base_path).resolve()}",
        # the flag is an integer; 0 would mean "poll once"
        f"--file_system_poll_wait_seconds={max(1, math.ceil(poll_seconds))}",
        *extra_args,
    ]


def launch_model_server(
    base_path: str | os.PathLike,
    model_name: str,
    rest_port: int = 8501,
    grpc_port: int = 8500,
    host: str = "127.0.0.1",
    *,
    poll_seconds: float = 2.0,
    executable: str | None = None,
    extra_args: Sequence[str] = (),
) -> subprocess.Popen:
    """Start `tensorflow_model_server` on `base_path`; the caller owns (and stops) the process.

    Raises:
        SpecError: `host` is not a wildcard address. The binary always listens
            on all interfaces, so it is never started for a narrower host.
    """
    binary = executable or find_model_server()
    if binary is None:
        raise FileNotFoundError(f"{BINARY} is not on PATH")
    if not binds_all_interfaces(host):
        from kerasflow.spec.errors import Problem, SpecError

        raise SpecError(Problem(path="--host", message=f"{BINARY} cannot listen on {host} only: it binds all "
                                "interfaces", expected="--host 0.0.0.0 (all interfaces), or the embedded server",
                                hint="drop --tfserving to serve on loopback with the embedded server"))
    cmd = model_server_command(base_path, model_name, rest_port, grpc_port, executable=binary,
                               poll_seconds=poll_seconds, extra_args=extra_args)
    log.info("starting %s", " ".join(cmd))
    return subprocess.Popen(cmd)
