"""The `kerasflow` command. Verbs only parse arguments and call `kerasflow.api`;
heavy imports happen inside the verbs, so `kerasflow validate` never loads
TensorFlow."""

from __future__ import annotations

import json
import os
import sys

import click

from kerasflow import __version__
from kerasflow.api import TEMPLATES
from kerasflow.failures import EXIT_BUG, EXIT_SPEC_ERROR  # noqa: F401  (exit codes: public)
from kerasflow.failures import reports_errors as _reports_errors
from kerasflow.spec.errors import SpecError
from kerasflow.spec.names import SAFE_NAME_RULE, is_safe_name

PORT = click.IntRange(0, 65535)  # 0: any free port


def _finite_seconds(ctx, param, value):
    if value is not None and not (0 < value <= 86400):  # also refuses nan and inf
        raise click.BadParameter(f"expected seconds in (0, 86400], received {value}")
    return value


def _safe_name(ctx, param, value):
    """A value that becomes a file or URL path component: one plain name."""
    if value is not None and not is_safe_name(value):
        raise click.BadParameter(f"expected a plain name ({SAFE_NAME_RULE}; no `/` or `..`), received {value!r}")
    return value


_STORE_SCHEMES = ("sqlite", "file", "postgresql", "mysql", "mssql")  # MLflow's backend stores


def _store_uri(ctx, param, value):
    """A tracking store the MLflow UI can open (else its child process dies with a traceback)."""
    if value is None or "://" not in value:
        return value  # a plain path is a file store
    scheme = value.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme not in _STORE_SCHEMES:
        raise click.BadParameter(f"expected a store URI of scheme {', '.join(_STORE_SCHEMES)}, received {value!r}")
    return value


def _writable_file(ctx, param, value):
    """An output file whose directory exists (we never create directories the user did not ask for)."""
    if value is None:
        return value
    parent = os.path.dirname(os.path.abspath(value))
    if not os.path.isdir(parent):
        raise click.BadParameter(f"the directory {parent} does not exist; create it first")
    if os.path.isdir(value):
        raise click.BadParameter(f"{value} is a directory; give a file name")
    return value


def _allow_imports(ctx, param, value) -> None:
    if value:
        from kerasflow.spec.imports import allow_imports

        allow_imports()


allow_imports_option = click.option(
    "--allow-imports", is_flag=True, expose_value=False, is_eager=True, callback=_allow_imports,
    help="Import the spec's model.imports (runs their code; env KERASFLOW_ALLOW_IMPORTS=1 does the same).",
)

set_option = click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE",
    help="Override a spec value by dotted path, e.g. --set training.stages.0.epochs=5 (repeatable).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kerasflow")
@click.option("--debug", is_flag=True, help="Show the full traceback of an internal error (also KERASFLOW_DEBUG=1).")
def cli(debug) -> None:
    """Declarative Keras 3 pipelines: validate, plan, train, tune, export, serve."""


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@set_option
@allow_imports_option
@_reports_errors
def validate(files, overrides) -> None:
    """Check spec FILES; print every problem with file:line:col."""
    from kerasflow import api
    from kerasflow.spec.checks import spec_warnings

    problems = []
    for f in files:
        try:
            loaded = api.validate(f, overrides)
        except SpecError as exc:
            problems.extend(exc.problems)
            continue
        click.echo(f"ok  {f}  ({loaded.spec.name}, spec hash {loaded.hash})")
        for warning in spec_warnings(loaded.spec, loaded.locs):
            click.echo(click.style("warning: ", fg="yellow", bold=True) + warning.format(), err=True)
    if problems:
        raise SpecError(problems)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@set_option
@allow_imports_option
@click.option("--explicit", is_flag=True, help="Write an `auto` model as the model.nodes graph it expands to.")
@_reports_errors
def render(file, overrides, explicit) -> None:
    """Print the fully resolved spec with defaults."""
    from kerasflow import api

    click.echo(api.render(file, overrides, explicit=explicit), nl=False)


