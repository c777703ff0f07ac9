"""The one rule for names that become a path component (runs/<name>,
checkpoints/<stage>, models/<model>, a served model's URL): letters, digits,
`_`, `.` and `-`, starting with a letter or digit, at most 100 characters.
So never `..`, `/`, a hidden file or empty. Free of pydantic: the CLI checks
its options with it before anything heavy is imported."""

from __future__ import annotations

import re

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
SAFE_NAME_RULE = ("letters, digits, `_`, `.` and `-`, starting with a letter or digit, at most 100 characters")


def is_safe_name(value: str) -> bool:
    """True when `value` is usable as one path component."""
    return bool(_SAFE_NAME.fullmatch(value))
