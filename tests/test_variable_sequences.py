"""Token sequences of any length (`length: variable`): rows of different
lengths in a CSV column, padded per batch, masked by `Embedding(mask_zero)`,
trained, exported with a (None, None) input, and served from the SavedModel."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow

SPEC = """\
kerasflow: 1
name: variable-tokens
seed: 3
data:
  source: {type: csv, path: tokens.csv}
  features:
    tokens: {type: sequence, length: variable, vocab_size: 20, padding: post}
  target: {name: label, type: binary}
  split: {validation: 0.2, test: 0.1}
  batch_size: 16
model:
  sequential:
    - {layer: embedding, name: embedding, input_dim: 20, output_dim: 8, mask_zero: true}
    - {layer: lstm, name: lstm, units: 8}
    - {layer: dense, name: out, units: 1, activation: sigmoid}
training:
  loss: binary_crossentropy
  stages: [{name: main, epochs: 1}]
tracking: {enabled: false}
"""


def _write(tmp_path, n=200):
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(n):
        tokens = rng.integers(1, 20, rng.integers(1, 15))
        rows.append((" ".join(map(str, tokens)), int(7 in tokens)))
    (tmp_path / "tokens.csv").write_text("tokens,label\n" + "".join(f"{t},{y}\n" for t, y in rows))
    (tmp_path / "spec.yaml").write_text(SPEC)
    return rows


def test_variable_length_tokens_train_export_and_predict(tmp_path):
    import tensorflow as tf

    from kerasflow import api

    rows = _write(tmp_path)
    result = api.train(tmp_path / "spec.yaml", run_dir=tmp_path / "run", quiet=True)
    assert result.model.input_shape == (None, None) or result.model.input_shape == [(None, None)]
    widths = {int(f["tokens"].shape[1]) for f, _ in result.data.train}
    assert len(widths) > 1 and max(widths) <= 14  # padded per batch, to each batch's longest row

    exported = api.export(result.run_dir, base_path=tmp_path / "models", data=result.data)
    serving = tf.saved_model.load(str(exported.path)).signatures["serving_default"]
    assert serving.structured_input_signature[1]["tokens"].shape.as_list() == [None, None]

    # One row, padded or not: the mask makes trailing zeros invisible, in Keras and in the SavedModel.
    row = np.array([[int(t) for t in rows[0][0].split()]], dtype=np.int32)
    padded = np.pad(row, ((0, 0), (0, 5)))
    keras_out = result.model.predict({"tokens": padded}, verbose=0)["label"]
    served = serving(tokens=tf.constant(padded))["probabilities"].numpy()
    unpadded = serving(tokens=tf.constant(row))["probabilities"].numpy()
    np.testing.assert_allclose(served[:, -1], np.asarray(keras_out).reshape(-1), atol=1e-5)
    np.testing.assert_allclose(unpadded, served, atol=1e-5)

    # `kerasflow predict` on a file of token lists of different lengths, as in training.
    (tmp_path / "new.csv").write_text("id,tokens\n1,3 7 7 1\n2,5\n3,\"[4, 9, 2]\"\n")
    assert api.predict(result.run_dir, tmp_path / "new.csv", tmp_path / "out.csv") == 3
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert len(lines) == 4 and lines[0].startswith("id,")


def test_token_text_that_is_not_ids_is_a_clear_error(tmp_path):
    from kerasflow.data.pipeline import prepare_data
    from kerasflow.spec.errors import SpecError
    from kerasflow.spec.loader import load_spec

    _write(tmp_path, n=20)
    (tmp_path / "tokens.csv").write_text("tokens,label\n1 2 x,0\n3 4,1\n" * 5)
    with pytest.raises(SpecError, match="not token ids"):
        prepare_data(load_spec(tmp_path / "spec.yaml").spec, base_dir=tmp_path)