@cli.command()
@click.option("--out", type=click.Path(dir_okay=False), callback=_writable_file,
              help="Write to this file instead of stdout.")
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
@click.argument("name", callback=_safe_name)
@click.option("--template", default="mlp", show_default=True, type=click.Choice(TEMPLATES))
@click.option("--dir", "directory", default=".", show_default=True, type=click.Path(file_okay=False))
@_reports_errors
def init(name, template, directory) -> None:
    """Write a starter spec NAME.yaml into --dir (NAME is a plain name, never a path)."""
    from kerasflow import api

    path = api.init(name, template, directory)
    click.echo(f"wrote {path}; next: kerasflow validate {path}")


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@set_option
@click.option("--plot", type=click.Path(dir_okay=False), callback=_writable_file, help="Draw the graph to this PNG (needs pydot + graphviz).")
@allow_imports_option
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
@click.option("--worker-index", type=click.IntRange(min=0), help="multi_worker: this process's index in --workers (0 is the chief).")
@allow_imports_option
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
    if not metrics:
        metrics = "none (no test or validation split)"
    split = "validation" if any(k.startswith("val_") for k in result.metrics) else "test"
    click.echo(f"run dir: {result.run_dir}\n{split} metrics: {metrics}")
    if result.mlflow_run_id:
        click.echo(f"MLflow run: {result.mlflow_run_id}")


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "validation", "test"]))
@allow_imports_option
@_reports_errors
def evaluate(run_dir, split) -> None:
    """Metrics of a trained RUN_DIR on a split (per-class for classification)."""
    from kerasflow import api
    from kerasflow.report import print_evaluation

    print_evaluation(api.evaluate(run_dir, split))


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--input", "input_file", required=True, type=click.Path(exists=True),
              help="CSV, Parquet or JSONL of raw feature rows (image features: file paths), "
                   "or a folder of images for an image-only model.")
@click.option("--output", "output_file", required=True, type=click.Path(dir_okay=False),
              help="Where predictions go (format from the extension).")
@allow_imports_option
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
@click.option("--port", type=click.IntRange(1, 65535), help="The chief's oracle port.")
@click.option("--chief-address", help="HOST:PORT of the chief (workers).")
@click.option("--worker-id", callback=_safe_name, help="A unique id for this worker (a plain name).")
@click.option("--quiet", is_flag=True)
@allow_imports_option
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
@click.option("--version", type=click.IntRange(min=1), help="Version number (default: next integer).")
@click.option("--keep", type=click.IntRange(min=1), help="Keep only the newest N versions (at least 1).")
@click.option("--tfserving-config", type=click.Path(dir_okay=False), callback=_writable_file, help="Also write a model_config_list file.")
@allow_imports_option
@_reports_errors
def export(run_dir, base_path, version, keep, tfserving_config) -> None:
    """Export a trained RUN_DIR as a SavedModel version for TF Serving."""
    from kerasflow import api

    result = api.export(run_dir, base_path=base_path, version=version, keep=keep, tfserving_config=tfserving_config)
    click.echo(f"exported version {result.version}: {result.path}")
    click.echo("inputs: " + ", ".join(result.inputs) + "; outputs: " + ", ".join(result.outputs))


@cli.command()
@click.argument("base_path", type=click.Path(file_okay=False))
@click.option("--model-name", callback=_safe_name,
              help="Name in /v1/models/NAME (default: the name the newest version was exported under, "
                   "else the base path's directory name).")
@click.option("--rest-port", default=8501, show_default=True, type=PORT, help="0 picks a free port.")
@click.option("--grpc-port", default=8500, show_default=True, type=PORT, help="0 picks a free port.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind; 0.0.0.0 listens on all interfaces (needed for tensorflow_model_server).")
@click.option("--poll-seconds", default=2.0, show_default=True, type=float, callback=_finite_seconds,
              help="How often new versions are looked for.")
