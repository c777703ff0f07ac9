"""The `kerasflow` command. Verbs only parse arguments and call `kerasflow.api`;
heavy imports happen inside the verbs, so `kerasflow validate` never loads
TensorFlow."""

from __future__ import annotations

import functools
import json
import os
import sys

import click

from kerasflow import __version__
from kerasflow.spec.errors import SpecError

EXIT_SPEC_ERROR = 2


def _reports_errors(fn):
    """Print `SpecError`s (and Ctrl-C) without a traceback; exit non-zero."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SpecError as exc:
            click.echo(click.style("error: ", fg="red", bold=True) + exc.format(), err=True)
            sys.exit(EXIT_SPEC_ERROR)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


set_option = click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE",
    help="Override a spec value by dotted path, e.g. --set training.stages.0.epochs=5 (repeatable).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kerasflow")
def cli() -> None:
    """Declarative Keras 3 pipelines: validate, plan, train, tune, export, serve."""


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@set_option
@_reports_errors
def validate(files, overrides) -> None:
    """Check spec FILES; print every problem with file:line:col."""
    from kerasflow import api

    problems = []
    for f in files:
        try:
            loaded = api.validate(f, overrides)
        except SpecError as exc:
            problems.extend(exc.problems)
            continue
        click.echo(f"ok  {f}  ({loaded.spec.name}, spec hash {loaded.hash})")
    if problems:
        raise SpecError(problems)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@set_option
@_reports_errors
def render(file, overrides) -> None:
    """Print the fully resolved spec with defaults."""
    from kerasflow import api

    click.echo(api.render(file, overrides), nl=False)


@cli.command()
@click.option("--out", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
@click.option("--reference", is_flag=True, help="Markdown reference (docs/spec-reference.md) instead of JSON Schema.")
@_reports_errors
def schema(out, reference) -> None:
    """JSON Schema of the spec (for yaml-language-server autocompletion)."""
    from kerasflow import api

    text = api.reference() if reference else json.dumps(api.json_schema(), indent=2) + "\n"
    if out:
        with open(out, "w") as fh:
            fh.write(text)
        click.echo(f"wrote {out}")
    else:
        click.echo(text, nl=False)


@cli.command()
@click.argument("name")
@click.option("--template", default="mlp", show_default=True, help="mlp | cnn | rnn | transformer")
@click.option("--dir", "directory", default=".", show_default=True, type=click.Path(file_okay=False))
@_reports_errors
def init(name, template, directory) -> None:
    """Write a starter spec NAME.yaml."""
    from kerasflow import api

    path = api.init(name, template, directory)
    click.echo(f"wrote {path}; next: kerasflow validate {path}")


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@set_option
@click.option("--plot", type=click.Path(dir_okay=False), help="Draw the graph to this PNG (needs pydot + graphviz).")
@_reports_errors
def plan(file, overrides, plot) -> None:
    """Build the model without data: Keras summary, shapes, memory, one-step timing."""
    from kerasflow import api

    click.echo(api.plan(file, overrides, plot))


@cli.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@set_option
@click.option("--run-dir", type=click.Path(file_okay=False), help="Output directory (default runs/<name>/<run_id>/).")
@click.option("--resume", type=click.Path(file_okay=False), help="Continue an interrupted run directory.")
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option("--workers", metavar="HOST:PORT,...",
              help="multi_worker: every worker's address, the same list on each (default: TF_CONFIG).")
@click.option("--worker-index", type=int, help="multi_worker: this process's index in --workers (0 is the chief).")
@_reports_errors
def train(file, overrides, run_dir, resume, quiet, workers, worker_index) -> None:
    """Train FILE's model on its data through its stages."""
    from kerasflow import api

    if not file and not resume:
        raise click.UsageError("give a spec FILE, or --resume RUN_DIR")
    result = api.train(file, overrides, run_dir=run_dir, resume=resume, quiet=quiet, workers=workers,
                       worker_index=worker_index)
    if getattr(result, "weights_fingerprint", None):  # multi_worker: equal on every worker
        click.echo(f"{result.task}: weights fingerprint {result.weights_fingerprint}")
        if not result.is_chief:
            return  # the chief writes the run dir and evaluates
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in result.metrics.items())
    click.echo(f"run dir: {result.run_dir}\ntest metrics: {metrics}")
    if result.mlflow_run_id:
        click.echo(f"MLflow run: {result.mlflow_run_id}")


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "validation", "test"]))
@_reports_errors
def evaluate(run_dir, split) -> None:
    """Metrics of a trained RUN_DIR on a split (per-class for classification)."""
    from kerasflow import api
    from kerasflow.report import print_evaluation

    print_evaluation(api.evaluate(run_dir, split))


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--input", "input_file", required=True, type=click.Path(dir_okay=False, exists=True),
              help="CSV, Parquet or JSONL of raw feature rows.")
@click.option("--output", "output_file", required=True, type=click.Path(dir_okay=False),
              help="Where predictions go (format from the extension).")
