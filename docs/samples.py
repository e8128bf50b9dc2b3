"""Regenerate the sample outputs in docs/cli.md by running the commands.

    python docs/samples.py            # rewrite docs/cli.md's samples from the real commands
    python docs/samples.py --check    # exit 1 (and show the difference) when one is stale

A sample is a fenced block whose first line is ``$ zoo ...``, right after a line
``<!-- sample -->`` (or ``<!-- sample requires=PATH -->``: only where PATH exists, e.g. the
Debian Fashion-MNIST folder that ``zoo datasets`` finds). Each command runs in-process
(click's CliRunner) in a fresh ``ZOO_HOME`` holding a fixed set of recorded runs (the
``DEMO`` list below: figures from real runs, so the samples look like a real zoo), at a
fixed "now", from a temporary current folder. The other blocks of docs/cli.md (a real
``zoo run`` with its timings, ``zoo evaluate``, ``zoo check`` of a broken plugin) are
quoted from real sessions and marked as such. tests/test_docs.py fails when a sample no
longer matches what its command prints.
"""

from __future__ import annotations

import contextlib
import datetime
import difflib
import json
import os
import re
import shlex
import socket
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI_MD = ROOT / "docs" / "cli.md"
NOW = datetime.datetime(2026, 11, 22, 12, 0, tzinfo=datetime.timezone.utc)
SAMPLE = re.compile(r"^<!-- sample(?: requires=(\S+))? -->\n```\n\$ (zoo[^\n]*)\n(.*?)^```\n",
                    re.M | re.S)
# What a run on this project's machine records of itself (config.json's environment).
ENVIRONMENT = {"cpu": "AMD EPYC", "cores": 2, "git": "6b55e44a5293c0027042b9822594754732a3a885"}
MACS = {"cnn": 4_241_152, "lstm": 4_344_320}  # per example, as the run counts them
CHECKSUMS = {"train_images": "3aede38d", "train_labels": "a04f17134",
             "test_images": "5b4141f0", "test_labels": "67da17c7"}
# A real run's epochs: train loss, train accuracy, validation loss, validation accuracy.
CNN_EPOCHS = [(0.4479, 0.8399, 0.3439, 0.8708), (0.2771, 0.9006, 0.2625, 0.9014),
              (0.2282, 0.9170, 0.2279, 0.9138), (0.1914, 0.9317, 0.2123, 0.9202),
              (0.1716, 0.9390, 0.2059, 0.9218)]
# (id, model, seed, config changes, status, test accuracy, params, seconds, started, epochs)
# The cnn runs are of the plain cnn (no batch normalization), five epochs, as in the epochs
# above, whatever the registry's defaults are now.
PLAIN_CNN = {"epochs": 5, "batch_norm": False, "dropout": 0.0}
DEMO = [
    ("cnn-fashion-s0-20261121-234549-dc5f", "cnn", 0, PLAIN_CNN, "completed", 0.9168, 421642,
     57.8, "2026-11-21T23:45:49", CNN_EPOCHS),
    ("cnn-fashion-s1-20261122-000101-7a3e", "cnn", 1, PLAIN_CNN, "completed", 0.9142, 421642, 58.4,
     "2026-11-22T00:01:01", [(tl + 0.003, ta - 0.002, vl + 0.004, va - 0.003)
                             for tl, ta, vl, va in CNN_EPOCHS]),
    ("cnn-fashion-s0-20261122-093000-51c2", "cnn", 0, {**PLAIN_CNN, "dropout": 0.3}, "completed", 0.9203,
     421642, 60.2, "2026-11-22T09:30:00", [(tl + 0.04, ta - 0.015, vl - 0.004, va + 0.0013)
                                           for tl, ta, vl, va in CNN_EPOCHS]),
    ("lstm-fashion-s0-20261122-101500-0e9d", "lstm", 0, {"limit": 5000, "epochs": 2},
     "completed", 0.8011, 83978, 12.1, "2026-11-22T10:15:00",
     [(1.2010, 0.5600, 0.8100, 0.7020), (0.6900, 0.7500, 0.5810, 0.7950)]),
    ("rnn-fashion-s0-20261122-113000-c0de", "rnn", 0, {}, "running", None, None, None,
     "2026-11-22T11:30:00", [(0.9000, 0.6700, 0.7000, 0.7400)]),
]


