"""Process-wide training settings: seeds, op determinism, the mixed-precision
policy and the `tf.distribute` strategy."""

from __future__ import annotations

import contextlib

from kerasflow.spec.errors import Problem, SpecError


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and TensorFlow; with `deterministic`, also make ops
    deterministic (irreversible for the process; ops without a deterministic
    kernel then raise)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(int(seed))
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def configure_runtime(training, seed: int) -> None:
    """Seeds, op determinism and the process-wide dtype policy of `training`,
    for callers that build models across many calls (the tuner); `train` scopes
    the policy with `dtype_policy` instead."""
    import keras

    seed_everything(seed, training.deterministic)
    keras.config.set_dtype_policy(training.mixed_precision)


@contextlib.contextmanager
def dtype_policy(name: str):
    """Build and train under the global Keras dtype policy `name` (e.g.
    `mixed_float16`), restoring the previous one afterwards: models keep the
    policy they were built with, later builds in the process are unaffected."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def make_strategy(training):
    """The `tf.distribute.Strategy` named by `training.distribution`."""
    import tensorflow as tf

    kind = training.distribution
    if kind == "multi_worker":  # `train` runs it with its own loop (train/multi_worker.py)
        raise SpecError(Problem(
            path="training.distribution",
            message="multi_worker trains through `kerasflow train` only: KerasTuner trains with Keras `fit`, and "
                    "`fit` under MultiWorkerMirroredStrategy is not supported yet, see issue 10",
            expected="default, mirrored or one_device", received=kind,
            hint="tune on one machine (default or mirrored), then train the best spec with multi_worker",
        ))
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    if kind == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    return tf.distribute.get_strategy()
