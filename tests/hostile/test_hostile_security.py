"""One test per security finding of the hostile review (the loader and CLI
share), the internal-error report, and the few cases that need a real process:
a FIFO that would block, a device that never ends, a 50 MB spec."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from kerasflow.cli import EXIT_BUG, cli
from kerasflow.spec.errors import SpecError

ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]) + os.pathsep +
       os.environ.get("PYTHONPATH", "")}


def run_cli(*args: str, timeout: float = 60, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from kerasflow.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=timeout, env=env or ENV)


# ---------------------------------------------------------------- security findings


def test_extends_never_reads_or_echoes_a_file_that_is_not_a_spec(tmp_path):
    secret = tmp_path / "credentials"
    secret.write_text("aws_secret_access_key: hunter2\nroot:x:0:0:root:/root:/bin/bash\n")
    (tmp_path / "link.yaml").symlink_to(secret)
    for target in ("/etc/passwd", str(secret), "link.yaml"):
        spec = tmp_path / "spec.yaml"
        spec.write_text(f"kerasflow: 1\nname: x\nextends: {target}\n")
        result = CliRunner().invoke(cli, ["validate", str(spec)])
        assert result.exit_code == 2
        assert "is not a spec file" in result.output and "spec.yaml:3:1" in result.output
        assert "hunter2" not in result.output and "root:x" not in result.output and "/bin/" not in result.output


def test_yaml_syntax_errors_never_quote_the_source_line(tmp_path):
    spec = tmp_path / "notes.yaml"  # a YAML-named file that is not a spec, with a syntax error
    spec.write_text("password: hunter2: [unclosed\n")
    result = CliRunner().invoke(cli, ["validate", str(spec)])
    assert result.exit_code == 2 and "notes.yaml:1:" in result.output
    assert "hunter2" not in result.output


def test_init_never_writes_outside_dir(tmp_path):
    inner = tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    for name in ("../../escaped", "../escaped", "/tmp/escaped-kerasflow", "sub/escaped"):
        result = CliRunner().invoke(cli, ["init", name, "--dir", str(inner)])
        assert result.exit_code == 2 and "a plain name" in result.output
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b"]
    assert not Path("/tmp/escaped-kerasflow.yaml").exists()
    result = CliRunner().invoke(cli, ["init", "fine", "--dir", str(inner)])
    assert result.exit_code == 0 and (inner / "fine.yaml").is_file()


@pytest.fixture
def fake_model_server(tmp_path, monkeypatch):
    """A `tensorflow_model_server` on PATH that records how it was started."""
    marker = tmp_path / "started.txt"
    binary = tmp_path / "bin" / "tensorflow_model_server"
    binary.parent.mkdir()
    binary.write_text(f"#!/bin/sh\necho \"$@\" > {marker}\n")
    binary.chmod(0o755)
    monkeypatch.setenv("PATH", f"{binary.parent}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "base").mkdir()
    return tmp_path / "base", marker


def test_serve_never_starts_the_all_interfaces_binary_for_a_loopback_host(fake_model_server):
    from kerasflow.serve.tfserving import launch_model_server

    base, marker = fake_model_server
    result = CliRunner().invoke(cli, ["serve", str(base), "--tfserving"])
    assert result.exit_code == 2 and "pass --host 0.0.0.0" in result.output
    with pytest.raises(SpecError, match="cannot listen on 127.0.0.1 only"):
        launch_model_server(base, "m", host="127.0.0.1")
    assert not marker.exists()
    # Asking for every interface explicitly is what starts the binary.
    result = CliRunner().invoke(cli, ["serve", str(base), "--host", "0.0.0.0", "--rest-port", "0", "--grpc-port", "0"])
    assert result.exit_code == 0, result.output
    assert "--model_base_path=" in marker.read_text()


@pytest.mark.integration
def test_serve_by_default_binds_loopback_with_the_binary_on_path(fake_model_server):
    base, marker = fake_model_server
    env = {**ENV, "PATH": os.environ["PATH"]}
    proc = subprocess.Popen([sys.executable, "-c", "from kerasflow.cli import main; main()", "serve", str(base),
                             "--rest-port", "0", "--grpc-port", "0"], stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        lines = []
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if "REST http" in line or proc.poll() is not None:
                break
        assert any("REST http://127.0.0.1:" in line for line in lines), "".join(lines)
        assert not marker.exists()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0


# ---------------------------------------------------------------- real processes: no hang, bounded memory


@pytest.mark.integration
def test_a_fifo_spec_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    (tmp_path / "top.yaml").write_text("extends: spec.yaml\n")
    for path in (fifo, tmp_path / "top.yaml"):
        result = run_cli("validate", str(path), timeout=60)  # a block would raise TimeoutExpired
        assert result.returncode == 2 and "is a FIFO" in result.stderr and "Traceback" not in result.stderr


# Python allocations (tracemalloc's peak), not ru_maxrss: a child forked from a
# large pytest process inherits the parent's high-water mark.
MEASURE = textwrap.dedent("""
    import sys, time, tracemalloc
    from kerasflow.spec.errors import SpecError
    from kerasflow.spec.loader import load_spec
    tracemalloc.start()
    start = time.perf_counter()
    try:
        load_spec(sys.argv[1])
    except SpecError as exc:
        print(exc.problems[0].message)
    print(f"seconds={time.perf_counter() - start:.3f}")
    print(f"peak_mb={tracemalloc.get_traced_memory()[1] / 2**20:.1f}")
