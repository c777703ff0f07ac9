"""The `backbone` block: a `keras.applications` model (without its classifier)
behind a serializable layer that applies the application's own
`preprocess_input`, so the exported model takes raw pixels. Imports Keras.

Layers: `<node>.preprocess` (`ApplicationPreprocessing`) and `<node>.<application>`
(the application, one nested model: stages freeze and unfreeze it as a node,
or its top layers with `unfreeze: [{node: ..., top: N}]`).
"""

from __future__ import annotations

import contextlib
import fnmatch
import socket
import urllib.parse

import keras

from kerasflow.spec.nodes.applications import APPLICATIONS
from kerasflow.spec.nodes.backbones import declared_offline, keras_cache_dir, offline_message

PROBE_TIMEOUT = 3.0  # seconds to decide the weights host is unreachable
DOWNLOAD_TIMEOUT = 60.0  # per socket operation while downloading


class WeightsUnavailable(ValueError):
    """ImageNet weights are neither cached nor downloadable."""


@keras.saving.register_keras_serializable(package="kerasflow")
class ApplicationPreprocessing(keras.layers.Layer):
    """Applies a `keras.applications` model's `preprocess_input` to raw pixels.

    Args:
        application: A `keras.applications` model name, e.g. `"ResNet50"`.
        scale: Pixels are multiplied by this first (`preprocess_input`
            expects 0-255; use 255 for inputs already scaled to [0, 1]).
        **kwargs: Base layer arguments (`name`, `dtype`).

    A single-channel (grayscale) input is repeated to three channels, as the
    applications take RGB.
    """

    def __init__(self, application: str, scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if application not in APPLICATIONS:
            raise ValueError("Received an invalid value for application, expected a keras.applications model "
                             f"name such as ResNet50. Received: application={application!r}")
        if not isinstance(scale, (int, float)) or scale <= 0:
            raise ValueError(f"Received an invalid value for scale, expected a positive number. Received: scale={scale!r}")
        self.application = application
        self.scale = float(scale)

    def call(self, inputs):
        x = keras.ops.cast(inputs, self.compute_dtype)
        if x.shape[-1] == 1:
            x = keras.ops.repeat(x, 3, axis=-1)
        if self.scale != 1.0:
            x = x * self.scale
        module = getattr(keras.applications, APPLICATIONS[self.application]["module"])
        return module.preprocess_input(x)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 3 if input_shape[-1] == 1 else input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "application": self.application, "scale": self.scale}


def build_backbone(node, inputs, name):
    x = inputs[0]
    if len(x.shape) != 4:
        raise ValueError(f"expected an image input of rank 4 (batch, height, width, channels), got {tuple(x.shape)}")
    height, width, channels = x.shape[1:]
    if channels not in (1, 3):
        raise ValueError(f"expected 1 (grayscale) or 3 (RGB) channels, got {channels}")
    x = ApplicationPreprocessing(node.application, node.input_scale, name=f"{name}.preprocess")(x)
    with _guarded_download(node.application):
        app = getattr(keras.applications, node.application)(
            include_top=False, weights=node.weights, input_shape=(height, width, 3), pooling=node.pooling)
    app.name = f"{name}.{node.application.lower()}"
    app.trainable = node.trainable
    return app(x, training=False) if node.frozen_batch_norm else app(x)


def set_top_trainable(layer, top: int | None = None, pattern: str | None = None) -> int:
    """Make a nested model's top `top` layers (or those whose name matches
    `pattern`) trainable and the rest frozen; returns how many are trainable.

    BatchNormalization stays frozen: its statistics are the pretrained ones
    (the Keras fine-tuning recipe)."""
    inner = getattr(layer, "layers", None)
    if not inner:
        layer.trainable = True
        return 1
    layer.trainable = True
    chosen = {id(sub) for sub in inner[len(inner) - top:]} if top else set()
    if pattern:
        chosen |= {id(sub) for sub in inner if fnmatch.fnmatchcase(sub.name, pattern)}
    for sub in inner:
        sub.trainable = id(sub) in chosen and not isinstance(sub, keras.layers.BatchNormalization)
    return sum(1 for sub in inner if sub.trainable)


@contextlib.contextmanager
def _guarded_download(application: str):
    """Let the application fetch its weights only from the cache, or from a
    reachable host; otherwise raise `WeightsUnavailable` with the one offline
    message (never a download traceback from inside Keras)."""
    from keras.src.utils import file_utils

    original = file_utils.get_file

    def get_file(fname=None, origin=None, *args, cache_subdir="datasets", **kwargs):
        cached = keras_cache_dir().parent / cache_subdir / (fname or "")
        if fname and cached.is_file():
            return original(fname, origin, *args, cache_subdir=cache_subdir, **kwargs)
        host = urllib.parse.urlsplit(origin or "").hostname or ""
        if declared_offline() or not reachable(host):
            raise WeightsUnavailable(offline_message(application, origin, cached))
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT)
        try:
            return original(fname, origin, *args, cache_subdir=cache_subdir, **kwargs)
        except Exception as exc:
            raise WeightsUnavailable(f"{offline_message(application, origin, cached)} "
                                     f"(download failed: {str(exc).splitlines()[0][:200]})") from None
        finally:
            socket.setdefaulttimeout(previous)

    file_utils.get_file = get_file
    try:
        yield
    finally:
        file_utils.get_file = original


def reachable(host: str) -> bool:
    """Whether `host` accepts a connection on port 443 within `PROBE_TIMEOUT` seconds."""
    try:
        with socket.create_connection((host, 443), timeout=PROBE_TIMEOUT):
            return True
    except OSError:
        return False

