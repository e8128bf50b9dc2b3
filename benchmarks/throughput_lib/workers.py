"""The worker processes: one hosts the implementations of a framework and trains whichever the
coordinator names, a chunk at a time; another measures one implementation's peak memory.
And the coordinator's side of their pipes (:class:`Worker`)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

from throughput_lib.common import BATCH, HOST, RSS_PEER_STEPS, peak_rss_mb
from throughput_lib.trainers import (NotApplicable, train_impl, train_zoo, training_flops,
                                     versions, zoo_variant)
from throughput_lib.turns import Clock, OneEpoch, Stopped


def _protocol_out():
    """A private copy of stdout for the protocol; file descriptor 1 goes to stderr, so that
    nothing a library prints can garble it."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    return out


def _quiet_imports(host: str) -> None:
    """Import the host's framework with fd 2 silenced (absl writes before any log level
    applies)."""
    if host == "tf":
        from zoo_core._tf import tf as import_tf

        import_tf()
    elif host == "keras":
        devnull, saved = os.open(os.devnull, os.O_WRONLY), os.dup(2)
        os.dup2(devnull, 2)
        try:
            import keras  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


def serve(args) -> None:
    """A worker: build every (model, implementation) it hosts, each on its own thread, then
    train whichever the coordinator names, for one chunk at a time."""
    out = _protocol_out()
    import numpy as np

    _quiet_imports(args.serve)
    arrays = dict(np.load(args.data))
    info = {"versions": versions(args.serve), "impls": {}, "flops": {}}
    if args.serve == "tf":
        info["flops"] = {m: training_flops(m) for m in args.models}
    clocks, notes, threads = {}, {}, []
    for model in args.models:
        for impl in args.impls:
            clock, note = Clock(), {}
            key = f"{model}/{impl}"
            clocks[key], notes[key] = clock, note

            def run(impl=impl, model=model, clock=clock, note=note):
                try:
                    train_impl(impl, model, arrays, args.examples, clock, note, args.set)
                    clock.results.put({"error": "training ended"})
                except Stopped:
                    pass
                except NotApplicable as e:
                    clock.results.put({"skip": str(e)})
                except BaseException as e:  # noqa: BLE001 - reported to the coordinator
                    clock.results.put({"error": f"{type(e).__name__}: {e}",
                                       "traceback": traceback.format_exc()[-3000:]})

            thread = threading.Thread(target=run, name=key, daemon=True)
            thread.start()  # one at a time: graphs and sessions are built one after another
            first = clock.results.get()
            clock.dead = "error" in first or "skip" in first
            info["impls"][key] = {**note, **{k: first[k] for k in ("error", "skip") if k in first}}
            if clock.dead:
                print(first.get("traceback", ""), file=sys.stderr)
            threads.append(thread)
    out.write(json.dumps({"ready": info}) + "\n")
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "run":
            reply = clocks[cmd["key"]].give_turn(cmd["seconds"], cmd["min_steps"])
            out.write(json.dumps(reply) + "\n")
        elif cmd["cmd"] == "stop":
            break
    for clock in clocks.values():
        clock.stop()
    for thread in threads:
        thread.join(timeout=30)
    seen = {k: {"steps_per_call_seen": v["steps_per_call_seen"]}
            for k, v in notes.items() if "steps_per_call_seen" in v}
    out.write(json.dumps({"stopped": {"peak_rss_mb": peak_rss_mb(), "notes": seen}}) + "\n")




def rss_run(args) -> None:
    """A memory run: one implementation alone in this fresh process, holding the whole
    training split; prints its peak resident memory."""
    out = _protocol_out()
    import numpy as np

    impl, model = args.rss, args.model
    start, note = time.perf_counter(), {}
    if impl == "tf-floor":  # the runtimes' own floor, before any model
        from zoo_core._tf import tf as import_tf

        tf = import_tf()
        tf.compat.v1.disable_eager_execution()
        tf.compat.v1.Session().run(tf.constant(1.0))
    elif impl == "torch-floor":
        import torch

        torch.ones(1) + 1
    else:
        _quiet_imports(HOST[impl])
        arrays = dict(np.load(args.data))
        n = args.examples or len(arrays["y_train"])
        arrays = {**arrays, "x_train": arrays["x_train"][:n], "y_train": arrays["y_train"][:n]}
        if impl.startswith("zoo"):  # a real one-epoch run: steps, evaluations, checkpoint
            precision, settings = zoo_variant(impl, model, args.set)
            train_zoo(model, arrays, None, OneEpoch(10**9), note, precision, settings, epochs=1)
        else:
            try:
                train_impl(impl, model, arrays, n, OneEpoch(min(n // BATCH, RSS_PEER_STEPS)), note)
            except Stopped:
                pass
        args.examples = n
    out.write(json.dumps({"peak_rss_mb": peak_rss_mb(), "seconds": time.perf_counter() - start,
                          "examples": args.examples, "steps_rss_mb": note.get("steps_rss_mb")})
              + "\n")


# ----------------------------------------------------------------- the coordinator's side

def worker_env(host: str) -> dict:
    env = dict(os.environ)
    if host != "tf":
        env.pop("TF_USE_LEGACY_KERAS", None)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


class Worker:
    """A worker process and its pipes; replies are read by a thread into a queue."""

    def __init__(self, host: str, argv: list[str], log_dir: str):
        self.host = host
        self.log = Path(log_dir) / f"{host}.log"
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log.open("w"), text=True,
                                     env=worker_env(host))
        self.replies: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.alive = True

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.replies.put(json.loads(line))
        self.replies.put(None)

    def ask(self, cmd: dict | None, timeout: float) -> dict:
        if not self.alive:
            return {"error": f"the {self.host} process has stopped"}
        if cmd is not None:
            try:
                self.proc.stdin.write(json.dumps(cmd) + "\n")
                self.proc.stdin.flush()
            except OSError:
                pass
        try:
            reply = self.replies.get(timeout=timeout)
        except queue.Empty:
            reply = None
        if reply is None:
            self.alive = False
            self.proc.kill()
            tail = self.log.read_text(errors="replace")[-2000:]
            return {"error": f"the {self.host} process died or hung:\n{tail}"}
        return reply
