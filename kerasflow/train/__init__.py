"""Training: compile, callbacks, stages, strategy, run directories, evaluate and
predict. Submodules import TensorFlow/Keras; this package module does not."""
