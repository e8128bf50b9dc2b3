"""The turns: an implementation trains only while the coordinator gives it one."""

from __future__ import annotations

import queue
import threading
import time


class Stopped(Exception):
    """The coordinator ended the measurement; the implementation's thread unwinds."""


class Clock:
    """One implementation's turns: its thread trains only between :meth:`begin` or the end
    of a chunk and the end of the next chunk, and waits otherwise.

    The implementation calls :meth:`begin` once built (ready; wait for the first turn),
    :meth:`tick` after each call that trained (ends the chunk when its time is up) and
    :meth:`pause` where time should not count (an epoch's end). The worker's main thread
    calls :meth:`give_turn` and :meth:`stop`.
    """

    def __init__(self):
        self._go = threading.Event()
        self.results: queue.Queue = queue.Queue()
        self.seconds, self.min_steps = 1.0, 1
        self.stopping = self.begun = self.dead = False

    # the worker's main thread
    def give_turn(self, seconds: float, min_steps: int) -> dict:
        if self.dead:
            return {"error": "failed earlier"}
        self.seconds, self.min_steps = seconds, min_steps
        self._go.set()
        reply = self.results.get()
        self.dead = "error" in reply
        return reply

    def stop(self) -> None:
        self.stopping = True
        self._go.set()

    # the implementation's thread
    def begin(self) -> None:
        self.begun = True
        self.results.put({"ready": True})
        self._wait()

    def tick(self, examples: int, steps: int = 1) -> None:
        now = time.perf_counter()
        self.examples += examples
        self.steps += steps
        self.calls += 1
        self.last = now
        busy = now - self.start - self.excluded
        if busy >= self.seconds and self.steps >= self.min_steps:
            self.results.put({"examples": self.examples, "seconds": busy, "steps": self.steps,
                              "calls": self.calls})
            self._wait()

    def pause(self) -> None:
        now = time.perf_counter()
        self.excluded += now - self.last
        self.last = now

    def _wait(self) -> None:
        self._go.wait()
        self._go.clear()
        if self.stopping:
            raise Stopped
        self.examples = self.steps = self.calls = 0
        self.excluded = 0.0
        self.start = self.last = time.perf_counter()


class OneEpoch(Clock):
    """For the memory runs: no turns; stops after ``steps`` steps."""

    def __init__(self, steps: int):
        super().__init__()
        self.total, self.done = steps, 0

    def begin(self) -> None:
        self.begun = True

    def tick(self, examples: int, steps: int = 1) -> None:
        self.done += steps
        if self.done >= self.total:
            raise Stopped

    def pause(self) -> None:
        pass
