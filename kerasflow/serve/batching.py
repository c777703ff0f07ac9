"""Server-side request batching with TF Serving's parameters and semantics.

`--batching_parameters_file` is a text-format `tensorflow.serving.BatchingParameters`
(`tensorflow_serving/servables/tensorflow/session_bundle_config.proto`); the pip
package `tensorflow-serving-api` does not ship that proto, so its message is
declared here with the same package, field names, numbers and types and parsed
with protobuf's own text format: a file that parses here parses in
`tensorflow_model_server` too.

`BatchScheduler` behaves like TF Serving's shared batch scheduler: one queue
per (servable version, signature), `num_batch_threads` threads shared by all
queues. A request joins the open batch of its queue if it fits in
`max_batch_size`; otherwise that batch is closed and a new one opened, and
when the queue already holds `max_enqueued_batches` batches the request fails
with UNAVAILABLE ("queue is full"), immediately. A free thread takes a closed
batch, or the open one once its oldest request has waited
`batch_timeout_micros` (0: right away, so batches grow while the threads are
busy). Inputs are concatenated along the batch dimension, padded to the next
`allowed_batch_sizes` entry with copies of the last request's first row, optionally padded
along other dimensions (`pad_variable_length_inputs`, with each tensor's first
element as the pad value), run once, and each request gets its own slice of
every output back.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from kerasflow.serve.servables import ServingError
from kerasflow.spec.errors import Problem, SpecError

log = logging.getLogger("kerasflow.serve")

_PROTO_FILE = "kerasflow/serve/batching_parameters.proto"  # private pool: never clashes with a real copy
# SharedBatchScheduler / BasicBatchScheduler defaults, as TF Serving applies them for unset fields
DEFAULTS = {"max_batch_size": 1000, "batch_timeout_micros": 0, "max_enqueued_batches": 10,
            "num_batch_threads": os.cpu_count() or 1}
_INT64_FIELDS = ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads")


def _message_class():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    F = descriptor_pb2.FieldDescriptorProto
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    file = descriptor_pb2.FileDescriptorProto(name=_PROTO_FILE, package="tensorflow.serving", syntax="proto3",
                                              dependency=[wrappers.name])
    message = file.message_type.add(name="BatchingParameters")
    fields = [(name, i + 1, ".google.protobuf.Int64Value") for i, name in enumerate(_INT64_FIELDS)]
    fields += [("thread_pool_name", 5, ".google.protobuf.StringValue"),
               ("enable_large_batch_splitting", 8, ".google.protobuf.BoolValue"),
               ("max_execution_batch_size", 9, ".google.protobuf.Int64Value")]
    for name, number, type_name in fields:
        message.field.add(name=name, number=number, label=F.LABEL_OPTIONAL, type=F.TYPE_MESSAGE, type_name=type_name)
    message.field.add(name="allowed_batch_sizes", number=6, label=F.LABEL_REPEATED, type=F.TYPE_INT64)
    message.field.add(name="pad_variable_length_inputs", number=7, label=F.LABEL_OPTIONAL, type=F.TYPE_BOOL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(wrappers)
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


class BatchingParameters:
    """Resolved batching settings (TF Serving's defaults for unset fields).

    Args:
        max_batch_size, batch_timeout_micros, max_enqueued_batches, num_batch_threads:
            as in TF Serving's `BatchingParameters`.
        allowed_batch_sizes: increasing sizes ending at `max_batch_size`; batches are padded up to one.
        pad_variable_length_inputs: pad non-batch dimensions that differ between requests.
    """

    def __init__(self, *, max_batch_size: int = DEFAULTS["max_batch_size"],
                 batch_timeout_micros: int = DEFAULTS["batch_timeout_micros"],
                 max_enqueued_batches: int = DEFAULTS["max_enqueued_batches"],
                 num_batch_threads: int = DEFAULTS["num_batch_threads"], allowed_batch_sizes=(),
                 pad_variable_length_inputs: bool = False, where: str = "batching_parameters"):
        problems = [Problem(f"{where}.{name}", "must be at least 1" if name != "batch_timeout_micros"
                            else "must not be negative", received=str(value))
                    for name, value, low in (("max_batch_size", max_batch_size, 1),
                                             ("batch_timeout_micros", batch_timeout_micros, 0),
                                             ("max_enqueued_batches", max_enqueued_batches, 1),
                                             ("num_batch_threads", num_batch_threads, 1)) if value < low]
        sizes = list(allowed_batch_sizes)
        if sizes and (any(b <= a for a, b in itertools.pairwise(sizes)) or sizes[0] < 1):
            problems.append(Problem(f"{where}.allowed_batch_sizes", "entries must be positive and increasing",
                                    received=str(sizes)))
        elif sizes and sizes[-1] != max_batch_size:
            problems.append(Problem(f"{where}.allowed_batch_sizes", "the final entry must equal max_batch_size",
                                    expected=str(max_batch_size), received=str(sizes[-1])))
        if problems:
            raise SpecError(problems)
        self.max_batch_size = max_batch_size
        self.batch_timeout_micros = batch_timeout_micros
        self.max_enqueued_batches = max_enqueued_batches
        self.num_batch_threads = num_batch_threads
        self.allowed_batch_sizes = sizes
        self.pad_variable_length_inputs = pad_variable_length_inputs

    def __repr__(self) -> str:
        return (f"BatchingParameters(max_batch_size={self.max_batch_size}, batch_timeout_micros="
                f"{self.batch_timeout_micros}, max_enqueued_batches={self.max_enqueued_batches}, "
                f"num_batch_threads={self.num_batch_threads}, allowed_batch_sizes={self.allowed_batch_sizes}, "
                f"pad_variable_length_inputs={self.pad_variable_length_inputs})")

    @classmethod
    def from_text(cls, text: str, where: str = "batching_parameters") -> BatchingParameters:
        """Parse TF Serving's text-format BatchingParameters (`max_batch_size { value: 32 }` ...)."""
        from google.protobuf import text_format

        message = _message_class()()
        try:
            text_format.Parse(text, message)
        except text_format.ParseError as err:
            raise SpecError(Problem(where, f"not a text-format tensorflow.serving.BatchingParameters: {err}",
                                    expected="e.g. `max_batch_size { value: 32 }` lines")) from None
        values = {name: getattr(message, name).value for name in _INT64_FIELDS if message.HasField(name)}
        if message.HasField("enable_large_batch_splitting") and message.enable_large_batch_splitting.value:
            log.warning("%s: enable_large_batch_splitting is not implemented by the embedded server; "
                        "requests over max_batch_size are refused", where)
        if message.HasField("max_execution_batch_size"):
            log.warning("%s: max_execution_batch_size only applies with large batch splitting; ignored", where)
        return cls(**values, allowed_batch_sizes=list(message.allowed_batch_sizes),
                   pad_variable_length_inputs=message.pad_variable_length_inputs, where=where)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> BatchingParameters:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise SpecError(Problem("serve.batching_parameters_file", f"cannot read {path}: {err}")) from None
        return cls.from_text(text, where=str(path))


class _Task:
    __slots__ = ("future", "inputs", "size")

    def __init__(self, inputs: Mapping[str, np.ndarray], size: int):
        self.inputs, self.size, self.future = inputs, size, Future()


class _Batch:
    __slots__ = ("closed", "opened", "size", "tasks")

    def __init__(self):
        self.tasks: list[_Task] = []
        self.size, self.opened, self.closed = 0, time.monotonic(), False


class _Queue:
    def __init__(self, run: Callable[[dict], dict]):
        self.run = run
        self.batches: collections.deque[_Batch] = collections.deque()


class BatchScheduler:
    """Merges concurrent requests per (version, signature) into one signature call.

    `submit(key, run, inputs)` returns a `concurrent.futures.Future` of the
    request's own outputs; `run(arrays) -> arrays` is the signature call.
    """

    def __init__(self, params: BatchingParameters):
        self.params = params
        self._queues: dict[object, _Queue] = {}
        self._cond = threading.Condition()
        self._stopping = False
        self._wait: float | None = None
        self.stats = {"batches": 0, "tasks": 0, "rows": 0}  # what was run, for tests and logs
        self._threads = [threading.Thread(target=self._work, name=f"kerasflow-batch-{i}", daemon=True)
                         for i in range(params.num_batch_threads)]
        for thread in self._threads:
            thread.start()

    def submit(self, key, run: Callable[[dict], dict], inputs: Mapping[str, np.ndarray]) -> Future:
        if not inputs:
            raise ServingError("INVALID_ARGUMENT", "Batching session Run() must have at least one input tensor")
        if any(a.ndim == 0 for a in inputs.values()):
            raise ServingError("INVALID_ARGUMENT", "Batching session Run() input tensors must have at least one "
                                                   "dimension")
        sizes = {int(a.shape[0]) for a in inputs.values()}
        if len(sizes) != 1:
            raise ServingError("INVALID_ARGUMENT", "Batching session Run() input tensors must have equal "
                                                   "0th-dimension size")
        (size,) = sizes
        limit = self.params.max_batch_size
        if size > limit:
            raise ServingError("INVALID_ARGUMENT", f"Task size {size} is larger than maximum input batch size {limit}")
        task = _Task(inputs, size)
        with self._cond:
            if self._stopping:
                raise ServingError("UNAVAILABLE", "The batch scheduler is shutting down")
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = _Queue(run)
            open_batch = queue.batches[-1] if queue.batches and not queue.batches[-1].closed else None
            if open_batch is None or open_batch.size + size > limit:
                if open_batch is not None:
                    open_batch.closed = True
                if len(queue.batches) >= self.params.max_enqueued_batches:
                    raise ServingError("UNAVAILABLE", "The batch scheduling queue to which this task was "
                                                      "submitted is full")
                open_batch = _Batch()
                queue.batches.append(open_batch)
            open_batch.tasks.append(task)
            open_batch.size += size
            if open_batch.size == limit:
                open_batch.closed = True
            self._cond.notify()
        return task.future

    def _next_batch(self) -> tuple[_Queue, _Batch] | None:
        """The oldest ready batch (caller holds the lock), or None; sets `self._wait` for the next deadline."""
        now, timeout = time.monotonic(), self.params.batch_timeout_micros / 1e6
        best, self._wait = None, None
        for key, queue in list(self._queues.items()):
            if not queue.batches:
                del self._queues[key]  # versions come and go: don't keep their empty queues
                continue
            head = queue.batches[0]
            due = head.opened + timeout
            if head.closed or due <= now:
                if best is None or head.opened < best[1].opened:
                    best = (queue, head)
            elif self._wait is None or due - now < self._wait:
                self._wait = due - now
        if best:
            best[0].batches.popleft()
            best[1].closed = True
        return best

    def _work(self) -> None:
        while True:
            with self._cond:
                picked = self._next_batch()
                while picked is None:
                    if self._stopping:
                        return
                    self._cond.wait(self._wait)
                    picked = self._next_batch()
            self._process(*picked)

    def _process(self, queue: _Queue, batch: _Batch) -> None:
        tasks = [t for t in batch.tasks if t.future.set_running_or_notify_cancel()]
        if not tasks:
            return
        try:
            merged = merge_inputs([t.inputs for t in tasks], self.params)
            with self._cond:
                self.stats["batches"] += 1
                self.stats["tasks"] += len(tasks)
                self.stats["rows"] += sum(t.size for t in tasks)
            outputs = queue.run(merged)
            padded = next(iter(merged.values())).shape[0]
            for array in outputs.values():  # TF Serving's checks and messages (batching_session.cc)
                if array.ndim == 0:
                    raise ServingError("FAILED_PRECONDITION", "Batched output tensor has 0 dimensions")
                if array.shape[0] != padded:
                    raise ServingError("FAILED_PRECONDITION", "Batched output tensor's 0th dimension does not "
                                                              "equal the sum of the 0th dimension sizes of the "
                                                              "input tensors")
            start = 0
            for task in tasks:
                task.future.set_result({k: v[start:start + task.size] for k, v in outputs.items()})
                start += task.size
        except Exception as err:  # noqa: BLE001 - every request of the batch gets the batch's error
            for task in tasks:
                if not task.future.done():
                    task.future.set_exception(err)

    def stop(self) -> None:
        """Finish queued batches, then end the threads."""
        with self._cond:
            self._stopping = True
            for queue in self._queues.values():
                for batch in queue.batches:
                    batch.closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)


