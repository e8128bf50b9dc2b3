"""What several test modules share, one copy each. Tests reach it through conftest.py's
fixtures (``zoo``, ``make_record``, ``record``, ``add_completed``, ``stop_at``,
``dist_info``); only code a test runs in a child process imports it, with tests/ on
sys.path. A test module never imports another test module."""

from __future__ import annotations

from pathlib import Path


def invoke(*args, store=None, code: int | None = None, input=None, env=None,
           catch_exceptions: bool = False, **kwargs):
    """``zoo ARGS`` in this process, as a user types it (click's CliRunner, program name
    ``zoo``; paths and numbers are turned into words). ``store`` adds ``--store STORE``;
    ``code`` asserts the exit code (the output is the failure's message). An
    exception the CLI did not turn into an error is raised, with its traceback."""
    from click.testing import CliRunner

    from zoo_core.cli import cli

    words = [*(["--store", store] if store else []), *args]
    result = CliRunner().invoke(cli, [str(a) for a in words], input=input, env=env,
                                prog_name="zoo", catch_exceptions=catch_exceptions, **kwargs)
    if code is not None:
        assert result.exit_code == code, result.output
    return result


def make_record(run_id: str, **overrides):
    """A run as the store tests record it (cnn on fashion, 3 epochs, seed 1), any field
    overridden."""
    from zoo_core.store.records import RunRecord

    fields = dict(
        run_id=run_id,
        model="cnn",
        dataset="fashion",
        plugin="zoo-cnn",
        plugin_version="0.1.0",
        zoo_version="0.1.0",
        tf_version="2.16.1",
        config={"epochs": 3, "lr": 0.001, "limit": None},
        seed=1,
        data_checksums={"train-images": "aa", "test-images": "bb"},
        split_sizes={"train": 54000, "val": 6000, "test": 10000},
    )
    fields.update(overrides)
    return RunRecord(**fields)


# The run the CLI tests list, show and remove: 2 epochs, seed 0, no validation split.
LISTED = dict(config={"epochs": 2, "lr": 0.001, "limit": None},
              data_checksums={"test_images": "aa"}, split_sizes={"train": 55000, "test": 10000})


def record(run_id: str, seed: int = 0, **fields):
    """A run as the CLI tests record it by hand (see :data:`LISTED`)."""
    return make_record(run_id, **{**LISTED, "seed": seed, **fields})


def add_completed(store, run_id: str, accuracy: float, seed: int = 0, folder=None, **fields):
    """A completed run of :func:`record` with two epochs and a test accuracy, as if trained."""
    from zoo_core.store.records import utc_now

    store.create_run(record(run_id, seed, run_dir=str(folder or ""), **fields))
    for epoch in (1, 2):
        store.add_epoch(run_id, epoch, train_loss=1.0 / epoch, train_accuracy=0.7 + epoch / 20,
                        val_loss=1.1 / epoch, val_accuracy=accuracy - 0.1 + epoch / 20)
    store.finish_run(run_id, status="completed", test_accuracy=accuracy, val_accuracy=accuracy,
                     test_loss=0.3, best_epoch=2, params=1000, train_seconds=10.0,
                     examples_per_sec=5000.0, finished_at=utc_now())


class StopAt:
    """Progress that presses Ctrl-C when epoch ``at`` starts."""

    def __init__(self, at: int):
        self.at = at

    def epoch_start(self, epoch, epochs, steps):
        if epoch == self.at:
            raise KeyboardInterrupt

    def step(self, loss, accuracy):
        pass

    def epoch_end(self, record):
        pass


def write_dist_info(site: Path, dist: str, entry_points: dict[str, str] | None,
                    version: str = "0.1.0", group: str = "zoo",
                    requires: tuple[str, ...] = ()) -> Path:
    """The ``.dist-info`` pip writes for distribution ``dist`` in folder ``site``: METADATA
    (name, version, requirements) and, unless ``entry_points`` is empty, entry_points.txt
    with ``entry_points`` (name -> module) in ``group``; importlib.metadata finds it exactly
    as it finds a pip-installed plugin once ``site`` is on the path."""
    info = Path(site) / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n"
                                   + "".join(f"Requires-Dist: {r}\n" for r in requires))
    if entry_points:
        (info / "entry_points.txt").write_text(
            f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    return info


def sweep_record(sweep_id: str, run_ids):
    """A sweep of the cnn on fashion whose trials are ``run_ids`` (seed 0, 256 examples)."""
    from zoo_core.store.records import SweepRecord

    return SweepRecord(sweep_id=sweep_id, command="zoo sweep cnn", engine="none", spec={
        "dataset": "fashion", "limit": 256,
        "trials": [{"run_id": i, "model": "cnn", "seed": 0, "overrides": {}, "set": {}}
                   for i in run_ids]})


def interruptible() -> None:
    """``preexec_fn`` for a child that a test stops with SIGINT: a process started in the
    background by a shell without job control (``cmd &`` in a script, as a CI job may run
    the suite) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt; the
    child gets the default back, as one started from a terminal has it."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
