"""kerasflow's learning-rate schedules (Keras objects saved inside a
`model.keras` with its optimizer). Imports Keras."""

import keras


@keras.saving.register_keras_serializable(package="kerasflow")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """Rises linearly from 0 to `schedule(0)` over `warmup_steps`, then follows `schedule`.

    Args:
        schedule: a `LearningRateSchedule` or a float (constant after warmup).
        warmup_steps: optimizer steps of the linear ramp (> 0).
    """

    def __init__(self, schedule, warmup_steps: int):
        if int(warmup_steps) <= 0:
            raise ValueError(
                f"Received an invalid value for warmup_steps, expected a positive integer. Received: {warmup_steps=}"
            )
        self.schedule = schedule
        self.warmup_steps = int(warmup_steps)

    def _after(self, step):
        if isinstance(self.schedule, keras.optimizers.schedules.LearningRateSchedule):
            return keras.ops.cast(self.schedule(step), "float32")
        return keras.ops.convert_to_tensor(float(self.schedule), "float32")

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warmup = float(self.warmup_steps)
        target = self._after(keras.ops.convert_to_tensor(0.0))
        ramp = target * (step + 1.0) / warmup  # +1: the first update already moves the weights
        return keras.ops.where(step < warmup, ramp, self._after(keras.ops.maximum(step - warmup, 0.0)))

    def get_config(self):
        schedule = self.schedule
        if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            schedule = keras.saving.serialize_keras_object(schedule)
        return {"schedule": schedule, "warmup_steps": self.warmup_steps}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config["schedule"], dict):
            config["schedule"] = keras.saving.deserialize_keras_object(config["schedule"])
        return cls(**config)
