"""Registering model versions, and when a new version takes over an alias (e.g. `champion`)."""

from __future__ import annotations

import math
from typing import Any


def undecided_registration(name: str, *, alias: str, objective: str, mode: str, value: float | None) -> dict[str, Any]:
    """The decision `register` returns before (or without) registering: nothing moved."""
    if mode not in ("max", "min"):
        raise ValueError(f"Received an invalid value for mode, expected 'max' or 'min'. Received: mode={mode!r}")
    return {"name": name, "version": None, "alias": alias, "moved": False, "objective": objective,
            "mode": mode, "value": value, "previous_version": None, "previous_value": None}


def require_model(model_uri: str, name: str) -> None:
    """Raises a `SpecError` unless `model_uri` holds an MLflow model (an `MLmodel` file)."""
    from mlflow.exceptions import MlflowException
    from mlflow.models import get_model_info

    from kerasflow.spec.errors import Problem, SpecError
    from kerasflow.track.transport import first_line, is_outage

    try:
        get_model_info(model_uri)
    except (MlflowException, OSError) as err:
        if is_outage(err):
            raise
        raise SpecError(Problem(
            path="tracking.register_as", message=f"no model to register as {name!r}: {model_uri} holds none",
            received=first_line(err),
            hint="the training run did not log its model (see its warnings; tracking.log_model must be true)",
        )) from err


def register_version(client, model_uri: str, name: str, *, alias: str, objective: str, mode: str,
                     value: float | None, run_id: str) -> dict[str, Any]:
    """Register `model_uri` as a new version of `name`, move `alias` to it if
    `decide_alias` says so, and record the decision as version tags.

    Needs the global MLflow tracking URI set to the client's store
    (`transport.global_uri`): `mlflow.register_model` has no URI argument.

    Returns:
        the `decide_alias` dict plus `version` (str).
    """
    import mlflow

    version = mlflow.register_model(model_uri, name, tags={
        "kerasflow.objective": objective, "kerasflow.objective_mode": mode,
        "kerasflow.objective_value": repr(None if value is None else float(value)), "kerasflow.run_id": run_id,
    })
    out = {"version": str(version.version), **decide_alias(client, name, alias, objective, mode, value, run_id)}
    if out["moved"]:
        client.set_registered_model_alias(name, alias, version.version)
    client.set_model_version_tag(name, version.version, "kerasflow.alias_decision", "moved" if out["moved"] else "kept")
    client.set_model_version_tag(name, version.version, "kerasflow.alias_reason", out["reason"])
    return out


def decide_alias(client, name: str, alias: str, objective: str, mode: str, value: float | None,
                 run_id: str) -> dict[str, Any]:
    """Whether the version registered by `run_id` should take `alias` of model `name`.

    It may when the run did not fail and its `objective` `value` is at least as good
    as the holder's (>= for mode `max`, <= for `min`): ties go to the newer version.
    The holder's value is read from its `kerasflow.objective_value` version tag,
    else from its run's `objective` metric; a holder with neither keeps the alias.

    Returns:
        dict with `moved` (bool), `reason` (str), `previous_version`, `previous_value`.
    """
    from mlflow.exceptions import MlflowException

    out: dict[str, Any] = {"moved": False, "previous_version": None, "previous_value": None}
    status = client.get_run(run_id).info.status
    if status in ("FAILED", "KILLED"):
        return {**out, "reason": f"run {run_id} ended {status}"}
    if value is None or not math.isfinite(float(value)):
        return {**out, "reason": f"{objective} has no finite value ({value})"}
    value = float(value)
    try:
        holder = client.get_model_version_by_alias(name, alias)
    except MlflowException as err:
        if err.error_code != "RESOURCE_DOES_NOT_EXIST" and "not found" not in str(err).lower():
            raise
        return {**out, "moved": True, "reason": f"no version held @{alias}"}
    previous = _holder_value(client, holder, objective)
    out.update(previous_version=str(holder.version), previous_value=previous)
    if previous is None:
        return {**out, "reason": f"v{holder.version} holds @{alias} with no recorded {objective}; "
                                 f"move the alias by hand if this version should replace it"}
    better = value >= previous if mode == "max" else value <= previous
    relation = (">=" if mode == "max" else "<=") if better else ("<" if mode == "max" else ">")
    return {**out, "moved": better,
            "reason": f"{objective} {value:.6g} {relation} {previous:.6g} of v{holder.version} (mode {mode})"}


def _holder_value(client, version, objective: str) -> float | None:
    tags = version.tags or {}
    if tags.get("kerasflow.objective") == objective:
        try:
            return float(tags["kerasflow.objective_value"])
        except (KeyError, ValueError):
            pass
    if version.run_id:
        from mlflow.exceptions import MlflowException

        try:
            metric = client.get_run(version.run_id).data.metrics.get(objective)
        except MlflowException:  # the holder's run was deleted
            return None
        if metric is not None:
            return float(metric)
    return None
