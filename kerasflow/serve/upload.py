"""An uploaded image file, predicted by the `serving_bytes` signature.

    POST /v1/models/NAME[/versions/N|/labels/L]:upload

The body is the image itself (`Content-Type: image/png`, `image/jpeg`, ...;
`curl --data-binary @digit.png -H 'Content-Type: image/png'`) or a
`multipart/form-data` form whose first file part is the image
(`curl -F file=@digit.png`). It works for models exported with image
features (`kerasflow.export.images`) whose `serving_bytes` signature has one
input, the image; the answer is the predict response of that one image,
`{"predictions": [{...}]}`. Not part of TF Serving's API: kerasflow's own
convenience for browsers and shell scripts.
"""

from __future__ import annotations

import numpy as np

from kerasflow.serve.servables import Servable, ServingError

SIGNATURE = "serving_bytes"  # kerasflow.export.images.BYTES_SIGNATURE (serve/ does not import export/)


def upload_inputs(servable: Servable, content_type: str, body: bytes) -> dict[str, np.ndarray]:
    """`serving_bytes` inputs holding the one uploaded image; INVALID_ARGUMENT when impossible."""
    signature = servable.signature_def(SIGNATURE)  # NOT_FOUND-style message when the export has none
    if len(signature.inputs) != 1:
        raise ServingError("INVALID_ARGUMENT", f"an upload fills one image input; {SIGNATURE} takes "
                                               f"{sorted(signature.inputs)}: use :predict")
    image = _image(content_type, body)
    array = np.empty(1, dtype=object)
    array[0] = image
    return {next(iter(signature.inputs)): array}


def _image(content_type: str, body: bytes) -> bytes:
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind.startswith("image/") or kind == "application/octet-stream":
        if not body:
            raise ServingError("INVALID_ARGUMENT", "the request body is empty: send the image file")
        return body
    if kind == "multipart/form-data":
        from email import policy
        from email.parser import BytesParser

        message = BytesParser(policy=policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
        for part in message.iter_parts() if message.is_multipart() else ():
            if part.get_filename() or part.get_content_type().startswith("image/"):
                return part.get_payload(decode=True) or b""
        raise ServingError("INVALID_ARGUMENT", "the form has no file part: send it as `-F file=@image.png`")
    raise ServingError("INVALID_ARGUMENT", f"unsupported Content-Type {kind or '(none)'} for an upload: "
                                           "send image/* (the file as the body) or multipart/form-data")
