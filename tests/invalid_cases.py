"""The corpus of invalid specs: each case names where the problem is and a
fragment of the message. A case is either raw YAML text (`text`) or a valid
base spec with changes applied (`set`: dotted path -> value, `drop`: paths)."""

from __future__ import annotations

DELETE = object()

BASE_YAML = """\
kerasflow: 1
name: base
data:
  source: {type: sklearn, name: digits}
  features:
    pixels: {type: numeric, shape: [64], normalize: true}
  target: {name: label, type: category, num_classes: 10}
  split: {validation: 0.1, test: 0.1, stratify: true}
  batch_size: 64
model:
  nodes:
    h1:  {layer: dense, input: pixels, units: 128, activation: relu}
    h2:  {layer: dense, input: h1, units: 64, activation: relu}
    out: {layer: dense, input: h2, units: 10, activation: softmax}
  outputs: {label: out}
training:
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
  stages:
    - name: main
      epochs: 5
      optimizer: {type: adam, learning_rate: 0.001}
tuning: {tuner: random, objective: val_accuracy, max_trials: 2}
"""

MINIMAL_NO_ROOT = "kerasflow: 1\n"

# (id, case, expected dotted path (or None for the root), expected message fragment)
CASES: list[tuple[str, dict, str, str]] = [
    # --- YAML level
    ("yaml-syntax", {"text": "kerasflow: 1\nname: [unclosed\n"}, "", "YAML syntax error"),
    ("yaml-bad-indent", {"text": "kerasflow: 1\n name: x\nfoo: 1\n"}, "", "YAML syntax error"),
    ("yaml-tab", {"text": "kerasflow: 1\ndata:\n\tsource: 1\n"}, "", "tab character"),
    ("yaml-duplicate-root", {"text": BASE_YAML + "name: again\n"}, "name", "duplicate key `name`"),
    ("yaml-duplicate-nested", {"text": BASE_YAML.replace("  batch_size: 64\n", "  batch_size: 64\n  batch_size: 32\n")},
     "data.batch_size", "duplicate key"),
    ("yaml-python-tag", {"text": "kerasflow: 1\nname: !!python/object/apply:os.system ['echo hi']\n"}, "name", "is not allowed"),
    ("yaml-python-name-tag", {"text": "kerasflow: 1\nname: !!python/name:os.system ''\n"}, "name", "is not allowed"),
    ("yaml-custom-tag", {"text": "kerasflow: 1\nname: !mytag x\n"}, "name", "is not allowed"),
    ("yaml-root-list", {"text": "- a\n- b\n"}, "", "root must be a mapping"),
    ("yaml-root-scalar", {"text": "just text\n"}, "", "root must be a mapping"),
    ("yaml-empty", {"text": ""}, "", "empty"),
    ("yaml-merge-key", {"text": "kerasflow: 1\nbase: &b {x: 1}\nother:\n  <<: *b\n"}, "other", "merge keys"),
    ("yaml-alias-bomb", {"text": "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                                 "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                                 "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"},
     None, "expands to more than"),
    ("yaml-two-docs", {"text": "kerasflow: 1\n---\nname: x\n"}, "", "YAML syntax error"),
    # --- root level
    ("root-unknown-key", {"set": {"nmae": "x"}}, "nmae", "did you mean `name`"),
    ("root-missing-name", {"drop": ["name"]}, "name", "missing required key `name`"),
    ("root-missing-data", {"drop": ["data"]}, "data", "missing required key `data`"),
    ("root-bad-version", {"set": {"kerasflow": 2}}, "kerasflow", "invalid value"),
    ("root-missing-version", {"drop": ["kerasflow"]}, "kerasflow", "missing required key"),
    ("root-bad-name", {"set": {"name": "has space"}}, "name", "usable as one path component"),
    ("root-seed-type", {"set": {"seed": "abc"}}, "seed", "valid integer"),
    ("root-bad-stage", {"set": {"stages": ["validate", "trian"]}}, "stages[1]", "did you mean `train`"),
    # --- data
    ("data-unknown-key", {"set": {"data.batchsize": 3}}, "data.batchsize", "did you mean `batch_size`"),
    ("data-source-unknown-type", {"set": {"data.source.type": "sklern"}}, "data.source.type", "did you mean `sklearn`"),
    ("data-source-unknown-key", {"set": {"data.source.nme": "digits"}}, "data.source.nme", "unknown key"),
    ("data-source-bad-name", {"set": {"data.source.name": "digitz"}}, "data.source.name", "did you mean `digits`"),
    ("data-feature-bad-type", {"set": {"data.features.pixels.type": "numerc"}}, "data.features.pixels.type", "did you mean `numeric`"),
    ("data-feature-unknown-key", {"set": {"data.features.pixels.normalise": True}}, "data.features.pixels.normalise", "did you mean `normalize`"),
    ("data-feature-bad-shape", {"set": {"data.features.pixels.shape": [0]}}, "data.features.pixels.shape[0]", "greater than 0"),
    ("data-no-features", {"set": {"data.features": {}}}, "data.features", "at least 1"),
    ("data-target-bad-type", {"set": {"data.target.type": "class"}}, "data.target.type", "invalid value"),
    ("data-target-missing-name", {"drop": ["data.target.name"]}, "data.target.name", "missing required key"),
    ("data-target-class-names", {"set": {"data.target.class_names": ["a", "b"]}}, "data.target", "class_names"),
    ("data-split-sum", {"set": {"data.split.validation": 0.6, "data.split.test": 0.5}}, "data.split", "validation + test < 1"),
    ("data-split-negative", {"set": {"data.split.test": -0.1}}, "data.split.test", "greater than or equal to 0"),
    ("data-split-one", {"set": {"data.split.validation": 1.0}}, "data.split.validation", "less than 1"),
    ("data-batch-zero", {"set": {"data.batch_size": 0}}, "data.batch_size", "greater than 0"),
    ("data-batch-string", {"set": {"data.batch_size": "big"}}, "data.batch_size", "valid integer"),
    # --- model
    ("model-unknown-key", {"set": {"model.node": {}}}, "model.node", "did you mean `nodes`"),
    ("model-unknown-layer", {"set": {"model.nodes.h1.layer": "dnse"}}, "model.nodes.h1.layer", "did you mean `dense`"),
    ("model-unknown-layer-far", {"set": {"model.nodes.h1.layer": "quantum_entangler"}}, "model.nodes.h1.layer", "unknown layer"),
    ("model-node-no-type", {"set": {"model.nodes.h1": {"input": "pixels", "units": 3}}}, "model.nodes.h1", "`layer:` or `block:`"),
    ("model-node-unknown-param", {"set": {"model.nodes.h2.unitz": 3}}, "model.nodes.h2.unitz", "did you mean `units`"),
    ("model-node-bad-units", {"set": {"model.nodes.h2.units": -4}}, "model.nodes.h2.units", "greater than 0"),
    ("model-node-units-string", {"set": {"model.nodes.h2.units": "many"}}, "model.nodes.h2.units", "valid integer"),
    ("model-dropout-rate", {"set": {"model.nodes.d": {"layer": "dropout", "input": "h1", "rate": 1.5}}},
     "model.nodes.d.rate", "less than 1"),
    ("model-dangling-input", {"set": {"model.nodes.h2.input": "h11"}}, "model.nodes.h2.input", "did you mean `h1`"),
    ("model-dangling-input-far", {"set": {"model.nodes.h2.input": "nowhere"}}, "model.nodes.h2.input", "neither an input nor a node"),
    ("model-cycle", {"set": {"model.nodes.h1.input": "h2"}}, "model.nodes.h2", "cycle"),
    ("model-self-cycle", {"set": {"model.nodes.h2.input": "h2"}}, "model.nodes.h2", "cycle"),
    ("model-missing-output-node", {"set": {"model.outputs": {"label": "outt"}}}, "model.outputs.label", "did you mean `out`"),
    ("model-output-unknown-target", {"set": {"model.outputs": {"lable": "out"}}}, "model.outputs.lable", "did you mean `label`"),
    ("model-no-nodes-or-sequential", {"drop": ["model.nodes"]}, "model", "exactly one of `nodes`, `sequential` or `auto`, received none"),
    ("model-unknown-input-feature", {"set": {"model.inputs": ["pixel"]}}, "model.inputs[0]", "did you mean `pixels`"),
    ("model-node-no-input", {"set": {"model.nodes.h1.input": DELETE}}, "model.nodes.h1", "has no input"),
    ("model-node-name-is-feature", {"set": {"model.nodes.pixels": {"layer": "dense", "input": "h1", "units": 2}}},
     "model.nodes.pixels", "also an input feature"),
    ("model-layer-is-block-typo", {"set": {"model.nodes.h1.layer": 7}}, "model.nodes.h1.layer", "unknown layer"),
    # --- tune markers
    ("tune-unknown-kind", {"set": {"model.nodes.h2.units": {"tune": "integer", "min": 1, "max": 4}}}, "model.nodes.h2.units.tune", "did you mean `int`"),
    ("tune-min-max", {"set": {"model.nodes.h2.units": {"tune": "int", "min": 64, "max": 32}}}, "model.nodes.h2.units", "min < max"),
    ("tune-log-nonpositive", {"set": {"training.stages.0.optimizer.learning_rate": {"tune": "float", "min": 0.0, "max": 0.1, "sampling": "log"}}},
     "training.stages[0].optimizer.learning_rate", "needs min > 0"),
    ("tune-empty-choice", {"set": {"model.nodes.h2.activation": {"tune": "choice", "values": []}}}, "model.nodes.h2.activation.values", "at least 1"),
    ("tune-choice-duplicates", {"set": {"model.nodes.h2.activation": {"tune": "choice", "values": ["relu", "relu"]}}},
     "model.nodes.h2.activation", "distinct values"),
    ("tune-unknown-key", {"set": {"model.nodes.h2.units": {"tune": "int", "min": 1, "max": 4, "stepp": 1}}}, "model.nodes.h2.units.stepp", "did you mean `step`"),
    ("tune-bad-value-type", {"set": {"model.nodes.h2.units": {"tune": "choice", "values": [32, "many"]}}}, "model.nodes.h2.units", "not valid here"),
    ("tune-min-invalid-for-field", {"set": {"model.nodes.h2.units": {"tune": "int", "min": 0, "max": 8}}}, "model.nodes.h2.units", "not valid here"),
    ("tune-bad-sampling", {"set": {"model.nodes.h2.units": {"tune": "int", "min": 1, "max": 8, "sampling": "logarithmic"}}},
     "model.nodes.h2.units.sampling", "invalid value"),
    ("tune-default-outside", {"set": {"model.nodes.h2.units": {"tune": "int", "min": 1, "max": 8, "default": 9}}}, "model.nodes.h2.units", "default"),
    # --- training
    ("training-missing-loss", {"drop": ["training.loss"]}, "training.loss", "missing required key"),
    ("training-no-stages", {"set": {"training.stages": []}}, "training.stages", "at least 1"),
    ("training-stage-unknown-key", {"set": {"training.stages.0.epoch": 3}}, "training.stages[0].epoch", "did you mean `epochs`"),
    ("training-stage-epochs-zero", {"set": {"training.stages.0.epochs": 0}}, "training.stages[0].epochs", "greater than 0"),
    ("training-optimizer-typo", {"set": {"training.stages.0.optimizer.type": "adm"}}, "training.stages[0].optimizer.type", "did you mean `adam`"),
    ("training-lr-negative", {"set": {"training.stages.0.optimizer.learning_rate": -1}}, "training.stages[0].optimizer.learning_rate", "greater than 0"),
    ("training-schedule-unknown", {"set": {"training.stages.0.optimizer.learning_rate": {"type": "cosin", "initial": 0.1, "decay_steps": 10}}},
     "training.stages[0].optimizer.learning_rate.type", "did you mean `cosine`"),
    ("training-callback-unknown", {"set": {"training.stages.0.callbacks": {"earlystopping": {}}}}, "training.stages[0].callbacks.earlystopping",
     "did you mean `early_stopping`"),
    ("training-duplicate-stage", {"set": {"training.stages": [{"name": "a", "epochs": 1}, {"name": "a", "epochs": 1}]}},
     "training.stages[1].name", "duplicate stage name"),
    ("training-freeze-nothing", {"set": {"training.stages.0.freeze": ["conv*"]}}, "training.stages[0].freeze[0]", "matches no node"),
    ("training-loss-unknown-target", {"set": {"training.loss": {"lbl": "mse"}}}, "training.loss.lbl", "did you mean `label`"),
    ("training-both-clipnorms", {"set": {"training.stages.0.optimizer.clipnorm": 1.0, "training.stages.0.optimizer.global_clipnorm": 1.0}},
     "training.stages[0].optimizer", "at most one of clipnorm"),
    ("training-monitor-unknown", {"set": {"training.stages.0.callbacks": {"early_stopping": {"monitor": "val_auc"}}}},
     "training.stages[0].callbacks.early_stopping.monitor", "`val_auc` is not a metric training produces"),
    ("training-monitor-typo", {"set": {"training.stages.0.callbacks": {"model_checkpoint": {"monitor": "val_acc"}}}},
     "training.stages[0].callbacks.model_checkpoint.monitor", "did you mean `val_accuracy`"),
    ("training-class-weight-regression", {"set": {"data.target": {"name": "label", "type": "numeric"},
                                                  "training.loss": "mse", "training.metrics": ["mae"],
                                                  "training.class_weight": "balanced"}},
     "training.class_weight", "class weights need a category or binary target"),
    ("training-class-weight-two-targets", {"set": {
        "data.target": [{"name": "label", "type": "category", "num_classes": 10},
                        {"name": "parity", "type": "binary"}],
        "model.nodes.odd": {"layer": "dense", "input": "h2", "units": 1, "activation": "sigmoid"},
        "model.outputs": {"label": "out", "parity": "odd"},
        "training.loss": {"label": "sparse_categorical_crossentropy", "parity": "binary_crossentropy"},
        "training.metrics": ["accuracy"], "training.class_weight": {"0": 2.0}}},
     "training.class_weight", "ambiguous with 2 classification targets"),
    # --- tuning / tracking / export
    ("tuning-objective-unknown", {"set": {"tuning.objective": "val_acuracy"}}, "tuning.objective", "did you mean `val_accuracy`"),
    ("tuning-bad-tuner", {"set": {"tuning.tuner": "baysian"}}, "tuning.tuner", "did you mean `bayesian`"),
    ("tuning-trials-zero", {"set": {"tuning.max_trials": 0}}, "tuning.max_trials", "greater than 0"),
    ("tuning-stage-unknown", {"set": {"tuning.stage": "mian"}}, "tuning.stage", "did you mean `main`"),
    ("tracking-unknown-key", {"set": {"tracking.experimnt": "x"}}, "tracking.experimnt", "did you mean `experiment`"),
    ("export-warmup-negative", {"set": {"export.warmup_requests": -1}}, "export.warmup_requests", "greater than or equal to 0"),
    ("stages-tune-without-tuning", {"set": {"tuning": DELETE, "stages": ["tune", "train"]}}, "stages[0]", "needs a `tuning:` section"),
]