@_reports_errors
def predict(run_dir, input_file, output_file) -> None:
    """Predict rows of INPUT with a trained RUN_DIR."""
    from kerasflow import api

    n = api.predict(run_dir, input_file, output_file)
    click.echo(f"wrote {n} predictions to {output_file}")


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@set_option
@click.option("--run-dir", type=click.Path(file_okay=False), help="Tuner project dir (default runs/<name>/tune/).")
@click.option("--restart", is_flag=True, help="Discard finished trials and start over.")
@click.option("--chief", is_flag=True, help="Serve the oracle for distributed workers (runs no trials).")
@click.option("--worker", is_flag=True, help="Run trials for the chief at --chief-address.")
@click.option("--port", type=int, help="The chief's oracle port.")
@click.option("--chief-address", help="HOST:PORT of the chief (workers).")
@click.option("--worker-id", help="A unique id for this worker.")
@click.option("--quiet", is_flag=True)
@_reports_errors
def tune(file, overrides, run_dir, restart, chief, worker, port, chief_address, worker_id, quiet) -> None:
    """Search FILE's `tune:` markers with KerasTuner; writes best.yaml."""
    from kerasflow import api

    if chief and worker:
        raise click.UsageError("--chief and --worker exclude each other")
    role = "chief" if chief else "worker" if worker else "standalone"
    if role == "chief" and port is None:
        raise click.UsageError("--chief needs --port")
    if role == "worker" and not chief_address:
        raise click.UsageError("--worker needs --chief-address HOST:PORT")
    result = api.tune(file, overrides, run_dir=run_dir, restart=restart, role=role, chief_address=chief_address,
                      port=port, worker_id=worker_id, quiet=quiet)
    if getattr(result, "best_spec_path", None):
        click.echo(f"best spec: {result.best_spec_path}  (retrain: kerasflow train {result.best_spec_path})")


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--base-path", type=click.Path(file_okay=False), help="TF Serving base path (default export.base_path).")
@click.option("--version", type=int, help="Version number (default: next integer).")
@click.option("--keep", type=int, help="Keep only the newest N versions.")
@click.option("--tfserving-config", type=click.Path(dir_okay=False), help="Also write a model_config_list file.")
@_reports_errors
def export(run_dir, base_path, version, keep, tfserving_config) -> None:
    """Export a trained RUN_DIR as a SavedModel version for TF Serving."""
    from kerasflow import api

    result = api.export(run_dir, base_path=base_path, version=version, keep=keep, tfserving_config=tfserving_config)
    click.echo(f"exported version {result.version}: {result.path}")
    click.echo("inputs: " + ", ".join(result.inputs) + "; outputs: " + ", ".join(result.outputs))


@cli.command()
@click.argument("base_path", type=click.Path(file_okay=False))
@click.option("--model-name", help="Name in /v1/models/NAME (default: the base path's directory name).")
@click.option("--rest-port", default=8501, show_default=True, type=int)
@click.option("--grpc-port", default=8500, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--poll-seconds", default=2.0, show_default=True, type=float, help="How often new versions are looked for.")
@click.option("--tfserving/--no-tfserving", default=None,
              help="Require / never use tensorflow_model_server (default: use it when on PATH).")
@click.option("--enable-batching", is_flag=True, help="Merge concurrent requests into batches (TF Serving's flag).")
@click.option("--batching-parameters-file", type=click.Path(dir_okay=False, exists=True),
              help="TF Serving's text-format BatchingParameters (max_batch_size, batch_timeout_micros, ...).")
@_reports_errors
def serve(base_path, model_name, rest_port, grpc_port, host, poll_seconds, tfserving, enable_batching,
          batching_parameters_file) -> None:
    """Serve BASE_PATH with TF Serving's REST and gRPC APIs."""
    from pathlib import Path

    from kerasflow import api

    name = model_name or Path(base_path).resolve().name
    sys.exit(api.serve(base_path, model_name=name, host=host, rest_port=rest_port, grpc_port=grpc_port,
                       poll_seconds=poll_seconds, use_tfserving=tfserving, enable_batching=enable_batching,
                       batching_parameters_file=batching_parameters_file))


@cli.command()
@click.option("--uri", help="Tracking store (default: MLFLOW_TRACKING_URI, then sqlite:///mlflow.db).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@_reports_errors
def ui(uri, host, port) -> None:
    """Start the MLflow UI on the configured store and print its URL."""
    from kerasflow import api

    sys.exit(api.ui(uri, host, port))


@cli.command()
@click.argument("pipeline", type=click.Path(dir_okay=False))
@set_option
@click.option("--only", help="Comma-separated stages to run (others keep their last outputs).")
@click.option("--from", "start", help="Start at this stage.")
@click.option("--run-dir", type=click.Path(file_okay=False), help="Pipeline directory (default runs/<name>/pipeline/).")
@click.option("--quiet", is_flag=True)
@_reports_errors
def run(pipeline, overrides, only, start, run_dir, quiet) -> None:
    """Run PIPELINE's stages in order, reusing stages whose inputs are unchanged."""
    from kerasflow import api
    from kerasflow.report import print_pipeline_summary

    only_list = [s.strip() for s in only.split(",") if s.strip()] if only else []
    result = api.run(pipeline, overrides, only=only_list, start=start, run_dir=run_dir, quiet=quiet,
                     echo=lambda line: click.echo(line))
    print_pipeline_summary(result)


def main() -> None:
    # TensorFlow's C++ INFO/WARNING lines (oneDNN, CUDA probing) drown the
    # output users care about; TF_CPP_MIN_LOG_LEVEL=0 brings them back.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cli(prog_name="kerasflow")


if __name__ == "__main__":
    main()
