"""Run tags that make a run reproducible and findable."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

_VERSIONED = ("kerasflow", "tensorflow", "keras", "keras-tuner", "mlflow")


def default_tags(spec_hash: str, data_fingerprint: str, *, repo_dir: str | Path | None = None) -> dict[str, str]:
    """Tags that make a run reproducible: spec hash, data fingerprint, git commit
    of `repo_dir` (default: cwd) when inside a repository, and package versions."""
    tags = {"kerasflow.spec_hash": spec_hash, "kerasflow.data_fingerprint": data_fingerprint}
    commit = _git(repo_dir, "rev-parse", "HEAD")
    if commit:
        tags["mlflow.source.git.commit"] = commit  # MLflow's own key: the UI shows it
        tags["kerasflow.git_dirty"] = str(bool(_git(repo_dir, "status", "--porcelain"))).lower()
    for dist in _VERSIONED:
        try:
            tags[f"kerasflow.version.{dist.replace('-', '_')}"] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    tags["kerasflow.version.python"] = ".".join(map(str, sys.version_info[:3]))
    return tags


def _git(repo_dir: str | Path | None, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=repo_dir, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def context_tags() -> dict[str, str]:
    """MLflow's usual run tags (user, source); git tags come from `default_tags`,
    which look at the working directory rather than the `kerasflow` script."""
    try:
        from mlflow.tracking.context.registry import resolve_tags

        return {k: v for k, v in resolve_tags().items() if not k.startswith("mlflow.source.git")}
    except Exception:  # a context provider failing must not block tracking
        return {}
