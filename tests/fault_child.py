"""Runs the real ``zoo`` command, paused at one phase of a run so that the test can send it
a real signal there (tests/test_fault_matrix.py).

    ZOO_FAULT_AT=PHASE ZOO_FAULT_MARK=FILE python tests/fault_child.py run cnn ...

When the run reaches PHASE, this writes FILE and sleeps: the parent, which waits for FILE,
sends its signal while the process is inside that phase. Only where the process pauses is
arranged here; the zoo, the signal and whatever it leaves behind are the real ones. Not a
test module (pytest collects ``test_*.py`` only).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

PHASE = os.environ.get("ZOO_FAULT_AT", "")
MARK = Path(os.environ.get("ZOO_FAULT_MARK", os.devnull))
# Where the pause is the phase itself: the first step's graph is built; the second step of
# epoch 2; epoch 2's checkpoint files written, its checkpoint.json not yet; between epochs 1
# and 2; evaluating the test split; recording the result; drawing the plots.
PHASES = ("build", "mid-epoch", "checkpoint", "between-epochs", "evaluation", "recording",
          "plots")


def pause(seconds: float = 30.0) -> None:
    MARK.write_text(PHASE)
    time.sleep(seconds)  # a signal that raises ends this at once; SIGKILL ends the process


def counting(n: int, function, when=lambda *a, **k: True, seconds: float = 30.0):
    """``function``, pausing before its ``n``-th call for which ``when`` holds."""
    calls = [0]

    def wrapper(*args, **kwargs):
        if when(*args, **kwargs):
            calls[0] += 1
            if calls[0] == n:
                pause(seconds)
        return function(*args, **kwargs)
    return wrapper


def arm(phase: str) -> None:
    from zoo_core.results import plots
    from zoo_core.runs import execute
    from zoo_core.train import checkpoints, loop

    recorder = execute._Recorder
    if phase == "build":
        build = loop.build_graph

        def built(*args, **kwargs):
            graph = build(*args, **kwargs)
            pause()
            return graph
        loop.build_graph = built
    elif phase == "mid-epoch":  # a step reported alone, or K steps run in one call
        in_epoch_2 = counting(2, lambda: None)
        for name in ("step", "steps"):
            original = getattr(recorder, name)

            def reported(self, *args, _original=original):
                if self.epochs == 1:
                    in_epoch_2()
                return _original(self, *args)
            setattr(recorder, name, reported)
    elif phase == "checkpoint":
        checkpoints.write_json_atomic = counting(
            2, checkpoints.write_json_atomic,
            lambda path, *a, **k: Path(path).name == "checkpoint.json")
    elif phase == "between-epochs":
        recorder.epoch_start = counting(1, recorder.epoch_start, lambda self, e, *a: e == 2)
    elif phase == "evaluation":
        loop.evaluate = counting(3, loop.evaluate)  # validation after epochs 1 and 2, then test
    elif phase == "recording":
        execute._record_result = counting(1, execute._record_result, seconds=3.0)
    elif phase == "plots":
        plots.learning_curves = counting(1, plots.learning_curves)
    elif phase:
        raise SystemExit(f"fault_child: unknown phase {phase!r}; known: {', '.join(PHASES)}")


if __name__ == "__main__":
    arm(PHASE)
    from zoo_core.cli import main

    sys.argv = ["zoo", *sys.argv[1:]]
    main()