""")


@pytest.mark.integration
@pytest.mark.parametrize("target", ["big", "/dev/zero", "/dev/urandom"])
def test_a_huge_or_endless_spec_is_refused_in_bounded_memory(tmp_path, target):
    path = target
    if target == "big":  # 50 MB of real, flat YAML
        path = tmp_path / "big.yaml"
        with open(path, "w") as fh:
            line = "key_%d: %d\n"
            fh.writelines(line % (i, i) for i in range(3_500_000))
        assert path.stat().st_size > 50 * 10**6
    result = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, timeout=60,
                            env=ENV)
    out = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    print(result.stdout)  # the time is reported, not asserted (shared CI machines)
    assert "byte limit" in result.stdout or "character device" in result.stdout, result.stdout + result.stderr
    assert float(out["peak_mb"]) < 200


# ---------------------------------------------------------------- internal errors


def _boom(*args, **kwargs):
    raise RuntimeError("a real bug\nsecond line")


def test_an_internal_error_is_one_line_a_file_and_how_to_report(tmp_path, monkeypatch):
    from kerasflow import api

    monkeypatch.setattr(api, "validate", _boom)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv("KERASFLOW_DEBUG", raising=False)
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    result = CliRunner().invoke(cli, ["validate", "whatever.yaml"])
    assert result.exit_code == EXIT_BUG
    assert "Traceback" not in result.output and "second line" not in result.output
    assert "RuntimeError: a real bug" in result.output and "This is a bug in kerasflow" in result.output
    (report,) = tmp_path.glob("kerasflow-crash-*.txt")
    assert str(report) in result.output and "--debug" in result.output
    text = report.read_text()
    assert "Traceback (most recent call last)" in text and "_boom" in text and "second line" in text


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(monkeypatch, how):
    from kerasflow import api

    monkeypatch.setattr(api, "validate", _boom)
    if how == "env":
        monkeypatch.setenv("KERASFLOW_DEBUG", "1")
    result = CliRunner().invoke(cli, (["--debug"] if how == "flag" else []) + ["validate", "x.yaml"])
    assert isinstance(result.exception, RuntimeError)  # raised through: Python prints the traceback


def test_ctrl_c_exits_130_quietly(monkeypatch):
    from kerasflow import api

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "validate", interrupted)
    result = CliRunner().invoke(cli, ["validate", "x.yaml"])
    assert result.exit_code == 130 and result.output.strip() == "interrupted"


def test_a_disk_error_is_reported_as_such(tmp_path, monkeypatch):
    from kerasflow import api

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "out.csv"))

    monkeypatch.setattr(api, "validate", full)
    result = CliRunner().invoke(cli, ["validate", "x.yaml"])
    assert result.exit_code == 1
    assert result.output.strip().endswith(f"No space left on device: {tmp_path / 'out.csv'}")


@pytest.mark.integration
def test_an_internal_error_in_a_real_process(tmp_path):
    code = ("import kerasflow.api as api\n"
            "def boom(*a, **k): raise ZeroDivisionError('division by zero')\n"
            "api.validate = boom\n"
            "from kerasflow.cli import main; main()\n")
    env = {**ENV, "TMPDIR": str(tmp_path)}
    env.pop("KERASFLOW_DEBUG", None)
    result = subprocess.run([sys.executable, "-c", code, "validate", "x.yaml"], capture_output=True, text=True,
                            timeout=60, env=env)
    assert result.returncode == EXIT_BUG and "Traceback" not in result.stderr
    assert "internal error: ZeroDivisionError: division by zero" in result.stderr
    assert len(list(tmp_path.glob("kerasflow-crash-*.txt"))) == 1
    debug = subprocess.run([sys.executable, "-c", code, "--debug", "validate", "x.yaml"], capture_output=True,
                           text=True, timeout=60, env=env)
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr
