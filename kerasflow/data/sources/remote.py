"""Sources that download on first use: `keras.datasets` and TensorFlow Datasets.

Offline they fail fast with a SpecError naming `data.source`: reachability is
probed with a short timeout before anything that could block on the network,
and download errors are turned into the same message.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

import numpy as np

from kerasflow.data.sources.table import Loaded, Table
from kerasflow.spec.errors import Problem, SpecError

PROBE_TIMEOUT = 3.0  # seconds to decide we are offline
DOWNLOAD_TIMEOUT = 60.0  # per socket operation while downloading

_KERAS_HOSTS = {"cifar10": "www.cs.toronto.edu"}
_KERAS_CACHE = {"mnist": "mnist.npz", "fashion_mnist": "fashion-mnist", "cifar10": "cifar-10-batches-py",
                "imdb": "imdb.npz", "reuters": "reuters.npz"}
_CLASS_NAMES = {
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
    "imdb": ["negative", "positive"],
}


def reachable(host: str, port: int = 443, timeout: float = PROBE_TIMEOUT) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    # urllib downloads inside keras/tfds take no timeout argument; bound every socket instead.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _offline(what: str, host: str, detail: str | None = None) -> SpecError:
    return SpecError(Problem(
        path="data.source", message=f"{what} needs a download from {host}, which is not reachable (offline?)",
        received=detail, hint="run once with network access (files are cached), or use a bundled source: "
        "sklearn (digits, iris, wine, breast_cancer, diabetes) or statsmodels (sunspots, co2, nile, elnino)",
    ))


def _keras_cached(name: str) -> bool:
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "datasets"
    return home.is_dir() and any(p.name.startswith(_KERAS_CACHE[name]) for p in home.iterdir())


def load_keras(data_spec, base_dir, seed) -> Loaded:
    """Columns: `image` + `label` (mnist, fashion_mnist, cifar10) or `tokens`
    (word ids, variable length) + `label` (imdb, reuters); parts train/test."""
    import importlib

    source = data_spec.source
    name = source.name
    host = _KERAS_HOSTS.get(name, "storage.googleapis.com")
    if not _keras_cached(name) and not reachable(host):
        raise _offline(f"keras dataset `{name}`", host)
    module = importlib.import_module(f"keras.datasets.{name}")
    kwargs = {"num_words": source.num_words} if name in ("imdb", "reuters") else {}
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT):
            (x_train, y_train), (x_test, y_test) = module.load_data(**kwargs)
    except Exception as exc:  # keras wraps URL/HTTP/socket errors in a bare Exception
        raise _offline(f"keras dataset `{name}`", host, detail=str(exc)[:200]) from None
    key = "tokens" if name in ("imdb", "reuters") else "image"

    def table(x, y):
        return Table({key: x, "label": np.asarray(y).reshape(-1).astype(np.int64)}, origin=f"keras {name}")

    class_names = {"label": _CLASS_NAMES[name]} if name in _CLASS_NAMES else {}
    return Loaded(parts={"train": table(x_train, y_train), "test": table(x_test, y_test)}, class_names=class_names,
                  default_feature=key, default_target="label")


def load_tfds(data_spec, base_dir, seed) -> Loaded:
    """Every feature of the TFDS split becomes a column (read into memory)."""
    source = data_spec.source
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise SpecError(Problem(path="data.source.type", message="the tfds source needs tensorflow-datasets",
                                hint="pip install tensorflow-datasets")) from None
    host = "storage.googleapis.com"
    try:
        builder = tfds.builder(source.name, data_dir=source.data_dir)
    except Exception as exc:  # DatasetNotFoundError and friends
        raise SpecError(Problem(path="data.source.name", message=f"unknown TFDS dataset `{source.name}`",
                                received=str(exc)[:200])) from None
    if not builder.is_prepared() and not reachable(host):
        raise _offline(f"TFDS dataset `{source.name}`", host)
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT):
            builder.download_and_prepare()
            ds = builder.as_dataset(split=source.split)
    except Exception as exc:
        raise _offline(f"TFDS dataset `{source.name}`", host, detail=str(exc)[:200]) from None
    rows = list(tfds.as_numpy(ds))
    columns = {k: np.stack([r[k] for r in rows]) if rows else np.zeros(0) for k in (rows[0] if rows else {})}
    class_names = {}
    for key, feature in builder.info.features.items():
        names = getattr(feature, "names", None)
        if names:
            class_names[key] = list(names)
    defaults = [k for k in ("image", "text") if k in columns]
    return Loaded(parts={"all": Table(columns, origin=f"tfds {source.name}")}, class_names=class_names,
                  default_feature=defaults[0] if defaults else None,
                  default_target="label" if "label" in columns else None)
