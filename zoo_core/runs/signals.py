"""Ctrl-C and SIGTERM around a run: when they may cut in, and when they must wait.

While a run trains, SIGTERM is made to behave like Ctrl-C (:func:`interrupts`), so that
either one is recorded as an interruption. While a run's result is being recorded, both
wait (:func:`held`): the record is written whole, then the interruption goes on. SIGKILL
cannot be caught; a run killed so is found by its owner's liveness
(:mod:`zoo_core.store.liveness`).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def interrupts() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C (a KeyboardInterrupt) inside the block (main thread only)."""
    if not _main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Held:
    """What :func:`held` saw: the signal that arrived while it held them, if any."""

    signum: int | None = None


@contextlib.contextmanager
def held() -> Iterator[Held]:
    """Hold SIGINT and SIGTERM until the block ends, then raise KeyboardInterrupt if one came.

    For short writes that must not be cut in half (a run's final record). Outside the main
    thread, signals are not delivered to this code anyway, and nothing is changed.
    """
    seen = Held()
    if not _main_thread():
        yield seen
        return

    def handler(signum, frame):
        seen.signum = seen.signum or signum

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield seen
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    if seen.signum is not None:
        raise KeyboardInterrupt(f"signal {seen.signum}")
