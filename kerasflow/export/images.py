"""Images as bytes: the `serving_bytes` signature.

TF Serving's idiom for images is encoded JPEG/PNG bytes, sent as
`{"b64": "..."}` over REST and as a DT_STRING tensor over gRPC. For a model
with image features, `serving_bytes` takes each image feature `F` as
`F_bytes` (a [batch] string tensor; the `_bytes` suffix is the convention
REST clients use to know a value is binary), decodes and resizes it inside
the graph exactly as the training pipeline reads image files
(`kerasflow.data.images`; scaling stays in the model), and otherwise answers
what `serving_default` answers. Other features keep their raw inputs.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

BYTES_SIGNATURE = "serving_bytes"
BYTES_SUFFIX = "_bytes"


def bytes_endpoint(serve: Callable, specs: Mapping, images: Mapping[str, tuple]) -> tuple[Callable, list]:
    """(function, input signature) of `serving_bytes`; `images` maps feature -> (height, width, channels)."""
    import tensorflow as tf

    from kerasflow.data.images import decode_images

    signature = {}
    for name, spec in specs.items():
        if name in images:
            signature[name + BYTES_SUFFIX] = tf.TensorSpec([None], tf.string, name=name + BYTES_SUFFIX)
        else:
            signature[name] = spec

    def serve_bytes(inputs):
        features = {}
        for name in specs:
            if name in images:
                features[name] = decode_images(inputs[name + BYTES_SUFFIX], *images[name])
            else:
                features[name] = inputs[name]
        return serve(features)

    return serve_bytes, [signature]


def encode_png(pixels: np.ndarray) -> np.ndarray:
    """[batch, h, w, c] pixel values (0..255) as a [batch] object array of PNG bytes (rounded, clipped)."""
    import tensorflow as tf

    out = np.empty(len(pixels), dtype=object)
    for i, image in enumerate(np.asarray(pixels)):
        out[i] = tf.io.encode_png(np.clip(np.rint(image), 0, 255).astype(np.uint8)).numpy()
    return out


def bytes_rows(rows: Mapping[str, np.ndarray], encoded: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Sample rows as `serving_bytes` takes them: each image feature `F` replaced by `F_bytes`, its encoded images."""
    return {(name + BYTES_SUFFIX if name in encoded else name): encoded.get(name, values)
            for name, values in rows.items()}
