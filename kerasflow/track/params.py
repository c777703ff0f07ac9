"""Flatten a resolved spec into MLflow params: dotted keys, string values.

MLflow rejects a whole batch when one key or value breaks its limits, so
everything is made valid here instead of being dropped by the server.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Iterator, Mapping

# Mirrors mlflow.utils.validation (MAX_ENTITY_KEY_LENGTH, MAX_PARAM_VAL_LENGTH,
# MAX_PARAMS_TAGS_PER_BATCH); copied so this module never imports mlflow, and a
# test pins them to the installed MLflow.
MAX_KEY_LENGTH = 250
MAX_VALUE_LENGTH = 6000
MAX_PARAMS_PER_BATCH = 100

# MLflow also allows "/", but "a/" or "a//b" are then rejected as non-unique
# paths; spec keys never need a slash, so it is replaced like other characters.
_INVALID_KEY_CHARS = re.compile(r"[^\w.\- :]")


def flatten_params(d: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten nested spec values into `{"a.b.c": "value"}` ready for MLflow.

    Args:
        d: the (resolved) spec or any nested mapping.
        prefix: prepended to every key, joined with a dot.

    Rules: mappings recurse with dotted keys; a `{tune: ...}` marker is one
    param holding compact JSON; lists of scalars are one JSON param; lists
    holding mappings recurse with the index as a key segment
    (`training.stages.0.epochs`) so each stage setting stays searchable;
    `None`/booleans are JSON (`null`, `true`). Keys are made valid MLflow
    names and at most 250 characters (a hash suffix keeps them distinct);
    values longer than 6000 characters end with a truncation marker.
    """
    if not isinstance(d, Mapping):
        raise TypeError(f"Expected a mapping to flatten, received: {type(d).__name__}")
    out: dict[str, str] = {}
    for key, value in _walk(d, prefix):
        out[valid_key(key)] = truncate(value, MAX_VALUE_LENGTH)
    return out


def batches(params: Mapping[str, str], size: int = MAX_PARAMS_PER_BATCH) -> Iterator[dict[str, str]]:
    """Split params into dicts of at most `size` entries (MLflow's batch limit)."""
    items = list(params.items())
    for start in range(0, len(items), size):
        yield dict(items[start : start + size])


def _walk(value: Any, key: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping) and value and "tune" not in value:
        for k, v in value.items():
            yield from _walk(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, (list, tuple)) and any(isinstance(v, Mapping) for v in value):
        for i, v in enumerate(value):
            yield from _walk(v, f"{key}.{i}" if key else str(i))
    else:
        yield key, _render(value)


def _render(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (bool, Mapping, list, tuple)):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def valid_key(key: str) -> str:
    """`key` as a valid MLflow param/metric/tag name of at most 250 characters."""
    key = _INVALID_KEY_CHARS.sub("_", key)
    if not key.strip(".") or key.startswith(".."):  # MLflow rejects names that look like "." or ".."
        key = "_" + key
    if len(key) <= MAX_KEY_LENGTH:
        return key
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    return f"{key[: MAX_KEY_LENGTH - 9]}-{digest}"


def truncate(value: str, limit: int) -> str:
    """`value` cut to `limit` characters, ending with a marker when cut."""
    if len(value) <= limit:
        return value
    # The marker says a value was cut, so nobody mistakes it for the whole.
    marker = f"...[truncated, {len(value)} chars in full]"
    return value[: limit - len(marker)] + marker