@click.option("--tfserving/--no-tfserving", default=None,
              help="Require / never use tensorflow_model_server (default: use it when on PATH).")
@click.option("--enable-batching", is_flag=True, help="Merge concurrent requests into batches (TF Serving's flag).")
@click.option("--batching-parameters-file", type=click.Path(dir_okay=False, exists=True),
              help="TF Serving's text-format BatchingParameters (max_batch_size, batch_timeout_micros, ...).")
@_reports_errors
def serve(base_path, model_name, rest_port, grpc_port, host, poll_seconds, tfserving, enable_batching,
          batching_parameters_file) -> None:
    """Serve BASE_PATH with TF Serving's REST and gRPC APIs."""
    from kerasflow import api
    from kerasflow.export.names import exported_name
    from kerasflow.serve.tfserving import binds_all_interfaces

    name = model_name or exported_name(base_path)
    if not is_safe_name(name):
        raise click.UsageError(f"the model name {name!r} (from the export's metadata, else the base path's "
                               "directory name) is not a plain model name; give one with --model-name")
    if not binds_all_interfaces(host):
        # tensorflow_model_server always listens on every interface; never widen what the user asked for.
        if tfserving:
            raise click.UsageError(f"tensorflow_model_server cannot listen on {host} only (it binds all "
                                   "interfaces); pass --host 0.0.0.0 to accept that, or drop --tfserving")
        tfserving = False
    sys.exit(api.serve(base_path, model_name=name, host=host, rest_port=rest_port, grpc_port=grpc_port,
                       poll_seconds=poll_seconds, use_tfserving=tfserving, enable_batching=enable_batching,
                       batching_parameters_file=batching_parameters_file))


@cli.command()
@click.option("--uri", callback=_store_uri, help="Tracking store (default: MLFLOW_TRACKING_URI, then sqlite:///mlflow.db).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=PORT)
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
@click.option("--workers", metavar="HOST:PORT,...",
              help="multi_worker: every worker's address, the same list on each (default: TF_CONFIG).")
@click.option("--worker-index", type=int, help="multi_worker: this process's index in --workers (0 is the chief).")
@allow_imports_option
@_reports_errors
def run(pipeline, overrides, only, start, run_dir, quiet, workers, worker_index) -> None:
    """Run PIPELINE's stages in order, reusing stages whose inputs are unchanged."""
    from kerasflow import api
    from kerasflow.report import print_pipeline_summary

    only_list = [s.strip() for s in only.split(",") if s.strip()] if only else []
    result = api.run(pipeline, overrides, only=only_list, start=start, run_dir=run_dir, quiet=quiet,
                     echo=lambda line: click.echo(line), workers=workers, worker_index=worker_index)
    print_pipeline_summary(result)


def main() -> None:
    # TensorFlow's C++ INFO/WARNING lines (oneDNN, CUDA probing) drown the
    # output users care about; TF_CPP_MIN_LOG_LEVEL=0 brings them back.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from kerasflow.tf_startup import install  # TF 2.21 logs start-up lines before reading that variable

    install()
    if sys.getprofile() is not None or sys.gettrace() is not None:
        return cli(prog_name="kerasflow")  # under a profiler or debugger, which reports after we return
    try:
        cli(prog_name="kerasflow")
    except SystemExit as stop:
        _exit(stop.code)
    _exit(0)


def _exit(code) -> None:
    """End the process as the interpreter would, minus its teardown: join the
    threads, run the atexit hooks (where the tracking worker finishes delivering
    what it holds), flush the output, exit with `code` (as `sys.exit` takes it).

    What is skipped is taking every module and object apart one by one, which
    with TensorFlow loaded cost about a second after each command had done its
    work (the tracking worker skips it for the same reason)."""
    import atexit
    import threading

    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    threading._shutdown()  # the interpreter's first step at exit: join non-daemon threads
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or a broken pipe: nothing more to write
            pass
    os._exit(code)


if __name__ == "__main__":
    main()
