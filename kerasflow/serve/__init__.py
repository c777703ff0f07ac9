"""Serving exported versions: the real `tensorflow_model_server` when installed,
otherwise the embedded server implementing TF Serving's REST and gRPC APIs.

Nothing heavy is imported here; TensorFlow and gRPC load when a server starts.
"""

from kerasflow.serve.server import DEFAULT_MAX_BODY_BYTES, EmbeddedServer, serve
from kerasflow.serve.tfserving import find_model_server, launch_model_server

__all__ = ["DEFAULT_MAX_BODY_BYTES", "EmbeddedServer", "find_model_server", "launch_model_server", "serve"]