def fill_store() -> None:
    """The DEMO runs, recorded in the current ``ZOO_HOME``'s store, each with the settings
    ``zoo run MODEL`` gives it today plus its changes."""
    from zoo_core.catalogue import open_zoo
    from zoo_core.store.records import RunRecord
    from zoo_core.store import open_store

    zoo = open_zoo()
    with open_store() as store:
        for run_id, model, seed, changes, status, acc, params, seconds, start, epochs in DEMO:
            config = {**zoo.resolve(model, "fashion").settings.config, **changes}
            store.create_run(RunRecord(
                run_id=run_id, model=model, dataset="fashion", plugin=f"zoo-{model}",
                plugin_version="0.1.0", zoo_version="0.1.0", tf_version="2.21.0",
                config=config, seed=seed, data_checksums=CHECKSUMS,
                split_sizes={"train": config["limit"] or 55000, "val": 5000, "test": 10000},
                started_at=f"{start}+00:00", run_dir=str(_run_folder(run_id)),
                host=socket.gethostname(), pid=4_999_999))  # no such process: it died
            for i, (tl, ta, vl, va) in enumerate(epochs, 1):
                store.add_epoch(run_id, i, train_loss=tl, train_accuracy=ta, val_loss=vl,
                                val_accuracy=va, lr=config["lr"], seconds=(seconds or 40) / len(epochs))
            if status == "completed":
                _evidence(run_id, model, seed, changes, params)
                best = max(range(len(epochs)), key=lambda i: epochs[i][3])
                store.finish_run(
                    run_id, status=status, test_accuracy=acc, test_loss=0.2329,
                    val_accuracy=epochs[best][3], best_epoch=best + 1, params=params,
                    train_seconds=seconds, examples_per_sec=config["epochs"] * 55000 / seconds,
                    finished_at=f"{start[:-2]}59+00:00")


def _evidence(run_id: str, model: str, seed: int, changes: dict, params: int) -> None:
    """A DEMO run's evidence in its folder, as a run writes it (runs/evidence.py)."""
    from zoo_core.cli.results import reproduce_command

    folder = _run_folder(run_id, exist_ok=True)
    command = reproduce_command(model, "fashion", changes, [seed], {})
    (folder / "config.json").write_text(json.dumps(
        {"environment": {**ENVIRONMENT, "command": command}}))
    (folder / "metrics.json").write_text(json.dumps(
        {"model": {"params": params, "macs": MACS[model]}}))


def _run_folder(run_id: str, exist_ok: bool = False) -> Path:
    """A DEMO run's folder, made (empty) so that `zoo runs rm` finds it."""
    folder = Path(os.environ["ZOO_HOME"], "runs", run_id)
    folder.mkdir(parents=True, exist_ok=exist_ok)
    return folder


@contextlib.contextmanager
def sample_world():
    """A fresh ZOO_HOME with the DEMO runs, a fixed now, a temporary current folder."""
    from zoo_core.cli import manage

    saved_env, saved_cwd, saved_now = dict(os.environ), os.getcwd(), manage.now
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ZOO_HOME"] = str(Path(tmp, "home"))
        for name in ("ZOO_DATA_DIR", "ZOO_REGISTRY", "ZOO_LOAD_PLUGINS"):
            os.environ.pop(name, None)
        os.chdir(tmp)
        manage.now = lambda: NOW
        try:
            fill_store()
            yield
        finally:
            manage.now = saved_now
            os.chdir(saved_cwd)
            os.environ.clear()
            os.environ.update(saved_env)


def run(command: str) -> str:
    """What ``command`` (``zoo ...``) prints, stdout and stderr as a terminal shows them."""
    from click.testing import CliRunner

    from zoo_core.cli import cli

    args = shlex.split(command.split("  #")[0])[1:]
    result = CliRunner().invoke(cli, args, prog_name="zoo")
    return result.output.replace(os.environ["ZOO_HOME"], "~/.local/share/zoo")


def regenerate(text: str) -> str:
    """docs/cli.md with each sample's output replaced by what its command prints now."""
    def replace(match: re.Match) -> str:
        requires, command = match[1], match[2]
        if requires and not Path(requires).exists():
            return match[0]
        head = "<!-- sample -->" if not requires else f"<!-- sample requires={requires} -->"
        return f"{head}\n```\n$ {command}\n{run(command)}```\n"

    with sample_world():
        return SAMPLE.sub(replace, text)


def main(argv: list[str]) -> int:
    text = CLI_MD.read_text()
    fresh = regenerate(text)
    if "--check" in argv:
        if fresh == text:
            return 0
        sys.stdout.writelines(difflib.unified_diff(
            text.splitlines(True), fresh.splitlines(True), "docs/cli.md", "zoo's output"))
        print("\ndocs/cli.md's samples are stale: run python docs/samples.py", file=sys.stderr)
        return 1
    CLI_MD.write_text(fresh)
    print(f"{len(SAMPLE.findall(fresh))} samples in docs/cli.md regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
