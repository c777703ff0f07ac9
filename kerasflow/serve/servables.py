"""Loaded SavedModel versions of one model, kept in step with its base path.

This is the embedded server's counterpart of TF Serving's ServerCore: it
polls `BASE/` for numeric version directories, loads each version once
(replaying its warmup records, as TF Serving does), serves the newest
`num_versions` of them, and answers status/metadata in TF Serving's protos.
Errors carry TF Serving's status codes and messages; the REST and gRPC
front ends translate them.
"""

from __future__ import annotations

import functools
import logging
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Mapping

import numpy as np

from kerasflow.export.saved_model import list_versions

log = logging.getLogger("kerasflow.serve")

DEFAULT_SIGNATURE = "serving_default"
_INIT_OP = "__saved_model_init_op"


class ServingError(Exception):
    """A request failure with a TF Serving status code ("INVALID_ARGUMENT", "NOT_FOUND", ...)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Servable:
    """One loaded version: its signatures (protos, for metadata) and callables.

    The version is loaded as TF Serving loads it: the SavedModel's graph in a
    `Session` (restored variables, the init op run for lookup tables), each
    signature a callable of its feed/fetch tensor names. That is the same graph
    `tf.saved_model.load` runs, without the eager function-call layer in
    Python on every request (measured in docs/serving.md).
    Requests go through `scheduler` (a `BatchScheduler`) when batching is on,
    so concurrent calls of one signature share a single run.
    """

    def __init__(self, version: int, path: Path, scheduler=None):
        import tensorflow as tf
        from tensorflow.python.util import deprecation

        self.version = version
        self.path = path
        graph = tf.Graph()
        self._session = tf.compat.v1.Session(graph=graph)
        # the graph loader is the TF1 API (what tensorflow_model_server uses): silence its deprecation note
        with graph.as_default(), deprecation.silence():
            meta_graph = tf.compat.v1.saved_model.loader.load(self._session, [tf.saved_model.SERVING], str(path))
        self.signature_defs = meta_graph.signature_def
        self._signatures = {k: _Signature(self._session, sig) for k, sig in self.signature_defs.items()
                            if k != _INIT_OP}
        self._scheduler = scheduler

    def _signature(self, name: str | None) -> _Signature:
        signature = self._signatures.get(name or DEFAULT_SIGNATURE)
        if signature is None:
            raise ServingError("INVALID_ARGUMENT", f'Serving signature name: "{name or DEFAULT_SIGNATURE}" '
                                                   "not found in signature def")
        return signature

    def signature_def(self, name: str | None):
        self._signature(name)  # unknown names fail with TF Serving's message
        return self.signature_defs[name or DEFAULT_SIGNATURE]

    def numpy_dtypes(self, signature_name: str | None) -> dict[str, np.dtype]:
        """Input name -> numpy dtype (object for DT_STRING) of a signature."""
        return self._signature(signature_name).dtypes

    def check_inputs(self, signature_name: str | None, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """TF Serving's input checks: names, shapes and dtypes against the signature."""
        return self._signature(signature_name).check(inputs)

    def run(self, signature_name: str | None, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Call a signature on checked numpy inputs (no batching)."""
        import tensorflow as tf

        try:
            return self._signature(signature_name)(inputs)
        except tf.errors.InvalidArgumentError as err:
            raise ServingError("INVALID_ARGUMENT", err.message) from err
        except tf.errors.OpError as err:
            raise ServingError("INTERNAL", err.message) from err

    def submit(self, signature_name: str | None, inputs: Mapping[str, np.ndarray], executor) -> Future:
        """Check `inputs` now, run the signature later: batched, or on `executor`; a Future of the outputs."""
        name = signature_name or DEFAULT_SIGNATURE
        arrays = self.check_inputs(name, inputs)
        if self._scheduler is not None:
            return self._schedule(name, arrays)
        return executor.submit(self.run, name, arrays)

    def _schedule(self, name: str, arrays: dict[str, np.ndarray]) -> Future:
        # one queue per version and signature, as TF Serving batches
        return self._scheduler.submit((id(self), name), functools.partial(self.run, name), arrays)

    def predict(self, signature_name: str | None, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run a signature on named numpy inputs, with TF Serving's input checks (batched when enabled)."""
        name = signature_name or DEFAULT_SIGNATURE
        arrays = self.check_inputs(name, inputs)
        if self._scheduler is not None:
            return self._schedule(name, arrays).result()
        return self.run(name, arrays)

    def warm_up(self) -> int:
        """Replay assets.extra/tf_serving_warmup_requests; a failing record fails the load."""
        import tensorflow as tf

        from kerasflow.export.warmup import WARMUP_FILE, read_warmup_requests

        logs = read_warmup_requests(self.path / "assets.extra" / WARMUP_FILE)
        for record in logs:
            request = record.predict_log.request
            inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            self.predict(request.model_spec.signature_name, inputs)
        return len(logs)


class _Signature:
    """A signature's input checks and its session callable (feeds and fetches by tensor name)."""

    def __init__(self, session, signature_def):
        import tensorflow as tf
        from tensorflow.core.protobuf import config_pb2

        self.inputs = sorted(signature_def.inputs)
        self.outputs = sorted(signature_def.outputs)
        self.dtypes = {}
        self._checks = []  # (name, tf dtype, numpy dtype, shape proto), computed once, not per request
        for name in self.inputs:
            info = signature_def.inputs[name]
            dtype = tf.as_dtype(info.dtype)
            self.dtypes[name] = np.dtype(dtype.as_numpy_dtype)
            self._checks.append((name, dtype, self.dtypes[name], info.tensor_shape))
        self._expected = set(self.inputs)
        # a callable made in the C API (TF_SessionMakeCallable), fed positionally: the public
        # `make_callable` with a feed list runs the whole `Session.run` (fetch and feed handling
        # in Python) per call, ~150 us of CPU for the digits MLP's one row against ~45 us here
        self._call = session._make_callable_from_options(config_pb2.CallableOptions(
            feed=[signature_def.inputs[k].name for k in self.inputs],
            fetch=[signature_def.outputs[k].name for k in self.outputs]))

    def check(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if inputs.keys() != self._expected:
            extra = sorted(set(inputs) - self._expected)
            if extra:
                raise ServingError("INVALID_ARGUMENT", f"input tensor alias not found in signature: {extra[0]}. "
                                                       f"Inputs expected to be in the set "
                                                       f"{{{','.join(self.inputs)}}}.")
            missing = sorted(self._expected - set(inputs))
            raise ServingError("INVALID_ARGUMENT", f"input size does not match signature: "
                                                   f"{len(inputs)}!={len(self.inputs)} "
                                                   f"Missing but required: {{{','.join(missing)}}}.")
        for key, dtype, numpy_dtype, shape in self._checks:
            array = inputs[key]
            _check_shape(key, array, shape)
            if array.dtype != numpy_dtype and not (numpy_dtype.kind == "O" and array.dtype.kind in "OSU"):
                raise ServingError("INVALID_ARGUMENT", f"input '{key}' expects {dtype.name} "
                                                       f"but {array.dtype} is provided")
        return dict(inputs)

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.outputs, self._call(*[inputs[k] for k in self.inputs])))


