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


def main() -> None:
    # TensorFlow's C++ INFO/WARNING lines (oneDNN, CUDA probing) drown the
    # output users care about; TF_CPP_MIN_LOG_LEVEL=0 brings them back.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cli(prog_name="kerasflow")


if __name__ == "__main__":
    main()