def merge_inputs(requests: list[Mapping[str, np.ndarray]], params: BatchingParameters) -> dict[str, np.ndarray]:
    """Concatenate the requests' inputs along dim 0, padded as TF Serving's batching session does.

    As `BatchingSession::MergeInputTensors`: with `pad_variable_length_inputs`
    every tensor is padded to the largest size of each dimension with its own
    first element; the batch is padded up to the next `allowed_batch_sizes`
    entry with copies of the *last* request's first row.
    """
    merged = {}
    total = sum(len(next(iter(r.values()))) for r in requests)
    target = next((s for s in params.allowed_batch_sizes if s >= total), total)
    for name in requests[0]:
        arrays = [r[name] for r in requests]
        tails = {a.shape[1:] for a in arrays}
        if len(tails) > 1:
            if not params.pad_variable_length_inputs:
                raise ServingError("FAILED_PRECONDITION", f"Tensors with name '{name}' from different tasks have "
                                                          "different shapes and padding is turned off. Set "
                                                          "pad_variable_length_inputs to true, or ensure that all "
                                                          "tensors with the same name have equal dimensions "
                                                          "starting with the first dim.")
            if len({len(t) for t in tails}) > 1:
                raise ServingError("INVALID_ARGUMENT", f"Tensors with name '{name}' from different tasks have "
                                                       "different ranks")
            widest = tuple(max(dims) for dims in zip(*tails))
            arrays = [_pad_to(a, widest) for a in arrays]
        if target > total:
            arrays.append(np.repeat(arrays[-1][:1], target - total, axis=0))
        merged[name] = np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
    return merged


def _pad_to(array: np.ndarray, tail: tuple) -> np.ndarray:
    if array.shape[1:] == tail:
        return array
    if array.size == 0:
        raise ServingError("INVALID_ARGUMENT", "Got empty tensor in batch of non-empty tensors.")
    widths = [(0, 0)] + [(0, want - have) for have, want in zip(array.shape[1:], tail)]
    if array.dtype.kind == "O":  # np.pad cannot fill object arrays with a constant
        out = np.full((array.shape[0], *tail), array.flat[0], dtype=object)
        out[tuple(slice(0, d) for d in array.shape)] = array
        return out
    return np.pad(array, widths, constant_values=array.flat[0])
