"""kerasflow: declarative Keras 3 pipelines.

Importing the package is cheap: TensorFlow, Keras and MLflow are imported only
inside the modules that need them.
"""

__version__ = "0.1.0"
