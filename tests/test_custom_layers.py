"""Custom layers come in only through `model.imports`, and then validate and build like built-ins."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from invalid_cases import BASE_YAML

SCHEMA_MODULE = '''
from pydantic import Field, PositiveFloat

from kerasflow.spec.registry import LayerNode, register_layer


@register_layer("scaled_tanh", "my_keras_layers:ScaledTanh")
class ScaledTanh(LayerNode):
    """tanh(x) * scale."""

    scale: PositiveFloat = Field(1.0, description="Output scale.")
'''

KERAS_MODULE = '''
import keras


@keras.saving.register_keras_serializable(package="my_layers")
class ScaledTanh(keras.layers.Layer):
    def __init__(self, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, x):
        return keras.ops.tanh(x) * self.scale

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}
'''


def _setup(tmp_path, with_imports: bool, scale: str = "2.0"):
    (tmp_path / "my_layers.py").write_text(textwrap.dedent(SCHEMA_MODULE))
    (tmp_path / "my_keras_layers.py").write_text(textwrap.dedent(KERAS_MODULE))
    spec = BASE_YAML.replace("h2:  {layer: dense, input: h1, units: 64, activation: relu}",
                             f"h2:  {{layer: scaled_tanh, input: h1, scale: {scale}}}")
    if with_imports:
        spec = spec.replace("model:\n", "model:\n  imports: [my_layers]\n")
    (tmp_path / "spec.yaml").write_text(spec)
    env = {**os.environ, "PYTHONPATH": str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return env


def kerasflow(tmp_path, env, *args):
    return subprocess.run([sys.executable, "-m", "kerasflow.cli", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def test_custom_layer_validates_and_builds_when_imported(tmp_path):
    env = _setup(tmp_path, with_imports=True)
    res = kerasflow(tmp_path, env, "validate", "--allow-imports", "spec.yaml")
    assert res.returncode == 0, res.stderr
    res = kerasflow(tmp_path, env, "plan", "--allow-imports", "spec.yaml")
    assert res.returncode == 0, res.stderr
    assert "ScaledTanh" in res.stdout and "scaled_tanh" in res.stdout


def test_custom_layer_params_are_checked(tmp_path):
    env = _setup(tmp_path, with_imports=True, scale="-2.0")
    res = kerasflow(tmp_path, {**env, "KERASFLOW_ALLOW_IMPORTS": "1"}, "validate", "spec.yaml")
    assert res.returncode == 2 and "model.nodes.h2.scale" in res.stderr and "greater than 0" in res.stderr


def test_imports_are_not_run_without_consent(tmp_path):
    """Security: `model.imports: [module]` never imports (runs) the module
    unless the user opts in; validate checks the rest and says what it skipped."""
    env = _setup(tmp_path, with_imports=True)
    marker = tmp_path / "imported"
    (tmp_path / "my_layers.py").write_text(f"open({str(marker)!r}, 'w').close()\n"
                                           + textwrap.dedent(SCHEMA_MODULE))
    res = kerasflow(tmp_path, env, "validate", "spec.yaml")
    assert res.returncode == 0, res.stderr
    assert "model.nodes.h2: not checked: layer `scaled_tanh` is not registered" in res.stderr
    assert "--allow-imports" in res.stderr and not marker.exists()
    res = kerasflow(tmp_path, env, "plan", "spec.yaml")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "spec.yaml:" in res.stderr and "model.imports[0]: importing `my_layers` would run its code" in res.stderr
    assert not marker.exists()
    res = kerasflow(tmp_path, env, "plan", "--allow-imports", "spec.yaml")
    assert res.returncode == 0, res.stderr
    assert marker.exists()


def test_unchecked_node_still_has_its_wiring_checked(tmp_path):
    env = _setup(tmp_path, with_imports=True)
    (tmp_path / "spec.yaml").write_text((tmp_path / "spec.yaml").read_text().replace(
        "{layer: scaled_tanh, input: h1,", "{layer: scaled_tanh, input: h9,"))
    res = kerasflow(tmp_path, env, "validate", "spec.yaml")
    assert res.returncode == 2 and "model.nodes.h2.input" in res.stderr and "`h9` is neither an input nor a node" in res.stderr


def test_nothing_is_imported_without_model_imports(tmp_path):
    env = _setup(tmp_path, with_imports=False)
    res = kerasflow(tmp_path, env, "validate", "spec.yaml")
    assert res.returncode == 2 and "unknown layer `scaled_tanh`" in res.stderr


def test_missing_import_module_is_a_spec_error(tmp_path):
    env = _setup(tmp_path, with_imports=True)
    (tmp_path / "spec.yaml").write_text((tmp_path / "spec.yaml").read_text().replace("[my_layers]", "[no_such_mod]"))
    res = kerasflow(tmp_path, env, "validate", "--allow-imports", "spec.yaml")
    assert res.returncode == 2 and "model.imports[0]: cannot import `no_such_mod`" in res.stderr
    assert "Traceback" not in res.stderr
