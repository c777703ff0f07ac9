"""SavedModel export in TensorFlow Serving's layout.

`export_version` turns a trained `keras.Model` into `BASE/<version>/` with a
`serving_default` signature, warmup records and metadata, after checking in a
fresh process that the SavedModel predicts what the Keras model predicts.
TensorFlow is imported only when a function here runs.
"""

from kerasflow.export.saved_model import (
    ExportResult,
    export_version,
    list_versions,
    write_tfserving_config,
)

__all__ = ["ExportResult", "export_version", "list_versions", "write_tfserving_config"]
