"""Export a trained Keras model as one TF Serving version directory.

Layout (what `tensorflow_model_server --model_base_path=BASE` polls):

    BASE/<version>/saved_model.pb, variables/, assets/,
                   assets.extra/tf_serving_warmup_requests, assets.extra/kerasflow.yaml

A version is assembled in a hidden, non-numeric sibling directory and renamed
to its number only after the parity check passed. TF Serving ignores
directories whose name is not an integer, and `os.rename` within one
filesystem is atomic, so a polling server never sees a partial version, and a
killed export leaves at most a hidden directory that the next export removes.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import shutil
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from kerasflow.export.names import METADATA_FILE
from kerasflow.spec.errors import Problem, SpecError

SIGNATURE_NAME = "serving_default"
_TMP_PREFIX = ".kerasflow-tmp-"
_TRASH_PREFIX = ".kerasflow-trash-"
_MAX_PARITY_ROWS = 256
_MAX_WARMUP_REQUESTS = 1000  # TF Serving refuses to load more warmup records than this


@dataclass(frozen=True)
class ExportResult:
    """What `export_version` wrote.

    Args:
        path: the published version directory `BASE/<version>`.
        version: the version number.
        inputs: signature inputs, name -> {"dtype": ..., "shape": [...]} (-1 = any).
        outputs: signature outputs, same form.
        parity_max_abs_diff: largest |SavedModel - Keras| over float outputs,
            None when the parity check was skipped.
        removed_versions: older versions deleted because of `keep`.
        signatures: every signature written (`serving_default` first).
    """

    path: Path
    version: int
    inputs: dict[str, dict[str, Any]]
    outputs: dict[str, dict[str, Any]]
    parity_max_abs_diff: float | None
    removed_versions: tuple[int, ...] = field(default=())
    signatures: tuple[str, ...] = field(default=())


def list_versions(base_path: str | os.PathLike) -> list[int]:
    """Published versions under `base_path` (numeric directory names), ascending."""
    base = Path(base_path)
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.name.isdigit() and p.is_dir())


def export_version(
    model,
    base_path: str | os.PathLike,
    *,
    version: int | None = None,
    sample_inputs: Mapping[str, Any],
    target_info: Mapping[str, Mapping[str, Any]] | None = None,
    metadata: Mapping[str, Any] | None = None,
    warmup_requests: int = 8,
    keep: int | None = None,
    atol: float = 1e-5,
    model_name: str = "model",
    check_parity: bool = True,
    image_features: Mapping[str, tuple[int, int, int]] | None = None,
) -> ExportResult:
    """Write `model` as `BASE/<version>/`, atomically, after a fresh-process parity check.

    Args:
        model: a built `keras.Model` with one named `keras.Input` per raw feature.
        base_path: TF Serving model base path (created if missing).
        version: version number; default is one more than the newest. An existing
            version is never overwritten.
        sample_inputs: real rows, feature name -> array with a leading batch axis;
            used for warmup requests and the parity check. Extra keys are ignored.
        target_info: target name -> {"type": "category"|"binary"|"numeric",
            "class_names": [...]}; decides the signature outputs (see
            `kerasflow.export.signature`). None exports the model outputs as is.
        metadata: extra keys for `assets.extra/kerasflow.yaml` (spec, run id, ...).
        warmup_requests: number of `PredictionLog` records (0..1000).
        keep: keep only the newest `keep` versions, this one included.
        atol: largest allowed |SavedModel - Keras| on float outputs.
        model_name: name written into the warmup requests (TF Serving's model name).
        check_parity: run the fresh-process parity check (default True).
        image_features: image feature name -> (height, width, channels): adds the
            `serving_bytes` signature taking these as encoded PNG/JPEG bytes
            (see `kerasflow.export.images`). Names the model does not take are ignored.

    Besides `serving_default` (and `serving_bytes`), TF Serving's `classify_<target>`
    and `regress_<target>` signatures over serialized tf.Examples are written for
    targets that support them (see `kerasflow.export.examples`).

    Raises:
        SpecError: bad arguments, or the SavedModel disagrees with the Keras model.
    """
    from kerasflow.export import examples, images, parity, signature, warmup

    base = Path(base_path)
    _check_arguments(base, version, warmup_requests, keep, atol)
    specs = signature.input_specs(model)
    rows = signature.coerce_inputs(sample_inputs, specs)
    fn = signature.serving_function(model, target_info)
    image_sizes = _image_sizes(image_features, specs)
    encoded = {k: images.encode_png(rows[k]) for k in image_sizes}  # real PNGs of the sample images
    endpoints = {SIGNATURE_NAME: (fn, [specs], None)}
    extra_rows = {}  # signature -> its sample rows, for warmup and parity
    if image_sizes:
        bytes_fn, bytes_signature = images.bytes_endpoint(fn, specs, image_sizes)
        endpoints[images.BYTES_SIGNATURE] = (bytes_fn, bytes_signature, None)
        extra_rows[images.BYTES_SIGNATURE] = images.bytes_rows(rows, encoded)
    targets = signature.example_targets(model, target_info)
    example_fns = examples.example_endpoints(fn, specs, targets, image_sizes)
    if example_fns:
        serialized = {examples.EXAMPLES_INPUT: examples.serialize_examples(rows, encoded)}
        endpoints.update(example_fns)
        extra_rows.update({name: serialized for name in example_fns})

    base.mkdir(parents=True, exist_ok=True)
    _remove_stale(base)
    tmp = base / f"{_TMP_PREFIX}{_owner()}.{uuid.uuid4().hex[:8]}"
    try:
        _write_saved_model(model, endpoints, tmp)
        examples.set_methods(tmp, {name: method for name, (_, _, method) in endpoints.items() if method})
        info = signature.describe(tmp)
        if warmup_requests:
            warmup.write_warmup_requests(
                tmp / "assets.extra" / warmup.WARMUP_FILE,
                rows,
                model_name=model_name,
                count=warmup_requests,
                others={k: v for k, v in extra_rows.items() if k == images.BYTES_SIGNATURE},
            )
        max_diff = None
        if check_parity:
            subset = {k: v[:_MAX_PARITY_ROWS] for k, v in rows.items()}
            others = {}
            for name, signature_rows in extra_rows.items():
                signature_subset = {k: v[:_MAX_PARITY_ROWS] for k, v in signature_rows.items()}
                others[name] = (signature_subset, signature.call_eagerly(endpoints[name][0], signature_subset))
            expected = signature.call_eagerly(fn, subset)
            max_diff = parity.check_parity(tmp, subset, expected, atol=atol, others=others)
        _write_metadata(tmp, metadata, model_name, info, target_info, atol, max_diff, list(endpoints))
        published = _publish(tmp, base, version)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    removed = _prune(base, keep) if keep else ()
    return ExportResult(
        path=base / str(published),
        version=published,
        inputs=info["inputs"],
        outputs=info["outputs"],
        parity_max_abs_diff=max_diff,
        removed_versions=removed,
        signatures=tuple(endpoints),
    )


def write_tfserving_config(
    base_path: str | os.PathLike,
    model_name: str,
    out_file: str | os.PathLike,
    *,
    server_base_path: str | None = None,
) -> None:
    """Write a `model_config_list` text proto for `tensorflow_model_server --model_config_file`.

    Args:
        base_path: the local base path (made absolute).
        model_name: the name clients use in `/v1/models/<name>`.
        out_file: where to write the text proto.
        server_base_path: the base path as the server sees it, e.g.
            `/models/<name>` inside the `tensorflow/serving` container.
    """
    path = server_base_path or str(Path(base_path).resolve())
    text = (
        "model_config_list {\n"
        "  config {\n"
        f"    name: {_proto_string(model_name)}\n"
        f"    base_path: {_proto_string(path)}\n"
        '    model_platform: "tensorflow"\n'
        "  }\n"
        "}\n"
    )
    out = Path(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")


def _proto_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check_arguments(base: Path, version, warmup_requests, keep, atol) -> None:
    problems = []
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        problems.append(Problem("export.version", "version must be a positive integer",
                                expected="integer >= 1", received=repr(version)))
    elif version is not None and (base / str(version)).exists():
        problems.append(Problem(
            "export.version", f"version {version} already exists at {base / str(version)}; "
            "versions are never overwritten",
            expected=f"a version not in {list_versions(base)}", received=str(version),
            hint="omit the version to use the next free number"))
    if not isinstance(warmup_requests, int) or not 0 <= warmup_requests <= _MAX_WARMUP_REQUESTS:
        problems.append(Problem("export.warmup_requests", "TF Serving replays at most 1000 warmup records",
                                expected="integer in [0, 1000]", received=repr(warmup_requests)))
    if keep is not None and (not isinstance(keep, int) or keep < 1):
        problems.append(Problem("export.keep", "keep counts versions to keep, this one included",
                                expected="integer >= 1", received=repr(keep)))
    if not isinstance(atol, (int, float)) or not atol >= 0:
        problems.append(Problem("export.atol", "parity tolerance must be a non-negative number",
                                expected="float >= 0", received=repr(atol)))
    if base.exists() and not base.is_dir():
        problems.append(Problem("export.base_path", "base path exists but is not a directory",
                                expected="a directory", received=str(base)))
    if problems:
        raise SpecError(problems)


def _image_sizes(image_features, specs) -> dict[str, tuple[int, int, int]]:
    """Image features the model takes, name -> (height, width, channels); others are ignored, like extra sample keys."""
    return {name: tuple(int(d) for d in size) for name, size in dict(image_features or {}).items() if name in specs}


def _write_saved_model(model, endpoints, path: Path) -> None:
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, (fn, input_signature, _) in endpoints.items():
        archive.add_endpoint(name, fn, input_signature=input_signature)
    archive.write_out(str(path), verbose=False)


def _write_metadata(path: Path, metadata, model_name, info, target_info, atol, max_diff, signatures) -> None:
    import yaml

    from kerasflow import __version__

    doc = dict(_plain(metadata or {}))
    doc["kerasflow_export"] = {
        "kerasflow_version": __version__,
        "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model_name": model_name,
        "signature_name": SIGNATURE_NAME,
        "signatures": list(signatures),
        "inputs": info["inputs"],
        "outputs": info["outputs"],
        "targets": _plain(dict(target_info or {})),
        "parity": {"atol": float(atol), "max_abs_diff": max_diff, "checked": max_diff is not None},
    }
    extra = path / "assets.extra"
    extra.mkdir(parents=True, exist_ok=True)
    (extra / METADATA_FILE).write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


def _plain(value):
    """numpy scalars/arrays, Paths and tuples -> YAML-safe builtins."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _publish(tmp: Path, base: Path, version: int | None) -> int:
    """Rename the finished temp dir to its version number; never replaces a version."""
    explicit = version is not None
    number = version if explicit else (max(list_versions(base), default=0) + 1)
    while True:
        target = base / str(number)
        try:
            # mkdir-free rename: fails if `target` exists and is non-empty; the
            # exists() check covers an empty directory someone created by hand.
            if target.exists():
                raise FileExistsError(target)
            os.rename(tmp, target)
            return number
        except OSError as err:
            if explicit or not target.exists():
                raise SpecError(Problem(
                    "export.version", f"cannot publish version {number}: {err}",
                    hint="another export may have taken this number; retry without a version")) from err
            number += 1  # a concurrent export took this number: take the next one


def _prune(base: Path, keep: int) -> tuple[int, ...]:
    """Delete all but the newest `keep` versions, each via an atomic rename first."""
    versions = list_versions(base)
    doomed = versions[:-keep] if len(versions) > keep else []
    for number in doomed:
        trash = base / f"{_TRASH_PREFIX}{_owner()}.{number}.{uuid.uuid4().hex[:8]}"
        os.rename(base / str(number), trash)  # the number disappears in one step
        shutil.rmtree(trash, ignore_errors=True)
    return tuple(doomed)


def _owner() -> str:
    """`<host>.<pid>`: who may clean up a leftover directory (PIDs are per host)."""
    return f"{socket.gethostname().replace('.', '_')}.{os.getpid()}"


_LEFTOVER = re.compile(rf"^(?:{re.escape(_TMP_PREFIX)}|{re.escape(_TRASH_PREFIX)})([^.]+)\.(\d+)\.")


def _remove_stale(base: Path) -> None:
    """Remove temp/trash directories left by exports on this host whose process is gone (e.g. killed)."""
    host = socket.gethostname().replace(".", "_")
    for entry in base.iterdir():
        match = _LEFTOVER.match(entry.name)
        if match and match.group(1) == host and not _process_alive(int(match.group(2))):
            shutil.rmtree(entry, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
