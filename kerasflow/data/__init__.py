"""Data stage: sources, typed features, splits and tf.data pipelines (TensorFlow is imported lazily)."""
