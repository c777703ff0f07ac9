"""The tracking worker: a process of its own that does all MLflow work (and
draws a run's plots).

Importing MLflow and opening a sqlite store cost seconds of pure Python, which
a thread would serialize with TensorFlow's import and Keras' training loop
(the GIL); in a process they overlap. The training process sends calls down a
pipe in order and waits only for the few that return something (a run id, a
model URI, a registry decision) and for the end of a run; per-epoch metrics,
tags and artifacts are fire-and-forget.

Nothing is lost: the worker runs in a session of its own (a Ctrl-C in the
terminal reaches only the training process, which then ends the run KILLED),
finishes every call it has received before it exits (also when the training
process is SIGKILLed: end of input), and the training process waits for it
at exit.

    python -m kerasflow.track.worker   # started by `worker()`, speaks pickle on stdin/stdout
"""

from __future__ import annotations

import atexit
import itertools
import os
import pickle
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from typing import Any, Callable

from kerasflow.spec.errors import SpecError

# The training process waits this long at exit for the worker to deliver what
# it still holds; every MLflow call there has its own retry/timeout budget.
EXIT_WAIT_S = 600.0


class WorkerError(RuntimeError):
    """The tracking worker failed a call with an error that is not a `SpecError`."""


class Worker:
    """The training process's end of the pipe to one tracking worker process."""

    def __init__(self):
        # The worker imports this very kerasflow, wherever this process found it.
        home = str(Path(__file__).resolve().parents[2])
        path = os.pathsep.join(p for p in (home, os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, "PYTHONPATH": path}
        self.proc = subprocess.Popen([sys.executable, "-m", "kerasflow.track.worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, start_new_session=True)
        self.pid = os.getpid()
        self._ids = itertools.count(1)
        self._send_lock = threading.Lock()
        self._done = threading.Condition()
        self._awaited: set[int] = set()  # calls someone waits for; other replies carry only warnings and state
        self._replies: dict[int, tuple] = {}
        self._warnings: list[str] = []
        self._states: dict[int, dict] = {}
        self._alive = True
        self._reader = threading.Thread(target=self._read, name="kerasflow-tracking-replies", daemon=True)
        self._reader.start()

    def new_id(self) -> int:
        return next(self._ids)

    def call(self, target: int, method: str, *args, wait: bool = True, **kwargs) -> Any:
        """`method(*args, **kwargs)` on recorder `target` in the worker; with `wait`,
        its result (its exception re-raised here), else None at once."""
        if wait:
            return self.submit(target, method, *args, **kwargs)()
        self._send(target, method, args, kwargs, awaited=False)
        self.emit_warnings()
        return None

    def submit(self, target: int, method: str, *args, **kwargs) -> Callable[[], Any]:
        """Send the call now and go on; the function returned waits for its result
        (its exception re-raised there), so this process works meanwhile."""
        seq = self._send(target, method, args, kwargs, awaited=True)
        return lambda: self._result(seq)

    def _send(self, target: int, method: str, args: tuple, kwargs: dict, *, awaited: bool) -> int:
        seq = next(self._ids)
        message = pickle.dumps((seq, target, method, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        if awaited:
            with self._done:
                self._awaited.add(seq)
        with self._send_lock:
            if not self._alive:
                raise WorkerError("the tracking worker process is gone")
            try:
                self.proc.stdin.write(message)
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError) as err:
                raise WorkerError("the tracking worker process is gone") from err
        return seq

    def _result(self, seq: int) -> Any:
        with self._done:
            while seq not in self._replies and self._alive:
                self._done.wait()
            reply = self._replies.pop(seq, None)
            self._awaited.discard(seq)
        self.emit_warnings()
        if reply is None:
            raise WorkerError("the tracking worker process exited before answering")
        result, error = reply
        if error is not None:
            kind, payload = error
            raise SpecError(payload) if kind == "spec" else WorkerError(payload)
        return result

    def state(self, target: int) -> dict:
        return self._states.get(target, {})

    def emit_warnings(self) -> None:
        """Re-issue the worker's `TrackingWarning`s in this process (the caller's thread)."""
        from kerasflow.track.transport import TrackingWarning

        with self._done:
            pending, self._warnings = self._warnings, []
        for message in pending:
            warnings.warn(message, TrackingWarning, stacklevel=3)

    def close(self, timeout: float = EXIT_WAIT_S) -> None:
        """End of input: the worker finishes every call it holds, then exits."""
        if os.getpid() != self.pid:  # a forked child's copy: the worker belongs to the parent
            return
        with self._send_lock:
            try:
                self.proc.stdin.close()
            except (BrokenPipeError, ValueError):
                pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._reader.join(timeout=5)
        self.proc.stdout.close()
        self.emit_warnings()

    def _read(self) -> None:
        try:
            while True:
                seq, target, state, messages, result, error = pickle.load(self.proc.stdout)
                with self._done:
                    self._warnings += messages
                    if state is not None:
                        self._states[target] = state
                    if seq in self._awaited:
                        self._replies[seq] = (result, error)
                        self._done.notify_all()
                    elif error is not None:  # nobody waits for this call: say it failed
                        kind, payload = error
                        why = payload[0].message if kind == "spec" and payload else payload
                        self._warnings.append(f"tracking worker: a call failed: {why}")
        except (EOFError, OSError, pickle.UnpicklingError):
            pass
        finally:
            with self._done:
                self._alive = False
                self._done.notify_all()


_worker: Worker | None = None
_lock = threading.Lock()


def worker() -> Worker:
    """This process's tracking worker, started on first use (again after a fork)."""
    global _worker
    with _lock:
        if _worker is None or _worker.pid != os.getpid() or _worker.proc.poll() is not None:
            _worker = Worker()
            atexit.register(_worker.close)
        return _worker


def sync() -> None:
    """Wait until the worker of this process (if any) has done everything sent to it."""
    if _worker is not None and _worker.pid == os.getpid() and _worker.proc.poll() is None:
        _worker.call(0, "sync")


# ------------------------------------------------------------- worker side


def _serve() -> None:
    """The worker's loop: one call at a time, in the order sent, until end of input."""
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # the pipe carries replies only; MLflow's prints go to stderr
    from kerasflow.track.recorder import Recorder, warm
    from kerasflow.track.transport import TrackingWarning

    recorders: dict[int, Recorder] = {}
    stdin = sys.stdin.buffer
    while True:
        try:
            seq, target, method, args, kwargs = pickle.load(stdin)
        except EOFError:
            return
        result = error = None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TrackingWarning)
            try:
                if method == "open":
                    recorders[target] = Recorder(*args, **kwargs)
                elif method == "warm":  # imports MLflow and opens the store while the trainer imports TensorFlow
                    warm(*args, **kwargs)
                elif method == "draw":
                    _draw(*args, **kwargs)
                elif method == "prepare_plots":  # while the trainer is busy, so the run's plots cost less later
                    from kerasflow.train.figures import prepare

                    prepare()
                elif method == "sync":
                    pass  # answered once everything sent before is done
                else:
                    result = getattr(recorders[target], method)(*args, **kwargs)
            except SpecError as err:
                error = ("spec", err.problems)
            except Exception as err:  # reported to the caller, who decides
                error = ("other", f"{type(err).__name__}: {err}")
        messages = [str(w.message) for w in caught if issubclass(w.category, TrackingWarning)]
        for w in caught:
            if not issubclass(w.category, TrackingWarning):
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        recorder = recorders.get(target)
        state = recorder.state() if recorder is not None else None
        try:
            pickle.dump((seq, target, state, messages, result, error), out, protocol=pickle.HIGHEST_PROTOCOL)
            out.flush()
        except (BrokenPipeError, OSError):
            pass  # the training process is gone (killed): keep delivering what it sent


def _draw(name: str, *args, **kwargs) -> None:
    from kerasflow.train import figures

    if not name.startswith("draw_"):
        raise ValueError(f"Received an invalid plot, expected a draw_* function. Received: {name=}")
    getattr(figures, name)(*args, **kwargs)


if __name__ == "__main__":
    _serve()
    # Every call has been done (each one synchronously) and replied to; what
    # remains is the interpreter's teardown of MLflow, SQLAlchemy and
    # matplotlib (atexit hooks, thread joins, module cleanup), about a second
    # or two that the training process would wait for at its own exit.
    sys.stderr.flush()
    os._exit(0)
