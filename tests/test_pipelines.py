"""Pipelines as users run them: the quickstart exactly as the README says, the
gallery with fewer epochs and a quality floor, stage caching and resumption."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import QUICKSTART, REPO, kerasflow_cli
from kerasflow.pipeline import select_stages, stage_inputs
from kerasflow.spec.errors import SpecError

PIPELINES = REPO / "pipelines"
NEEDS_NETWORK = {"mnist_mlp.yaml", "imdb_lstm.yaml"}
# Trained by their own tests (ImageNet weights replaced by `weights: null` offline).
TESTED_ELSEWHERE = {"digits_finetune.yaml",  # tests/test_finetune.py
                    "breast_cancer_auto.yaml", "digits_auto.yaml",  # tests/test_auto_models.py
                    "reviews_bert_finetune.yaml"}  # tests/test_hub.py


# ---------------------------------------------------------------- fast, no TensorFlow


def test_select_stages_only_and_from():
    declared = ["validate", "train", "evaluate", "export"]
    assert select_stages(declared, (), "evaluate") == ["evaluate", "export"]
    assert select_stages(declared, ["export"], None) == ["export"]
    with pytest.raises(SpecError, match="`trian` is not a stage of this pipeline"):
        select_stages(declared, ["trian"], None)


def test_stage_hashes_follow_what_each_stage_reads():
    raw = {"name": "x", "seed": 1, "data": {"a": 1}, "model": {"m": 1}, "training": {"t": 1},
           "export": {"base_path": "m"}, "tracking": {"experiment": "e"}}
    up = {"train": "T", "export": "E", "data": "D"}
    changed_export = {**raw, "export": {"base_path": "other"}}
    assert stage_inputs("train", raw, up) == stage_inputs("train", changed_export, up)
    assert stage_inputs("export", raw, up) != stage_inputs("export", changed_export, up)
    changed_model = {**raw, "model": {"m": 2}}
    assert stage_inputs("train", raw, up) != stage_inputs("train", changed_model, up)
    assert stage_inputs("evaluate", raw, up) != stage_inputs("evaluate", raw, {**up, "train": "T2"})


# ---------------------------------------------------------------- the quickstart, as the README runs it


@pytest.mark.slow
@pytest.mark.integration
def test_quickstart_runs_then_caches(quickstart_run):
    res, tmp_path = quickstart_run.result, quickstart_run.cwd
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    metrics = quickstart_run.metrics
    assert metrics["test_accuracy"] >= 0.95, metrics
    version_dir = tmp_path / "models" / "quickstart" / "1"
    assert (version_dir / "saved_model.pb").is_file()
    assert (version_dir / "assets.extra" / "tf_serving_warmup_requests").is_file()
    assert "[serve_check]" in res.stdout and "match the trained model" in res.stdout

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("quickstart")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.metrics["test_accuracy"] == pytest.approx(metrics["test_accuracy"])

    again = kerasflow_cli("run", str(QUICKSTART), cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    for stage in ("validate", "train", "evaluate", "export", "serve_check"):
        assert f"[{stage}] cached" in again.stdout, again.stdout
    assert sorted(p.name for p in (tmp_path / "models" / "quickstart").iterdir()) == ["1"]


@pytest.mark.slow
def test_changing_export_only_reruns_export(tmp_path, monkeypatch):
    from kerasflow.pipeline import run_pipeline

    monkeypatch.chdir(tmp_path)
    sets = ["tracking.enabled=false", "training.stages.0.epochs=2", "stages=[validate, train, export]"]
    first = run_pipeline(PIPELINES / "quickstart.yaml", overrides=sets, echo=lambda s: None)
    assert [o.status for o in first.outcomes] == ["ran", "ran", "ran"]
    second = run_pipeline(PIPELINES / "quickstart.yaml", overrides=sets + ["export.keep=1"], echo=lambda s: None)
    assert [(o.name, o.status) for o in second.outcomes] == [("validate", "ran"), ("train", "cached"), ("export", "ran")]
    assert sorted(p.name for p in (tmp_path / "models" / "quickstart").iterdir()) == ["2"]


# ---------------------------------------------------------------- the gallery

GALLERY = {
    # pipeline: (overrides, metric, floor) -- fewer epochs than the real thing, a floor well above chance
    "digits_cnn.yaml": (["training.stages.0.epochs=6"], "test_accuracy", 0.93),
    "breast_cancer_tabular.yaml": (["training.stages.0.epochs=15"], "test_accuracy", 0.90),
    "iris_multi_input.yaml": (["training.stages.0.epochs=60"], "test_accuracy", 0.80),
    "sunspots_lstm.yaml": (["training.stages.0.epochs=40"], "test_mae", None),
    "sunspots_gru.yaml": (["training.stages.0.epochs=40"], "test_mae", None),
    "sequence_transformer.yaml": (["training.stages.0.epochs=3", "data.source.samples=6000"], "test_accuracy", 0.5),
    "seq2seq_transformer.yaml": (["training.stages.0.epochs=3", "data.source.samples=6000"], "test_accuracy", 0.5),
    "digits_mlp_tuned.yaml": (["training.stages.0.epochs=4", "tuning.max_trials=2", "tuning.tuner=random"],
                              "test_accuracy", 0.9),
    "digits_block_search.yaml": (["training.stages.0.epochs=4", "tuning.max_trials=2"], "test_accuracy", 0.9),
}


def test_gallery_table_covers_every_offline_pipeline():
    offline = {p.name for p in PIPELINES.glob("*.yaml")} - NEEDS_NETWORK - TESTED_ELSEWHERE - {"quickstart.yaml"}
    assert offline == set(GALLERY)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(GALLERY))
def test_gallery_pipeline_trains_to_a_floor(tmp_path, monkeypatch, name):
    from kerasflow.pipeline import run_pipeline

    monkeypatch.chdir(tmp_path)
    overrides, metric, floor = GALLERY[name]
    result = run_pipeline(PIPELINES / name, overrides=overrides + ["tracking.enabled=false"], echo=lambda s: None)
    metrics = result.outputs("train")["metrics"]
    if floor is None:  # regression
        assert metrics[metric] < 16.0, metrics  # yearly sunspots: persistence scores ~16-20 here
    else:
        assert metrics[metric] >= floor, metrics
    assert (Path(result.outputs("export")["export_path"]) / "saved_model.pb").is_file()


@pytest.mark.parametrize("name", sorted(NEEDS_NETWORK))
def test_network_pipelines_plan_offline(name):
    from kerasflow import api

    text = api.plan(PIPELINES / name)
    assert "Total params:" in text
    if name == "mnist_mlp.yaml":
        assert "Total params: 109,386" in text


@pytest.mark.slow
def test_register_stage_moves_the_alias_only_to_a_better_model(tmp_path, monkeypatch):
    import mlflow

    from kerasflow.pipeline import run_pipeline

    monkeypatch.chdir(tmp_path)
    sets = ["stages=[validate, train, register]", "tracking.register_as=digits", "tracking.alias=prod"]
    good = run_pipeline(PIPELINES / "quickstart.yaml", overrides=sets + ["training.stages.0.epochs=8"],
                        echo=lambda s: None)
    assert good.outputs("register")["alias_moved"] is True
    worse = run_pipeline(PIPELINES / "quickstart.yaml", overrides=sets + ["training.stages.0.epochs=1"],
                         echo=lambda s: None, run_dir=tmp_path / "second")
    assert worse.outputs("register")["alias_moved"] is False
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    holder = client.get_model_version_by_alias("digits", "prod")
    assert str(holder.version) == str(good.outputs("register")["registered_version"])
    assert len(client.search_model_versions("name='digits'")) == 2


@pytest.mark.slow
def test_run_trains_with_the_tuned_batch_size(tmp_path, monkeypatch):
    """Data is prepared once, from the spec whose batch size is still a `tune:`
    marker (its default); training must still use the batch size the search chose."""
    from conftest import DIGITS_MLP
    from kerasflow.pipeline import run_pipeline

    monkeypatch.chdir(tmp_path)
    sets = ["data.batch_size={tune: choice, values: [128, 16]}", "training.stages.0.epochs=1",
            "tuning={tuner: grid, objective: val_accuracy}", "stages=[validate, tune, train]"]
    result = run_pipeline(DIGITS_MLP, overrides=sets, echo=lambda s: None, quiet=True)
    best = result.outputs("tune")["best_values"]["data.batch_size"]
    assert best == 16  # one epoch of 8x more steps wins on digits
    train_dir = Path(result.outputs("train")["run_dir"])
    stage = json.loads((train_dir / "state.json").read_text())["stages"]["main"]
    assert stage["batch_size"] == 16
    assert stage["steps_per_epoch"] == -(-1437 // 16)  # 1437 training digits in batches of 16, not of 128
