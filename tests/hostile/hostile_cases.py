"""The hostile corpus: what a careless or hostile user types, and what kerasflow
must answer. Each case builds its files under a temporary directory and returns
the command line plus fragments the error output must hold: where (file:line:col,
the key path, or the data file and row) and what was expected.

Cases are generated per class; `CLASSES` counts them (the report quotes it).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: invalid_cases

from invalid_cases import BASE_YAML  # noqa: E402

from kerasflow.spec.yaml_source import MAX_BYTES, MAX_DEPTH, MAX_VALUES  # noqa: E402

# `tune` imports KerasTuner and TensorFlow (~10 s) before it reads the spec; its options are covered below.
SPEC_VERBS = ("validate", "render", "plan", "train", "run")
LOC = re.compile(r"\.yaml:\d+:\d+: ")  # file:line:col


@dataclass
class Case:
    id: str
    cls: str
    build: Callable[[Path], list[str]]  # makes files under tmp, returns the argv
    expect: list = field(default_factory=list)  # str or re.Pattern, each must be in the output
    forbid: list = field(default_factory=list)  # must not be in the output (echoed secrets)


def spec_file(tmp: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _spec_case(cid: str, cls: str, text: str, expect: list, verb: str = "validate", args=(), name="spec.yaml",
               forbid=()) -> Case:
    def build(tmp: Path) -> list[str]:
        return [verb, str(spec_file(tmp, text, name)), *args]

    return Case(cid, cls, build, expect, list(forbid))


# ---------------------------------------------------------------- loader limits


def _nest(kind: str, depth: int) -> str:
    if kind == "flow-list":
        return "[" * depth + "1" + "]" * depth
    if kind == "flow-map":
        return "{a: " * depth + "1" + "}" * depth
    if kind == "mixed":
        return "".join("[" if i % 2 else "{a: " for i in range(depth)) + "1" + "".join(
            "]" if i % 2 else "}" for i in reversed(range(depth)))
    lines = []  # block style
    for i in range(depth):
        lines.append("  " * (i + 1) + "a:")
    lines[-1] += " 1"
    return "\n" + "\n".join(lines)


def limit_cases() -> list[Case]:
    cases = []
    for kind in ("flow-list", "flow-map", "mixed", "block"):
        for depth in (MAX_DEPTH + 1, 100, 500, 5000):
            if kind == "block" and depth > 500:
                continue  # 5000 block levels is a 25 MB file: the byte cap case below covers it
            cases.append(_spec_case(f"nest-{kind}-{depth}", "loader-limits", f"kerasflow: 1\nx: {_nest(kind, depth)}\n",
                                    [LOC, f"nest deeper than {MAX_DEPTH} levels"]))
    self_refs = {
        "vars-map": "vars: &x {self: *x}\n",
        "list": "x: &x [1, *x]\n",
        "deep": "x: &x {a: {b: [1, {c: *x}]}}\n",
        "root-key": "a: &x\n  b: *x\n",
        "seq-of-map": "x: &x [{a: 1}, {b: *x}]\n",
    }
    for cid, body in self_refs.items():
        cases.append(_spec_case(f"self-anchor-{cid}", "loader-limits", "kerasflow: 1\n" + body,
                                [LOC, "is used inside its own anchor"]))
    bombs = {
        "lists": "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}' if i else 'x'] * 9)}]\n" for i in range(9)),
        "maps": "m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9}\n" + "".join(
            f"m{i}: &m{i} {{{', '.join(f'k{j}: *m{i - 1}' for j in range(9))}}}\n" for i in range(1, 9)),
        "deep-aliases": "".join(f"d{i}: &d{i} {'[' * 40}{f'*d{i - 1}' if i else '1'}{']' * 40}\n" for i in range(5)),
    }
    for cid, body in bombs.items():
        want = "nest deeper" if cid == "deep-aliases" else f"more than {MAX_VALUES} values"
        cases.append(_spec_case(f"alias-bomb-{cid}", "loader-limits", "kerasflow: 1\n" + body, [LOC, want]))

    def flat_values(tmp: Path) -> list[str]:  # under the byte cap, over the value budget
        path = tmp / "flat.yaml"
        path.write_text("kerasflow: 1\nx: [" + "1," * (MAX_VALUES + 10) + "1]\n")
        return ["validate", str(path)]

    cases.append(Case("too-many-values", "loader-limits", flat_values, [LOC, f"more than {MAX_VALUES} values"]))

    def sparse(size: int, name: str):
        def build(tmp: Path) -> list[str]:
            path = tmp / name
            with open(path, "wb") as fh:
                fh.truncate(size)  # sparse: no disk used, st_size says it all
            return ["validate", str(path)]
        return build

    for size in (MAX_BYTES + 1, 50 * 2**20, 2**40):
        cases.append(Case(f"size-{size}", "loader-limits", sparse(size, "huge.yaml"),
                          ["huge.yaml", f"larger than the {MAX_BYTES}-byte limit"]))

    def real_big(tmp: Path) -> list[str]:
        path = tmp / "big.yaml"
        path.write_text("kerasflow: 1\n" + "".join(f"k{i}: {i}\n" for i in range(MAX_BYTES // 8)))
        return ["validate", str(path)]

    cases.append(Case("size-real-content", "loader-limits", real_big, ["big.yaml", "byte limit"]))

    def chain(n: int, fan: int = 1):
        def build(tmp: Path) -> list[str]:
            for i in range(n):
                nxt = ", ".join([f"c{i + 1}.yaml"] * fan)
                (tmp / f"c{i}.yaml").write_text(f"extends: [{nxt}]\n" if i < n - 1 else "kerasflow: 1\n")
            return ["validate", str(tmp / "c0.yaml")]
        return build

    for n in (40, 200, 1500):
        cases.append(Case(f"extends-chain-{n}", "loader-limits", chain(n), [LOC, "chains more than 32 files deep"]))
    cases.append(Case("extends-diamond", "loader-limits", chain(20, fan=2), [LOC, "reaches more than 256 files"]))
    for verb in ("validate", "render"):
        cases.append(_spec_case(f"set-path-5000-{verb}", "loader-limits", BASE_YAML,
                                ["--set #1", "the --set path has 5000 parts"], verb,
                                args=["--set", ".".join(["a"] * 5000) + "=1"]))
    for depth in (MAX_DEPTH + 1, 1000):
        cases.append(_spec_case(f"set-path-{depth}", "loader-limits", BASE_YAML, ["--set #1", f"has {depth} parts"],
                                args=["--set", ".".join(["data"] * depth) + "=1"]))
    for cid, (value, expect) in {"deep": ("[" * 500 + "]" * 500, "nest deeper"),
                                 "self-anchor": ("&x [*x]", "its own anchor")}.items():
        cases.append(_spec_case(f"set-value-{cid}", "loader-limits", BASE_YAML, ["--set #1", "data.batch_size", expect],
                                args=["--set", f"data.batch_size={value}"]))
    return cases


# ---------------------------------------------------------------- files the loader must refuse


def file_cases() -> list[Case]:
    cases = []

    def fifo(tmp: Path) -> Path:
        path = tmp / "pipe.yaml"
        os.mkfifo(path)
        return path

    def loop(tmp: Path) -> Path:
        os.symlink(tmp / "l2.yaml", tmp / "l1.yaml")
        os.symlink(tmp / "l1.yaml", tmp / "l2.yaml")
        return tmp / "l1.yaml"

    def long_name(tmp: Path) -> Path:
        return tmp / ("x" * 300 + ".yaml")

    def not_dir(tmp: Path) -> Path:
        (tmp / "plain").write_text("x")
        return tmp / "plain" / "spec.yaml"

    def missing(tmp: Path) -> Path:
        return tmp / "nothere.yaml"

    def binary(tmp: Path) -> Path:
        path = tmp / "bin.yaml"
        path.write_bytes(b"kerasflow: 1\nname: \xff\xfe\x00\x01\n")
        return path

    def dev(name: str):
        return lambda tmp: Path(name)

    targets = {
        "fifo": (fifo, "is a FIFO"), "dev-zero": (dev("/dev/zero"), "is a character device"),
        "dev-urandom": (dev("/dev/urandom"), "is a character device"),
        "dev-null": (dev("/dev/null"), "is a character device"),
        "symlink-loop": (loop, "symlink loop"), "long-name": (long_name, "file name is too long"),
        "not-a-dir": (not_dir, "not a directory"), "missing": (missing, "file not found"),
        "not-utf8": (binary, "not UTF-8 text"),
    }
    for cid, (make, fragment) in targets.items():
        for verb in SPEC_VERBS:
            def build(tmp: Path, make=make, verb=verb) -> list[str]:
                return [verb, str(make(tmp))]
            expect = [fragment] if verb != "validate" or cid != "missing" else ["nothere.yaml", fragment]
            cases.append(Case(f"{cid}-{verb}", "files", build, expect))
        if cid in ("fifo", "dev-zero", "symlink-loop", "long-name", "not-utf8", "missing"):
            def build_ext(tmp: Path, make=make) -> list[str]:
                target = make(tmp)
                top = spec_file(tmp, f"extends: {target}\nname: top\n", "top.yaml")
                return ["validate", str(top)]
            want = "is not a spec file" if cid == "dev-zero" else fragment  # refused by name before it is opened
            cases.append(Case(f"extends-{cid}", "files", build_ext, ["top.yaml:1:1", "extends", want]))

    def extends_dir(tmp: Path) -> list[str]:
        (tmp / "frag.yaml").mkdir()
        return ["validate", str(spec_file(tmp, "extends: frag.yaml\nname: top\n", "top.yaml"))]

    cases.append(Case("extends-directory", "files", extends_dir, ["top.yaml:1:1", "is a directory"]))
    return cases


# ---------------------------------------------------------------- YAML values and tags


def yaml_cases() -> list[Case]:
    cases = []
    bad_scalars = {"float-abc": ("!!float abc", "`abc` is not a number"), "float-empty": ("!!float ''", "is not a number"),
                   "int-abc": ("!!int abc", "`abc` is not an integer"), "int-float": ("!!int 1.5", "is not an integer"),
                   "bool-maybe": ("!!bool maybe", "`maybe` is not true or false"),
                   "bool-2": ("!!bool 2", "is not true or false")}
    places = {"root": ("epochs: {v}\n", "epochs"), "nested": ("data:\n  batch_size: {v}\n", "data.batch_size"),
              "list": ("x: [1, {v}]\n", "x[1]"), "flow": ("x: {{a: {v}}}\n", "x.a")}
    for sid, (value, fragment) in bad_scalars.items():
        for pid, (template, path) in places.items():
            cases.append(_spec_case(f"tag-{sid}-{pid}", "yaml-values", "kerasflow: 1\n" + template.format(v=value),
                                    [LOC, path + ":", fragment, "expected: a value matching its tag"]))
        cases.append(_spec_case(f"tag-{sid}-key", "yaml-values", f"kerasflow: 1\n{value}: 1\n", [LOC, fragment]))
    forbidden = ["!!python/object/apply:os.system ['id']", "!!python/name:os.system ''", "!!python/tuple [1, 2]",
                 "!!binary aGVsbG8=", "!!set {a, b}", "!!omap [{a: 1}]", "!!pairs [{a: 1}]", "!custom x",
                 "!!python/module:os ''", "!<tag:example.com,2000:x> y"]
    for i, value in enumerate(forbidden):
        for pid, (template, path) in places.items():
            if pid == "list" and value.startswith("!!set"):
                continue
            cases.append(_spec_case(f"tag-forbidden-{i}-{pid}", "yaml-values", "kerasflow: 1\n" +
                                    template.format(v=value), [LOC, path + ":", "is not allowed"], forbid=["uid="]))
    syntax = {"unclosed-list": "x: [1, 2\n", "unclosed-map": "x: {a: 1\n", "bad-indent": "a:\n  b: 1\n c: 2\n",
              "tab": "a:\n\tb: 1\n", "two-docs": "a: 1\n---\nb: 2\n", "stray-colon": "a: b: c\n",
              "undefined-alias": "a: *nope\n", "duplicate-anchor": "a: &x 1\nb: &x 2\n",
              "bad-escape": 'a: "\\q"\n', "control-char": "a: \x07\n", "unclosed-quote": "a: 'x\n"}
    for cid, body in syntax.items():
        cases.append(_spec_case(f"syntax-{cid}", "yaml-values", "kerasflow: 1\n" + body,
                                [re.compile(r"spec\.yaml:\d+:\d+: "), re.compile("YAML|not valid")]))
    return cases


# ---------------------------------------------------------------- vars and ${...}


def interpolation_cases() -> list[Case]:
    cases = []
    cycles = {
        "self": "vars: {a: '${a}'}\nname: '${a}'\n",
        "two": "vars: {a: '${b}', b: '${a}'}\nname: '${a}'\n",
        "three": "vars: {a: '${b}', b: '${c}', c: '${a}'}\nname: '${a}'\n",
        "in-text": "vars: {a: 'x-${b}', b: 'y-${a}'}\nname: '${a}'\n",
        "in-list": "vars: {a: ['${b}'], b: '${a}'}\nname: '${b}'\n",
        "in-map": "vars: {a: {k: '${b}'}, b: '${a}'}\nseed: '${b}'\n",
        "from-nested-use": "vars: {a: '${b}', b: '${a}'}\ndata:\n  batch_size: '${a}'\n",
    }
    for cid, body in cycles.items():
        cases.append(_spec_case(f"vars-cycle-{cid}", "interpolation", "kerasflow: 1\n" + body,
                                [LOC, "vars.", "in a cycle"]))
    chain = "vars: {" + ", ".join(f"v{i}: '${{v{i + 1}}}'" for i in range(12)) + ", v12: 1}\nseed: '${v0}'\n"
    cases.append(_spec_case("vars-chain-too-deep", "interpolation", "kerasflow: 1\n" + chain, [LOC, "more than 8 deep"]))
    kinds = {"mapping": "{a: 1}", "list": "[1, 2]", "null": "null", "nested-map": "{a: {b: 1}}"}
    for kid, value in kinds.items():
        for pid, (where, path) in {"name": ("name: 'p-${m}'\n", "name"),
                                   "nested": ("data:\n  source: {type: csv, path: 'd-${m}.csv'}\n", "data.source.path"),
                                   "list": ("x: ['a-${m}']\n", "x[0]")}.items():
            want = "is null, used inside text" if kid == "null" else "used inside text"
            cases.append(_spec_case(f"vars-{kid}-in-text-{pid}", "interpolation",
                                    f"kerasflow: 1\nvars: {{m: {value}}}\n{where}", [LOC, path + ":", want]))
    for cid, (ref, want) in {"unknown": ("${nope}", "unknown variable `${nope}`"),
                              "env-unset": ("${env:KERASFLOW_HOSTILE_UNSET}", "is not set"),
                              "empty": ("${}", "unknown variable"), "spaces": ("${ }", "unknown variable"),
                              "unknown-in-text": ("x-${nope}-y", "unknown variable")}.items():
        cases.append(_spec_case(f"interp-{cid}", "interpolation", f"kerasflow: 1\nname: '{ref}'\n",
                                [LOC, "name:", want]))
    return cases


# ---------------------------------------------------------------- --set


def set_cases() -> list[Case]:
    cases = []
    bad = {"no-equals": ("data.batch_size", "bad --set"), "empty-key": ("=3", "bad --set"),
           "double-dot": ("data..batch_size=3", "bad --set"), "leading-dot": (".data=3", "bad --set"),
           "trailing-dot": ("data.=3", "bad --set"), "only-dots": ("...=1", "bad --set"),
           "index-past-end": ("training.stages.9.epochs=1", "not an index of a list of 1 items"),
           "index-not-number": ("training.stages.first.epochs=1", "not an index"),
           "through-scalar": ("name.first=1", "`name` is a str, not a mapping"),
           "through-int": ("data.batch_size.x=1", "is a int, not a mapping"),
           "bad-yaml": ("data.batch_size=[1, 2", "not valid YAML"),
           "tag-value": ("name=!!python/object/apply:os.system [id]", "is not allowed"),
           "float-tag": ("data.batch_size=!!float abc", "is not a number"),
           "two-docs": ("name=a\n---\nb", "not valid YAML"),
           "long-garbage": ("x" * 5000, "bad --set")}
    for cid, (arg, want) in bad.items():
        for verb in ("validate", "render", "plan"):
            cases.append(_spec_case(f"set-{cid}-{verb}", "set-overrides", BASE_YAML, ["--set #1", want], verb,
                                    args=["--set", arg]))
    return cases


# ---------------------------------------------------------------- extends reach (security)


SECRET = "hunter2-secret-line"


def extends_cases() -> list[Case]:
    cases = []

    def secret_file(tmp: Path, name: str) -> Path:
        path = tmp / "private" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"{SECRET}: 1\nroot:x:0:0:root:/root:/bin/bash\n")
        return path

    def make(kind: str):
        def build(tmp: Path) -> list[str]:
            if kind.startswith("abs-"):
                target = kind[4:]
            elif kind == "symlink-yaml":
                os.symlink(secret_file(tmp, "shadow"), tmp / "innocent.yaml")
                target = "innocent.yaml"
            elif kind == "relative-up":  # up and back down: ../<tmp name>/private/shadow
                secret_file(tmp, "shadow")
                target = f"../{tmp.name}/private/shadow"
            else:
                target = os.path.relpath(secret_file(tmp, kind), tmp)
            top = spec_file(tmp, f"kerasflow: 1\nname: top\nextends: [{target}]\n", "top.yaml")
            return ["validate", str(top)]
        return build

    kinds = ["abs-/etc/shadow", "abs-/etc/passwd", "abs-/etc/hostname", "abs-/proc/self/environ", "abs-/dev/stdin",
             "abs-/proc/self/cmdline", "symlink-yaml", "relative-up", "secrets.json", "secrets.txt", "id_rsa",
             "config.cfg", ".env", "shadow.yaml.bak", "notes.md"]
    for kind in kinds:
        cases.append(Case(f"extends-reach-{kind.replace('/', '_')}", "extends-security", make(kind),
                          ["top.yaml:3:", "extends[0]", "is not a spec file", "expected: a path to a .yaml or .yml"],
                          forbid=[SECRET, "root:x:0"]))
    wrong = {"int": "extends: 3\n", "map": "extends: {a: b}\n", "null-item": "extends: [null]\n",
             "empty": "extends: ''\n", "nested-list": "extends: [[a.yaml]]\n", "empty-item": "extends: ['']\n"}
    for cid, body in wrong.items():
        cases.append(_spec_case(f"extends-value-{cid}", "extends-security", "kerasflow: 1\n" + body,
                                [LOC, "extends", "expected: a path or a list of paths"]))
    cases.append(_spec_case("extends-self", "extends-security", "kerasflow: 1\nextends: spec.yaml\n",
                            ["extends cycle: spec.yaml -> spec.yaml"]))
    return cases


# ---------------------------------------------------------------- command-line options of every verb


def _argv(*args: str):
    return lambda tmp: list(args)


def _with_spec(*args: str):
    def build(tmp: Path) -> list[str]:
        spec = spec_file(tmp, BASE_YAML)
        return [a.replace("{spec}", str(spec)).replace("{tmp}", str(tmp)) for a in args]
    return build


def _with_dir(*args: str):
    def build(tmp: Path) -> list[str]:
        (tmp / "rundir").mkdir(exist_ok=True)
        (tmp / "in.csv").write_text("a\n1\n")
        return [a.replace("{run}", str(tmp / "rundir")).replace("{tmp}", str(tmp)) for a in args]
    return build


def cli_cases() -> list[Case]:
    cases = []
    for value in ("99999", "-1", "65536", "abc", "1e3", "8501.5", ""):
        for verb, opt in (("serve", "--rest-port"), ("serve", "--grpc-port"), ("ui", "--port"), ("tune", "--port")):
            argv = [verb, "base"] if verb == "serve" else [verb] if verb == "ui" else [verb, "{spec}"]
            cases.append(Case(f"port-{verb}{opt}-{value or 'empty'}", "cli-options",
                              _with_spec(*argv, opt, value), [f"Invalid value for '{opt}'"]))
    for value in ("0", "-1", "abc", "2.5"):
        for opt in ("--keep", "--version"):
            cases.append(Case(f"export{opt}-{value}", "cli-options", _with_dir("export", "{run}", opt, value),
                              [f"Invalid value for '{opt}'"]))
    for value in ("nan", "inf", "-1", "0", "1e9", "abc"):
        cases.append(Case(f"serve-poll-{value}", "cli-options", _argv("serve", "base", "--poll-seconds", value),
                          ["Invalid value for '--poll-seconds'"]))
    names = ["../x", "../../x", "/abs/x", "a/b", "..", ".", "with space", "x" * 300, "ü", "a\\b", "x;rm", "$(id)",
             ".hidden", "-"]
    for i, name in enumerate(names):
        cases.append(Case(f"init-name-{i}", "cli-options", lambda tmp, name=name: ["init", "--dir", str(tmp), "--", name],
                          ["Invalid value for 'NAME'", "a plain name"]))
    for i, name in enumerate(["../x", "a/b", "with space", ".."]):
        cases.append(Case(f"serve-model-name-{i}", "cli-options", _argv("serve", "base", "--model-name", name),
                          ["Invalid value for '--model-name'"]))
        cases.append(Case(f"tune-worker-id-{i}", "cli-options", _with_spec("tune", "{spec}", "--worker", "--worker-id",
                                                                           name, "--chief-address", "h:1"),
                          ["Invalid value for '--worker-id'"]))
    outputs = {"schema": ("schema", "--out"), "plan": ("plan", "{spec}", "--plot"),
               "export": ("export", "{run}", "--tfserving-config")}
    for cid, argv in outputs.items():
        for where in ("missing/dir/out.x", "{tmp}"):
            def build(tmp: Path, argv=argv, where=where) -> list[str]:
                spec = spec_file(tmp, BASE_YAML)
                (tmp / "rundir").mkdir(exist_ok=True)
                return [a.replace("{spec}", str(spec)).replace("{run}", str(tmp / "rundir"))
                        for a in argv] + [where.replace("{tmp}", str(tmp))]
            expect = "does not exist; create it first" if "missing" in where else "is a directory"
            cases.append(Case(f"out-{cid}-{'missing' if 'missing' in where else 'dir'}", "cli-options", build,
                              [f"Invalid value for '{argv[-1]}'", expect]))
    usage = {
        "train-nothing": (_argv("train"), "give a spec FILE, or --resume RUN_DIR"),
        "tune-chief-worker": (_with_spec("tune", "{spec}", "--chief", "--worker"), "exclude each other"),
        "tune-chief-no-port": (_with_spec("tune", "{spec}", "--chief"), "--chief needs --port"),
        "tune-worker-no-address": (_with_spec("tune", "{spec}", "--worker"), "--worker needs --chief-address"),
        "train-worker-index": (_with_spec("train", "{spec}", "--worker-index", "-1"), "'--worker-index'"),
        "evaluate-split": (_with_dir("evaluate", "{run}", "--split", "bogus"), "'--split'"),
        "evaluate-missing": (_argv("evaluate", "/nonexistent/run"), "does not exist"),
        "predict-no-input": (_with_dir("predict", "{run}", "--output", "o.csv"), "Missing option '--input'"),
        "predict-input-missing": (_with_dir("predict", "{run}", "--input", "/nope.csv", "--output", "o.csv"),
                                  "does not exist"),
        # a folder is a valid --input (images); the run dir is then checked first
        "predict-input-dir": (_with_dir("predict", "{run}", "--input", "{tmp}", "--output", "o.csv"),
                              "not a kerasflow run directory"),
        "init-template": (_argv("init", "x", "--template", "resnet"), "Invalid value for '--template'"),
        "serve-tfserving-loopback": (_argv("serve", "base", "--tfserving"), "pass --host 0.0.0.0"),
        "serve-tfserving-host": (_argv("serve", "base", "--tfserving", "--host", "10.0.0.1"), "cannot listen on"),
        "validate-nothing": (_argv("validate"), "Missing argument"),
        "validate-dir": (_with_dir("validate", "{tmp}"), "is a directory"),
        "unknown-verb": (_argv("trian"), "No such command"),
        "unknown-option": (_argv("validate", "--sett", "x"), "No such option"),
        "ui-store-scheme": (_argv("ui", "--uri", "garbage://x"), "Invalid value for '--uri'"),
        "ui-store-http": (_argv("ui", "--uri", "http://host:5000"), "Invalid value for '--uri'"),
        "run-only-unknown": (_with_spec("run", "{spec}", "--only", "trian"), "`trian` is not a stage"),
        "run-from-unknown": (_with_spec("run", "{spec}", "--from", "nowhere"), "`nowhere` is not a stage"),
        "resume-not-a-run": (_with_dir("train", "--resume", "{run}"), "not a kerasflow run directory"),
        "evaluate-not-a-run": (_with_dir("evaluate", "{run}"), "not a kerasflow run directory"),
        "predict-not-a-run": (_with_dir("predict", "{run}", "--input", "{tmp}/in.csv", "--output", "o.csv"),
                              "not a kerasflow run directory"),
        "export-not-a-run": (_with_dir("export", "{run}"), "not a kerasflow run directory"),
        "export-base-is-file": (_with_dir("export", "{run}", "--base-path", "{tmp}/in.csv"), "is a file"),
        "serve-missing-base": (_argv("serve", "/nonexistent/base", "--rest-port", "0", "--grpc-port", "0"),
                               "base path is not a directory"),
        "workers-without-multi-worker": (_with_spec("train", "{spec}", "--workers", "h:1", "--worker-index", "0"),
                                         "need distribution multi_worker"),
    }
    for cid, (build, want) in usage.items():
        cases.append(Case(f"usage-{cid}", "cli-options", build, [want]))
    return cases


def all_cases() -> list[Case]:
    return (limit_cases() + file_cases() + yaml_cases() + interpolation_cases() + set_cases() + extends_cases()
            + cli_cases())
