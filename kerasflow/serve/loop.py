"""An asyncio event loop in its own thread, and the hand-off of model results to it.

The REST (aiohttp) and gRPC (grpc.aio) front ends each run on one such loop:
connections are coroutines, never threads. Model calls leave the loop (batch
threads or an executor) and their results come back through an `Inbox`.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import CancelledError, Future
from typing import Any


class Inbox:
    """Hands results from model threads to the event loop, one wake-up for many results.

    `asyncio.wrap_future` wakes the loop (a write to its self-pipe, and a GIL
    hand-over) once per request, so a batch of 16 finishing together costs 16
    wake-ups. Here results queue up and only the first one of a burst wakes the loop.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._pending: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self._scheduled = False

    def wait(self, future: Future) -> asyncio.Future:
        """An awaitable of `future`'s outcome, resolved on the loop (call it on the loop)."""
        waiter = self._loop.create_future()
        future.add_done_callback(lambda done: self._post(done, waiter))
        return waiter

    def _post(self, done: Future, waiter: asyncio.Future) -> None:
        with self._lock:
            self._pending.append((done, waiter))
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: the server is stopping, nobody is waiting
            pass

    def _drain(self) -> None:
        with self._lock:
            ready, self._pending = self._pending, collections.deque()
            self._scheduled = False
        for done, waiter in ready:
            if waiter.cancelled():  # the client went away
                continue
            try:  # one look at `done` (each takes its lock), not cancelled() + exception() + result()
                waiter.set_result(done.result())
            except CancelledError:  # the executor was shut down
                waiter.cancel()
            except BaseException as error:  # noqa: BLE001 - the request's own error, raised in its coroutine
                waiter.set_exception(error)


class LoopThread:
    """An event loop running in a daemon thread named `name`, with its `inbox`."""

    def __init__(self, name: str):
        self.name = name
        self.loop = asyncio.new_event_loop()
        self.inbox = Inbox(self.loop)
        self._thread: threading.Thread | None = None

    def start(self, setup: Callable[[], Awaitable[Any]]) -> Any:
        """Run the loop; returns what `setup()` returns there, or raises what it raised (the loop then ends)."""
        started: Future = Future()
        self._thread = threading.Thread(target=self._run, args=(setup, started), name=self.name, daemon=True)
        self._thread.start()
        return started.result()

    def _run(self, setup, started: Future) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            result = self.loop.run_until_complete(setup())
        except BaseException as err:  # noqa: BLE001 - handed to start() in the caller's thread
            started.set_exception(err)
            self.loop.close()
            return
        started.set_result(result)
        self.loop.run_forever()
        self.loop.close()

    def stop(self, cleanup: Callable[[], Awaitable[Any]] | None = None, timeout: float = 30.0) -> None:
        """Run `cleanup()` on the loop, then end the loop and its thread (idempotent)."""
        if self._thread is None:
            return
        if self.loop.is_running():
            if cleanup is not None:
                asyncio.run_coroutine_threadsafe(cleanup(), self.loop).result(timeout=timeout)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=timeout)
        self._thread = None
