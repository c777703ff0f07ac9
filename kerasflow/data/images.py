"""Encoded image bytes -> the float pixels an image feature's `keras.Input` takes.

One home for the decode step, shared by the training pipeline (image files)
and the exported serving graph (JPEG/PNG bytes sent by clients), so a served
image is resized exactly as the model saw its training images. Scaling
(`rescale`, `offset`) is not done here: it lives inside the model.
"""

from __future__ import annotations


def decode_image(contents, height: int, width: int, channels: int):
    """One encoded PNG/JPEG/GIF/BMP (a scalar string tensor) as float32 [height, width, channels], 0..255."""
    import tensorflow as tf

    image = tf.io.decode_image(contents, channels=channels, expand_animations=False)
    image = tf.image.resize(image, (height, width))
    return tf.ensure_shape(image, (height, width, channels))


def decode_images(contents, height: int, width: int, channels: int):
    """A [batch] string tensor of encoded images as float32 [batch, height, width, channels]."""
    import tensorflow as tf

    return tf.map_fn(lambda c: decode_image(c, height, width, channels), contents,
                     fn_output_signature=tf.TensorSpec((height, width, channels), tf.float32))
