"""Parity check: the SavedModel, loaded in a fresh process, must predict what Keras predicts.

A fresh interpreter is the only honest test of an export: it has no Keras
objects, custom-layer registrations or Python state to lean on, exactly like
`tensorflow_model_server`. The child loads the SavedModel with
`tf.saved_model.load`, runs `serving_default` (and any other signature asked
for: `serving_bytes`, `classify_*`, `regress_*`) on the sample rows, replays the
warmup records (TF Serving refuses a version whose warmup fails) and writes
the outputs back for comparison.

Run as `python -m kerasflow.export.parity SAVED_MODEL_DIR WORK_DIR`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np

from kerasflow.spec.errors import Problem, SpecError

_TIMEOUT_SECONDS = 600


def check_parity(
    saved_model_dir: str | os.PathLike,
    inputs: Mapping[str, np.ndarray],
    expected: Mapping[str, np.ndarray],
    *,
    atol: float,
    others: Mapping[str, tuple[Mapping[str, np.ndarray], Mapping[str, np.ndarray]]] | None = None,
) -> float:
    """Largest |SavedModel - Keras| over float outputs; raises SpecError beyond `atol`.

    `inputs`/`expected` are for `serving_default`; `others` maps further
    signature names to their own (inputs, expected), checked in the same
    child process. Non-float outputs (class ids, class names) must match exactly.
    """
    cases = {"serving_default": (inputs, expected), **dict(others or {})}
    with tempfile.TemporaryDirectory(prefix="kerasflow-parity-") as work:
        names = list(cases)
        (Path(work) / "signatures.txt").write_text("\n".join(names), encoding="utf-8")
        for i, name in enumerate(names):
            np.savez(Path(work) / f"inputs-{i}.npz", **cases[name][0])
        actual = _run_child(Path(saved_model_dir), Path(work), len(names))
    max_diff = 0.0
    for i, name in enumerate(names):
        max_diff = max(max_diff, compare(cases[name][1], actual[i], atol=atol,
                                         where="" if name == "serving_default" else f"{name}:"))
    return max_diff


def compare(expected: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray], *, atol: float,
            where: str = "") -> float:
    """Max abs diff over float outputs; SpecError listing every disagreeing output.

    `where` prefixes output names in messages (the signature, when not the default)."""
    problems, max_diff = [], 0.0
    for name, want in expected.items():
        path = f"export.atol[{where}{name}]"
        if name not in actual:
            problems.append(Problem(path, "the SavedModel lacks this output", received=str(sorted(actual))))
            continue
        got = np.asarray(actual[name])
        if got.shape != want.shape:
            problems.append(Problem(path, "SavedModel output shape differs from Keras",
                                    expected=str(want.shape), received=str(got.shape)))
        elif want.dtype.kind == "f":
            diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
            diff = np.where(np.isnan(got) & np.isnan(want), 0.0, diff)
            worst = float(np.nanmax(diff, initial=0.0)) if np.isfinite(diff).all() else float("inf")
            max_diff = max(max_diff, worst)
            if worst > atol:
                row = int(np.unravel_index(np.argmax(np.nan_to_num(diff, nan=np.inf)), diff.shape)[0])
                problems.append(Problem(
                    path, "the SavedModel (fresh process) disagrees with the in-process Keras model",
                    expected=f"max |diff| <= {atol:g}", received=f"max |diff| = {worst:.3g} (first at row {row})",
                    hint="look for layers that behave differently when traced (training=True, "
                         "Python randomness, un-tracked state); raise export.atol only for float noise"))
        elif not np.array_equal(got, want):
            bad = int(np.sum(got != want))
            problems.append(Problem(path, "the SavedModel (fresh process) disagrees with the in-process Keras model",
                                    expected="identical values", received=f"{bad} of {want.size} values differ"))
    if problems:
        raise SpecError(problems)
    return max_diff


def expected_outputs(model, target_info, rows: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What the serving signature answers for `rows`, computed in this process
    from the Keras model (the reference `check_parity` and a served model are held to)."""
    from kerasflow.export import signature

    specs = signature.input_specs(model)
    fn = signature.serving_function(model, target_info)
    return signature.call_eagerly(fn, signature.coerce_inputs(rows, specs))


def compare_served(expected: Mapping[str, np.ndarray], served: Mapping, *, atol: float) -> float:
    """`compare` for outputs decoded from a REST response (lists; strings as text)."""
    want, got = {}, {}
    for name, value in expected.items():
        value = np.asarray(value)
        if value.dtype.kind in "SO":  # class names: bytes in TF, text in JSON
            value = np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else str(v), otypes=[object])(value)
        want[name] = value
        if name in served:
            got[name] = np.asarray(served[name], dtype=value.dtype if value.dtype.kind != "O" else object)
    return compare(want, got, atol=atol)


def _run_child(saved_model_dir: Path, work: Path, count: int) -> list[dict[str, np.ndarray]]:
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cmd = [sys.executable, "-m", "kerasflow.export.parity", str(saved_model_dir), str(work)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired as err:
        raise SpecError(Problem("export", f"parity check timed out after {_TIMEOUT_SECONDS}s")) from err
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-12:])
        raise SpecError(Problem(
            "export", "the SavedModel failed in a fresh process (load, a signature or warmup replay)",
            received=tail or f"exit code {proc.returncode}",
            hint="custom ops or Python-only state do not survive export; see the error above"))
    outputs = []
    for i in range(count):
        with np.load(work / f"outputs-{i}.npz", allow_pickle=True) as data:  # our own file, just written
            outputs.append({k: data[k] for k in data.files})
    return outputs


def _child(saved_model_dir: str, work: str) -> None:
    import tensorflow as tf

    from kerasflow.export.warmup import WARMUP_FILE, read_warmup_requests

    loaded = tf.saved_model.load(saved_model_dir)
    names = (Path(work) / "signatures.txt").read_text(encoding="utf-8").split("\n")
    for i, name in enumerate(names):
        with np.load(Path(work) / f"inputs-{i}.npz", allow_pickle=True) as data:
            inputs = {k: tf.constant(data[k]) for k in data.files}
        outputs = {k: v.numpy() for k, v in loaded.signatures[name](**inputs).items()}
        np.savez(Path(work) / f"outputs-{i}.npz", **outputs)
    for i, log in enumerate(read_warmup_requests(Path(saved_model_dir) / "assets.extra" / WARMUP_FILE)):
        request = log.predict_log.request
        try:
            fn = loaded.signatures[request.model_spec.signature_name or "serving_default"]
            fn(**{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
        except Exception as err:  # report which record, then fail the check
            raise SystemExit(f"warmup record {i} failed: {err}") from err


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])
