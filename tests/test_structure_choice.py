"""`tune: choice` over whole nodes, blocks and mappings: each alternative is
validated like the value it replaces (errors point inside it), the JSON
Schema and the reference describe it, and a search over "block A or block B"
writes the chosen block into best.yaml."""

import copy
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from kerasflow.spec.errors import SpecError
from kerasflow.spec.loader import load_spec, load_spec_dict, resolve
from kerasflow.spec.search_space import find_params, has_markers

PIPELINE = Path(REPO) / "pipelines" / "digits_block_search.yaml"
BODY = "model.nodes.body"


def _problems(change) -> list:
    raw, locs = resolve(PIPELINE)
    raw = copy.deepcopy(raw)
    change(raw)
    with pytest.raises(SpecError) as info:
        load_spec_dict(raw, locs)
    return info.value.problems


def test_the_gallery_search_validates_with_a_conditional_space():
    loaded = load_spec(PIPELINE)
    params = {p.name: p for p in find_params(loaded.raw)}
    assert params[BODY].labels == ("mlp", "residual")
    assert params[f"{BODY}.values[1].layers[0].units"].conditions == ((BODY, "residual"),)


@pytest.mark.parametrize("change, path, fragment", [
    (lambda r: r["model"]["nodes"]["body"]["values"][1]["layers"][0].update(units=0),
     f"{BODY}.values[1].layers[0].units", "greater than 0"),
    (lambda r: r["model"]["nodes"]["body"]["values"][0].update(block="mpl"), f"{BODY}.values[0].block", "did you mean `mlp`"),
    (lambda r: r["model"]["nodes"].update(body={"tune": "int", "min": 1, "max": 3}), BODY, "`tune: choice` over nodes"),
    (lambda r: r["model"]["nodes"]["body"]["values"][0].update(input="pixls"), f"{BODY}.values[0].input", "did you mean `pixels`"),
    (lambda r: r["training"]["stages"][0].update(optimizer={"tune": "choice", "values": [{"type": "adam"}, {"type": "sgd", "beta_1": 0.9}]}),
     "training.stages[0].optimizer.values[1]", "`beta_1` is not an option of sgd"),
    (lambda r: r["training"]["stages"][0]["optimizer"].update(learning_rate={"tune": "choice", "values": [0.01, {"type": "cosine", "initial": 0.1}]}),
     "training.stages[0].optimizer.learning_rate.values[1].decay_steps", "missing required key"),
    (lambda r: r["model"]["nodes"]["out"].update(kernel_regularizer={"tune": "choice", "values": [{"l2": 0.01}, {"l3": 1}]}),
     "model.nodes.out.kernel_regularizer.values[1].l3", "one of: l1, l2"),
    (lambda r: r["model"]["nodes"].update(out={"tune": "choice", "values": [
        {"layer": "dense", "input": "body", "units": 10, "activation": "softmax"}, {"layer": "dense", "input": "body", "units": 5}]}),
     "model.nodes.out.values[1].units", "units: 10"),
])
def test_alternatives_are_validated_where_they_are(change, path, fragment):
    problems = _problems(change)
    matching = [p for p in problems if p.path == path]
    assert matching, "\n".join(p.format() for p in problems)
    assert any(fragment in p.format() for p in matching) and all(p.location for p in matching)


def test_json_schema_and_reference_describe_choices():
    from kerasflow.api import json_schema
    from kerasflow.spec.reference import render_reference

    defs = json_schema()["$defs"]
    assert {"NodeChoice", "ChoiceOfOptimizer", "ChoiceOfRegularizer", "ChoiceOfLearningRate"} <= set(defs)
    assert defs["NodeChoice"]["properties"]["tune"]["const"] == "choice"
    reference = render_reference()
    assert "### `tune: choice` over whole nodes and mappings" in reference
    assert "Optimizer \\| `tune: choice` of Optimizer" in reference


@pytest.mark.slow
def test_search_between_two_blocks_writes_the_chosen_block_to_best_yaml(tmp_path):
    from kerasflow.tune import tune

    raw = yaml.safe_load(PIPELINE.read_text())
    raw["extends"] = [str(PIPELINE.parent / e) for e in raw["extends"]]
    raw["training"]["stages"][0]["epochs"] = 2
    raw["training"]["jit_compile"] = False
    raw["tracking"] = {"enabled": False}
    spec = tmp_path / "search.yaml"
    spec.write_text(yaml.safe_dump(raw, sort_keys=False))
    result = tune(load_spec(spec), run_dir=tmp_path / "run", quiet=True)

    tried = {row["values"][BODY] for row in result.trials}
    assert tried == {"mlp", "residual"}, result.trials  # both blocks were built and trained
    chosen = result.best_values[BODY]
    assert result.best_score == max(row["score"] for row in result.trials)
    best = load_spec(result.best_spec_path)
    body = best.raw["model"]["nodes"]["body"]
    assert body["block"] == chosen and not has_markers(best.raw)
    assert getattr(best.spec.model.nodes["body"], "block") == chosen
