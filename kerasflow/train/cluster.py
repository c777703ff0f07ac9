"""The tf.distribute cluster of a `multi_worker` run and this process's place in it.

Pure Python (no TensorFlow): the cluster is read from `--workers host:port,...
--worker-index I` or from the `TF_CONFIG` environment variable, checked, and
written back as `TF_CONFIG` before TensorFlow starts, which is where
`MultiWorkerMirroredStrategy` reads it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

from kerasflow.spec.errors import Problem, SpecError

TF_CONFIG = "TF_CONFIG"
_PATH = "training.distribution"
_JOBS = ("chief", "worker")  # the task types MultiWorkerMirroredStrategy trains with
_ADDRESS = re.compile(r"^(?P<host>[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>[0-9]{1,5})$")
_HINT = "pass --workers HOST:PORT,HOST:PORT,... and --worker-index I (the same list on every worker), or set TF_CONFIG"


@dataclass(frozen=True)
class Cluster:
    """A cluster of training tasks and the one this process runs.

    Args:
        jobs: addresses per task type, e.g. `{"worker": ("10.0.0.1:2222", ...)}`.
        task_type: `chief` or `worker`.
        task_index: index of this task within its type.
    """

    jobs: Mapping[str, tuple[str, ...]]
    task_type: str
    task_index: int

    @property
    def is_chief(self) -> bool:
        """TF's convention: the `chief` task, or worker 0 when there is no chief job."""
        if self.task_type == "chief":
            return True
        return self.task_type == "worker" and self.task_index == 0 and not self.jobs.get("chief")

    @property
    def size(self) -> int:
        """Number of training processes."""
        return sum(len(addresses) for addresses in self.jobs.values())

    @property
    def task(self) -> str:
        """`worker 1 of 2` style label for logs."""
        label = f"{self.task_type} {self.task_index} of {self.size}"
        return label + (" (chief)" if self.is_chief and self.task_type != "chief" else "")

    def tf_config(self) -> str:
        """The `TF_CONFIG` JSON that describes this cluster and task."""
        return json.dumps({"cluster": {job: list(addresses) for job, addresses in self.jobs.items()},
                           "task": {"type": self.task_type, "index": self.task_index}})


def resolve_cluster(workers: str | Sequence[str] | None = None, worker_index: int | None = None,
                    environ: Mapping[str, str] | None = None) -> Cluster:
    """The cluster from `workers` + `worker_index` (the CLI flags), else `TF_CONFIG`.

    Args:
        workers: every worker's `host:port`, in the same order on every worker
            (a comma-separated string or a sequence); worker 0 is the chief.
        worker_index: this process's index in `workers`.
        environ: where `TF_CONFIG` is read (default `os.environ`).

    Raises:
        SpecError: at `training.distribution`, naming what is missing or malformed.
    """
    environ = os.environ if environ is None else environ
    if workers is not None or worker_index is not None:
        return _from_flags(workers, worker_index)
    raw = environ.get(TF_CONFIG, "").strip()
    if not raw:
        raise SpecError(Problem(path=_PATH, message="multi_worker needs a cluster: no --workers given and TF_CONFIG "
                                "is not set", hint=_HINT))
    return _from_tf_config(raw)


def _from_flags(workers, worker_index) -> Cluster:
    if workers is None:
        raise SpecError(Problem(path=_PATH, message="--worker-index needs --workers", hint=_HINT))
    if worker_index is None:
        raise SpecError(Problem(path=_PATH, message="--workers needs --worker-index (this process's place in the list)",
                                hint=_HINT))
    addresses = [a.strip() for a in workers.split(",")] if isinstance(workers, str) else [str(a) for a in workers]
    problems = _check_addresses(addresses, "--workers")
    if not problems and not 0 <= int(worker_index) < len(addresses):
        problems.append(Problem(path=_PATH, message=f"--worker-index {worker_index} is not in the list of "
                                f"{len(addresses)} workers", expected=f"0 to {len(addresses) - 1}",
                                received=str(worker_index)))
    if problems:
        raise SpecError(problems)
    return Cluster(jobs={"worker": tuple(addresses)}, task_type="worker", task_index=int(worker_index))


def _from_tf_config(raw: str) -> Cluster:
    def problem(message, **kw):
        return SpecError(Problem(path=_PATH, message=f"TF_CONFIG {message}", hint=kw.pop("hint", _HINT), **kw))

    try:
        config = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise problem(f"is not JSON ({exc.msg} at character {exc.pos})", received=raw[:120]) from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict) or not config["cluster"]:
        raise problem("has no `cluster`", expected='{"cluster": {"worker": ["host:port", ...]}, '
                      '"task": {"type": "worker", "index": 0}}', received=raw[:120])
    cluster, task = config["cluster"], config.get("task")
    others = sorted(set(cluster) - set(_JOBS))
    if others:
        raise problem(f"has task types multi_worker cannot train with: {', '.join(others)}",
                      expected="chief and worker only", hint="parameter servers and evaluators are not supported")
    problems = []
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses:
            problems.append(Problem(path=_PATH, message=f"TF_CONFIG cluster.{job} is not a list of addresses",
                                    received=json.dumps(addresses)))
    if not problems:
        problems = _check_addresses([a for job in _JOBS for a in cluster.get(job, [])], "TF_CONFIG cluster")
    if len(cluster.get("chief", [])) > 1:
        problems.append(Problem(path=_PATH, message="TF_CONFIG cluster.chief has more than one address",
                                received=json.dumps(cluster["chief"])))
    if problems:
        raise SpecError(problems)
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise problem("has no `task` naming this process's job", expected=f"type one of: {', '.join(cluster)}",
                      received=json.dumps(task))
    index = task.get("index", 0)
    size = len(cluster[task["type"]])
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < size:
        raise problem(f"task.index is not in cluster.{task['type']}", expected=f"0 to {size - 1}",
                      received=json.dumps(index))
    return Cluster(jobs={job: tuple(cluster[job]) for job in _JOBS if job in cluster},
                   task_type=task["type"], task_index=index)


def _check_addresses(addresses: list, where: str) -> list[Problem]:
    problems = []
    for address in addresses:
        match = _ADDRESS.match(address) if isinstance(address, str) else None
        if match is None or not 0 < int(match["port"]) < 65536:
            problems.append(Problem(path=_PATH, message=f"{where}: `{address}` is not an address",
                                    expected="host:port with a port from 1 to 65535", received=str(address)))
    duplicates = sorted({a for a in addresses if addresses.count(a) > 1})
    if duplicates:
        problems.append(Problem(path=_PATH, message=f"{where}: {', '.join(duplicates)} appears more than once",
                                hint="every worker needs its own port"))
    return problems
