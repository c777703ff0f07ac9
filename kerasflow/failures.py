"""How the `kerasflow` command ends when something goes wrong: every failure
without a traceback, each with its own exit code. A spec or data problem (a
`SpecError`) exits 2, Ctrl-C 130, a file that cannot be read or written 1, and
anything else is a bug in kerasflow: one line that says so, the path of a file
holding the full traceback, and how to report it (`kerasflow --debug` shows it)."""

from __future__ import annotations

import functools
import os
import sys

import click

from kerasflow import __version__
from kerasflow.spec.errors import SpecError

EXIT_SPEC_ERROR = 2
EXIT_ENVIRONMENT = 1  # a file could not be read or written, memory ran out: not the spec, not a bug
EXIT_BUG = 70  # EX_SOFTWARE


def reports_errors(fn):
    """Decorate a click command so that it ends as the module docstring says."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except SpecError as exc:
            click.echo(click.style("error: ", fg="red", bold=True) + exc.format(), err=True)
            sys.exit(EXIT_SPEC_ERROR)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as exc:
            if _debug():
                raise
            if isinstance(exc, (OSError, MemoryError)) and not _is_bug(exc):
                click.echo(click.style("error: ", fg="red", bold=True) + _environment_error(exc), err=True)
                sys.exit(EXIT_ENVIRONMENT)
            click.echo(click.style("internal error: ", fg="red", bold=True) + _bug_report(exc), err=True)
            sys.exit(EXIT_BUG)

    return wrapper


def _debug() -> bool:
    ctx = click.get_current_context(silent=True)
    flag = bool(ctx and ctx.find_root().params.get("debug"))
    return flag or os.environ.get("KERASFLOW_DEBUG", "") not in ("", "0")


def _is_bug(exc: BaseException) -> bool:
    # An OSError without a file name (e.g. a bad argument to a system call) comes from our code, not the disk.
    return isinstance(exc, OSError) and exc.filename is None and exc.errno is None


def _environment_error(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "out of memory; use a smaller batch_size or less data"
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def _bug_report(exc: BaseException) -> str:
    """Write the traceback to a file; the one-line message that points to it."""
    import platform
    import tempfile
    import time
    import traceback

    text = (f"kerasflow {__version__}, Python {platform.python_version()} on {platform.platform()}\n"
            f"command: {' '.join(sys.argv)}\n\n" + "".join(traceback.format_exception(exc)))
    name = f"kerasflow-crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    try:
        path = os.path.join(tempfile.gettempdir(), name)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        where = f"the full traceback is in {path}"
    except OSError:
        where = "the traceback could not be written to a file; rerun with --debug to see it"
    summary = (str(exc).splitlines() or [""])[0][:200]
    return (f"{type(exc).__name__}: {summary}\n"
            f"This is a bug in kerasflow, not a problem with your input; {where}.\n"
            "Please report it to the kerasflow maintainers with that file attached "
            "(rerun with `kerasflow --debug ...` to see the traceback here).")