def _check_shape(key: str, array: np.ndarray, shape_proto) -> None:
    if shape_proto.unknown_rank:
        return
    want = [d.size for d in shape_proto.dim]
    if array.ndim != len(want) or any(w >= 0 and w != h for w, h in zip(want, array.shape)):
        raise ServingError("INVALID_ARGUMENT", f"input '{key}' expects shape [{','.join(map(str, want))}] "
                                               f"but got [{','.join(map(str, array.shape))}]")


class ModelRepository:
    """The versions of `model_name` under `base_path` that are loaded, loading or gone.

    Args:
        base_path: TF Serving base path (numeric version subdirectories).
        model_name: the only model name this repository answers to.
        num_versions: serve the newest N versions (TF Serving's `latest`
            policy, default 1); None serves every version on disk.
        version_labels: label -> version, like TF Serving's `version_labels`.
        scheduler: a `BatchScheduler` every servable sends its signature calls through, or None.
    """

    def __init__(self, base_path, model_name: str, *, num_versions: int | None = 1,
                 version_labels: Mapping[str, int] | None = None, scheduler=None):
        self.base_path = Path(base_path)
        self.model_name = model_name
        self.num_versions = num_versions
        self.version_labels = dict(version_labels or {})
        self.scheduler = scheduler
        self._servables: dict[int, Servable] = {}  # replaced, never mutated: lock-free reads
        self._states: dict[int, tuple[str, str]] = {}  # version -> (state, error message)
        self._lock = threading.Lock()

    def poll(self) -> list[int]:
        """Load new versions, drop ones outside the policy; returns the versions loaded now."""
        with self._lock:
            on_disk = list_versions(self.base_path)
            wanted = on_disk[-self.num_versions:] if self.num_versions else on_disk
            loaded, current = [], dict(self._servables)
            for version in wanted:
                if version in current or self._states.get(version, ("", ""))[1]:
                    continue  # loaded versions stay loaded; a failed load is not retried
                self._states[version] = ("LOADING", "")
                log.info("loading %s version %d from %s", self.model_name, version, self.base_path / str(version))
                try:
                    servable = Servable(version, self.base_path / str(version), self.scheduler)
                    warmed = servable.warm_up()
                except Exception as err:  # any load failure marks the version, the server keeps going
                    log.error("loading %s version %d failed: %s", self.model_name, version, err)
                    self._states[version] = ("END", f"Failed to load: {err}")
                    continue
                current[version] = servable
                self._servables = dict(current)  # requests see it before status says AVAILABLE
                self._states[version] = ("AVAILABLE", "")
                loaded.append(version)
                log.info("%s version %d is AVAILABLE (%d warmup records replayed)", self.model_name, version, warmed)
            gone = [v for v in current if v not in set(wanted)]
            for version in gone:
                del current[version]
            self._servables = current
            for version in gone:
                self._states[version] = ("END", "")
                log.info("unloaded %s version %d", self.model_name, version)
            return loaded

    def ready(self) -> bool:
        return bool(self._servables)

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The servable a request asks for (latest when neither version nor label is given)."""
        if label is not None:
            version = self._version_for_label(label)
        servables = self._servables
        if name != self.model_name:
            raise ServingError("NOT_FOUND", f"Servable not found for request: {_request_text(name, version)}")
        if version is None:
            if servables:
                return servables[max(servables)]
        elif version in servables:
            return servables[version]
        loading = [v for v, (state, _) in dict(self._states).items() if state == "LOADING"]
        if loading and (version is None or version in loading):
            raise ServingError("UNAVAILABLE", f"Model {name} is not ready: version {max(loading)} is still loading")
        raise ServingError("NOT_FOUND", f"Servable not found for request: {_request_text(name, version)}")

    def _version_for_label(self, label: str) -> int:
        if label not in self.version_labels:
            raise ServingError("INVALID_ARGUMENT", f"Unrecognized servable version label: {label}")
        return self.version_labels[label]

    def status_response(self, name: str, version: int | None = None, label: str | None = None):
        """GetModelStatusResponse for the model (all known versions, newest first)."""
        from tensorflow_serving.apis import get_model_status_pb2, status_pb2

        if label is not None:
            version = self._version_for_label(label)
        states = dict(self._states) if name == self.model_name else {}
        if version is not None:
            states = {v: s for v, s in states.items() if v == version}
            if not states:
                raise ServingError("NOT_FOUND", f"Could not find version {version} of model {name}")
        if not states:
            raise ServingError("NOT_FOUND", f"Could not find any versions of model {name}")
        response = get_model_status_pb2.GetModelStatusResponse()
        for number in sorted(states, reverse=True):
            state, error = states[number]
            response.model_version_status.add(
                version=number,
                state=get_model_status_pb2.ModelVersionStatus.State.Value(state),
                status=status_pb2.StatusProto(error_code=2 if error else 0, error_message=error),  # UNKNOWN / OK
            )
        return response

    def metadata_response(self, name: str, version: int | None = None, label: str | None = None):
        """GetModelMetadataResponse with the `signature_def` metadata field."""
        from tensorflow_serving.apis import get_model_metadata_pb2

        servable = self.resolve(name, version, label)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = name
        response.model_spec.version.value = servable.version
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, sig in servable.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(sig)
        response.metadata["signature_def"].Pack(signature_map)
        return response


def _request_text(name: str, version: int | None) -> str:
    return f"Latest({name})" if version is None else f"Specific({name}, {version})"
