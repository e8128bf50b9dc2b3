"""Hyperparameter search (issue 29): `zoo sweep MODEL --search ...` on the sweeps' store,
workers and engines, with Optuna's samplers and pruners over a study rebuilt from the store.

The first tests need no training: the --space forms and their errors, the declared ranges,
the store's one-trial-per-number rule (SQLite and a real PostgreSQL server) and the pruners'
decisions on trials written into a real store by hand. The last ones run real searches of
tiny CNN trials on the real Fashion-MNIST: one started with `--engine none`, half run by a
`zoo worker`, then resumed on `local:2` where the pruner stops the losing trials; and one on
a real PostgreSQL store.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from zoo_core.catalogue import open_zoo
from zoo_core.errors import UsageError
from zoo_core.runs import search
from zoo_core.runs.plan import RunRequest
from zoo_core.store.records import RunRecord, SweepRecord, utc_now
from zoo_core.store import open_store
from zoo_core.runs.sweep import sweep_status
from zoo_core.searchspace import FORMS, Dim, parse_dim
from zoo_core.settings import TRAINER_HPARAMS

FASHION = Path("/usr/share/datasets/fashion-mnist")
# tiny trials of the plain cnn: 256 examples in batches of 32, 2 epochs
TINY = ["--limit", "256", "--batch-size", "32", "--epochs", "2", "--set", "filters=8",
        "--set", "dense=16", "--set", "batch_norm=false", "--set", "steps_per_call=1"]


# -- ranges ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, kind", [("log(1e-4,1e-2)", "log"), ("float(0, 0.5)", "float"),
                                        ("int(1,4)", "int"), ("choice(adam, nesterov)", "choice")])
def test_each_range_form_parses_and_spells_back(text, kind):
    dim = parse_dim(text)
    assert dim.kind == kind
    assert parse_dim(str(dim)) == dim


@pytest.mark.parametrize("option, words", [
    ("lr", "give NAME=RANGE"),
    ("lr=exp(1,2)", f"--space lr: 'exp(1,2)' is not a search range: give {FORMS}"),
    ("lr=log(0,1)", "--space lr: 'log(0,1)': log(a,b) needs a > 0"),
    ("blocks=int(1.5,3)", "--space blocks: 'int(1.5,3)': int(a,b) takes two whole numbers"),
    ("dropout=float(0.5,0.1)", "--space dropout: 'float(0.5,0.1)': the lowest value must be"),
    ("optimizer=choice(adam)", "--space optimizer: 'choice(adam)': choice(...) takes two or more"),
])
def test_a_bad_space_names_the_setting_and_the_accepted_forms(option, words):
    with pytest.raises(UsageError) as e:
        search.parse_space([option])
    assert words in str(e.value)


def test_the_command_line_says_which_space_is_wrong_before_anything_is_queued(zoo):
    out = zoo("sweep", "cnn", "--search", "tpe", "--space", "dropout=float(0,2)", code=2).output
    assert "--space dropout=float(0,2): outside the setting's bounds (float, >= 0, <= 0.95)" in out
    out = zoo("sweep", "cnn", "--search", "tpe", "--space", "width=int(1,4)", code=2).output
    assert "--space width: cnn has no setting 'width'" in out
    out = zoo("sweep", "cnn", "--search", "tpe", "--space", "lr=log(1e-4,1e-2)", "--lr", "0.1",
              code=2).output
    assert "--space lr is also set to one value" in out
    out = zoo("sweep", "cnn", "--trials", "4", code=2).output
    assert "--trials belong to a search: add --search random|tpe" in out
    assert zoo("sweep", "list", "--json", code=0).output.strip() == "[]"


def test_a_search_is_one_model_and_one_seed():
    zoo_ = open_zoo()
    for request, words in [
        (RunRequest(models=["cnn", "rnn"], dataset="fashion"), "a search tunes one model"),
        (RunRequest(models=["cnn"], dataset="fashion", seeds=range(2)), "leave out --seeds"),
    ]:
        with pytest.raises(UsageError, match=words):
            search.plan_search(zoo_, request, sampler="tpe", trials=4)


def test_declared_ranges_lie_within_their_settings_bounds():
    zoo_ = open_zoo()
    declared = {**TRAINER_HPARAMS, **{f"{m}.{k}": p for m in ("cnn", "rnn", "lstm")
                                      for k, p in zoo_.model(m).hparams.items()}}
    ranges = {k: p for k, p in declared.items() if p.search}
    assert {"lr", "optimizer", "cnn.dropout", "rnn.hidden", "lstm.dropout"} <= set(ranges)
    assert {k: parse_dim(p.search).problem(p) for k, p in ranges.items()} == \
        {k: "" for k in ranges}


def test_a_model_without_space_searches_its_declared_ranges_less_the_fixed_ones():
    planned = search.plan_search(open_zoo(), RunRequest(
        models=["cnn"], dataset="fashion", overrides={"lr": 0.003},
        text_overrides={"dropout": "0"}), sampler="tpe", trials=20)
    assert "lr" not in planned.space and "dropout" not in planned.space
    assert planned.space["filters"] == Dim("choice", choices=("16", "32", "64"))
    assert planned.space["optimizer"] == Dim("choice", choices=("adam", "nesterov"))


def test_zoo_list_details_shows_the_search_space(zoo):
    out = zoo("list", "cnn", "--details", code=0).output
    assert "cnn search space (`zoo sweep cnn --search tpe` without --space)" in out
    assert "log(1e-4,1e-2)" in out
    listed = json.loads(zoo("list", "cnn", "--details", "--json", code=0).output)
    assert listed[0]["search_space"]["dropout"] == "float(0,0.5)"


# -- the store and the pruners, on trials written by hand --------------------------------------

@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path) -> str:
    if request.param == "postgresql":
        return request.getfixturevalue("postgresql_url")
    return str(tmp_path / "zoo.db")


def _trial(run_id: str) -> RunRecord:
    return RunRecord(run_id=run_id, model="cnn", dataset="fashion", plugin="zoo-cnn",
                     plugin_version="0.1.0", zoo_version="0.1.0", tf_version="", seed=0,
                     config={"lr": 0.001}, data_checksums={}, split_sizes={})


def _search_sweep(store, prune: str, trials: int = 8) -> SweepRecord:
    planned = search.Search("random", trials, {"lr": parse_dim("log(1e-4,1e-1)")}, "cnn",
                            prune=prune)
    sweep = SweepRecord(sweep_id=f"sweep-{prune}", command="zoo sweep", engine="none",
                        spec={"dataset": "fashion", "limit": None, "trials": [],
                              "search": planned.to_spec()})
    store.create_sweep(sweep, [])
    return sweep


def _add(store, sweep, number: int, values: list[float], status: str | None) -> str:
    """Trial ``number`` with these epochs' validation accuracies, ended as ``status``
    (None: still running)."""
    run_id = f"t{number}"
    assert store.add_trial(sweep.sweep_id, {"set": {"lr": "0.001"}}, _trial(run_id),
                           number=number)
    store.claim_run(sweep.sweep_id, host="here", pid=os.getpid())
    for epoch, value in enumerate(values, start=1):
        store.add_epoch(run_id, epoch, val_accuracy=value, val_loss=1 - value)
    if status is not None:
        store.finish_run(run_id, status=status, finished_at=utc_now())
    return run_id


def test_a_trial_number_is_added_once_and_never_to_a_cancelled_sweep(location):
    with open_store(location) as store:
        sweep = _search_sweep(store, "median")
        assert store.add_trial(sweep.sweep_id, {"set": {}}, _trial("a"), number=0)
        assert not store.add_trial(sweep.sweep_id, {"set": {}}, _trial("b"), number=0)
        assert store.add_trial(sweep.sweep_id, {"set": {}}, _trial("c"), number=1)
        assert [t["run_id"] for t in store.get_sweep(sweep.sweep_id).spec["trials"]] == ["a", "c"]
        assert [r.run_id for r in store.runs(sweep_id=sweep.sweep_id)] == ["a", "c"]
        store.cancel_sweep(sweep.sweep_id, "cancelled")
        assert not store.add_trial(sweep.sweep_id, {"set": {}}, _trial("d"), number=2)


def _propose_numbers(location: str, sweep_id: str, who: int, barrier, results) -> None:
    """Add trials as a proposing worker does: read the count k, add trial k, again, until the
    search has 6 trials; the numbers this process added."""
    added = []
    with open_store(location) as store:
        store.check()
        barrier.wait()
        while (k := len(store.get_sweep(sweep_id).spec["trials"])) < 6:
            if store.add_trial(sweep_id, {"set": {}}, _trial(f"p{who}-{k}"), number=k):
                added.append(k)
    results.put(added)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_processes_proposing_at_once_add_each_trial_number_once(location):
    with open_store(location) as store:
        sweep = _search_sweep(store, "median")
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=_propose_numbers, args=(location, sweep.sweep_id, i, barrier,
                                                         results)) for i in range(3)]
    for proc in procs:
        proc.start()
    added = sorted(k for _ in procs for k in results.get(timeout=60))
    for proc in procs:
        proc.join()
    assert added == [0, 1, 2, 3, 4, 5]  # none twice, none lost, never past the last
    with open_store(location) as store:
        trials = store.get_sweep(sweep.sweep_id).spec["trials"]
        assert sorted(r.run_id for r in store.runs(sweep_id=sweep.sweep_id)) == \
            sorted(t["run_id"] for t in trials)
        assert len(trials) == 6


def test_the_median_pruner_judges_a_trial_against_the_completed_ones(tmp_path):
    with open_store(tmp_path / "zoo.db") as store:
        sweep = _search_sweep(store, "median")
        _add(store, sweep, 0, [0.70, 0.80, 0.85], "completed")
        first = _add(store, sweep, 1, [0.10], None)
        sweep = store.get_sweep(sweep.sweep_id)
        assert search.prune_reason(store, sweep, first, 1, 3) is None  # one completed only
        _add(store, sweep, 2, [0.60, 0.70, 0.75], "completed")
        sweep = store.get_sweep(sweep.sweep_id)
        reason = search.prune_reason(store, sweep, first, 1, 3)
        assert reason == ("median pruner: val_accuracy 10.00% by epoch 1 is worse than the "
                          "median 65.00% of the 2 completed trial(s) at that epoch")
        assert search.prune_reason(store, sweep, first, 3, 3) is None  # its last epoch
        good = _add(store, sweep, 3, [0.68], None)
        assert search.prune_reason(store, store.get_sweep(sweep.sweep_id), good, 1, 3) is None


def test_asha_promotes_the_best_of_each_rung_rebuilt_from_the_store(tmp_path):
    with open_store(tmp_path / "zoo.db") as store:
        sweep = _search_sweep(store, "asha")
        leader = _add(store, sweep, 0, [0.50], None)
        assert search.prune_reason(store, store.get_sweep(sweep.sweep_id), leader, 1, 4) is None
        store.add_epoch(leader, 2, val_accuracy=0.70)
        assert search.prune_reason(store, store.get_sweep(sweep.sweep_id), leader, 2, 4) is None
        loser = _add(store, sweep, 1, [0.40], None)
        reason = search.prune_reason(store, store.get_sweep(sweep.sweep_id), loser, 1, 4)
        assert reason == ("asha pruner: val_accuracy 40.00% at epoch 1 is not in the best 1/2 "
                          "of the trials that reached epoch 1")
        better = _add(store, sweep, 2, [0.55], None)
        assert search.prune_reason(store, store.get_sweep(sweep.sweep_id), better, 1, 4) is None


def test_pruned_trials_count_for_the_sampler_but_never_rank(tmp_path):
    with open_store(tmp_path / "zoo.db") as store:
        sweep = _search_sweep(store, "median")
        _add(store, sweep, 0, [0.60, 0.70], "completed")
        _add(store, sweep, 1, [0.95], "pruned")  # high, but stopped: it never ranks
        _add(store, sweep, 2, [0.30, 0.80], "completed")
        sweep = store.get_sweep(sweep.sweep_id)
        built, _ = search.study(store, sweep)
        assert [t.state.name for t in built.get_trials()] == ["COMPLETE", "PRUNED", "COMPLETE"]
        part = search.summary(sweep_status(store, sweep.sweep_id), store.epochs)
    assert part["best"]["run_id"] == "t2" and part["best"]["value"] == pytest.approx(0.80)
    assert [v["state"] for v in part["values"]] == ["completed", "pruned", "completed"]


# -- real searches -----------------------------------------------------------------------------

def _environ(home: Path, store: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ZOO_DATA_DIR", "ZOO_REGISTRY", "ZOO_LOAD_PLUGINS", "ZOO_STORE",
                        "ZOO_ARTIFACTS")}
    env.update(ZOO_HOME=str(home), TF_CPP_MIN_LOG_LEVEL="3", TF_USE_LEGACY_KERAS="1")
    if store:
        env["ZOO_STORE"] = store
    return env


@pytest.fixture(scope="module")
def resumed(zoo, tmp_path_factory):
    """A random search of 4 trials (seed 4: lr 0.01 for trials 0 and 1, 1e-6 for 2 and 3)
    with the median pruner: submitted with --engine none, trials 0 and 1 run by one `zoo
    worker` (in this process), then resumed on local:2, where trials 2 and 3 start with two
    completed and are judged after their first epoch."""
    if not FASHION.is_dir():
        pytest.skip(f"the real Fashion-MNIST is not at {FASHION}")
    home = tmp_path_factory.mktemp("search")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in _environ(home).items():
            mp.setenv(key, value)
        for key in ("ZOO_DATA_DIR", "ZOO_REGISTRY", "ZOO_LOAD_PLUGINS", "ZOO_STORE"):
            mp.delenv(key, raising=False)
        submitted = json.loads(zoo(
            "sweep", "cnn", "--search", "random", "--trials", "4", "--seed", "4",
            "--space", "lr=choice(0.01,0.000001)", "--space", "dropout=float(0,0.1)",
            "--prune", "median", *TINY, "--engine", "none", "--json", code=0).stdout)
        sweep_id = submitted["sweep"]["sweep_id"]
        done = zoo("worker", "--sweep", sweep_id, "--max-trials", "2", "--threads", "1", code=0)
        with open_store() as store:
            before = {r.run_id: r for r in store.runs(sweep_id=sweep_id)}
        half = json.loads(zoo("sweep", "status", sweep_id, "--json", code=0).stdout)
        resumed = zoo("sweep", "--resume", sweep_id, "--engine", "local:2", code=0)
        with open_store() as store:
            after = {r.run_id: r for r in store.runs(sweep_id=sweep_id)}
        status = json.loads(zoo("sweep", "status", sweep_id, "--json", code=0).stdout)
        plot = home / "search.png"
        shown = json.loads(zoo("sweep", "show", sweep_id, "--plot", str(plot), "--json",
                               code=0).stdout)
        texts = {name: zoo(*args, code=0).output for name, args in {
            "status": ("sweep", "status", sweep_id), "show": ("sweep", "show", sweep_id),
            "runs": ("runs", "--status", "pruned"),
            "leaderboard": ("leaderboard", "--include-partial", "--runs"),
            "again": ("worker", "--sweep", sweep_id)}.items()}
        with open_store() as store:
            final = {r.run_id: r for r in store.runs(sweep_id=sweep_id)}
            spec = store.get_sweep(sweep_id).spec
    yield dict(sweep_id=sweep_id, worker=done.output, half=half, before=before, after=after,
               resumed=resumed.output, status=status, shown=shown, plot=plot, texts=texts,
               final=final, spec=spec)


@pytest.mark.slow
def test_a_resumed_search_keeps_its_finished_trials_and_runs_the_rest(resumed):
    before, after = resumed["before"], resumed["after"]
    assert len(before) == 2 and {r.status for r in before.values()} == {"completed"}
    assert resumed["half"]["state"] == "active" and resumed["half"]["planned"] == 4
    assert "2 completed, 0 failed, 0 cancelled, 0 pruned" in resumed["worker"]
    assert len(after) == 4
    for run_id, record in before.items():  # not run again
        assert after[run_id].finished_at == record.finished_at
        assert after[run_id].status == "completed"
    assert [t["number"] for t in resumed["spec"]["trials"]] == [0, 1, 2, 3]
    assert len({t["run_id"] for t in resumed["spec"]["trials"]}) == 4


@pytest.mark.slow
def test_the_pruner_stops_the_losing_trials_at_an_epoch_boundary(resumed):
    pruned = [r for r in resumed["after"].values() if r.status == "pruned"]
    assert {r.config["lr"] for r in pruned} == {1e-6}, resumed["resumed"]
    for record in pruned:
        assert record.error.startswith("median pruner: val_accuracy ")
        assert "of the 2 completed trial(s)" in record.error
        assert record.epochs_run == 1 and record.test_accuracy is None
        assert record.finished_at is not None
    assert "pruned, val_accuracy" in resumed["resumed"]
    listed = [line.split() for line in resumed["texts"]["runs"].splitlines()[2:]]
    assert sorted(line[0] for line in listed) == sorted(r.run_id for r in pruned)
    assert {line[1] for line in listed} == {"pruned"}
    for r in pruned:  # pruned runs never rank
        assert r.run_id not in resumed["texts"]["leaderboard"]


@pytest.mark.slow
def test_status_shows_the_best_trial_and_the_run_that_reproduces_it(resumed):
    best = resumed["status"]["search"]["best"]
    assert best["number"] in (0, 1)
    assert resumed["final"][best["run_id"]].status == "completed"
    assert best["params"]["lr"] == "0.01"
    assert best["command"].startswith("zoo run cnn --dataset fashion ")
    assert "--lr 0.01" in best["command"] and "--seed 4" in best["command"]
    assert f"dropout={best['params']['dropout']}" in best["command"]
    text = resumed["texts"]["status"]
    assert f"best trial: #{best['number']} {best['run_id']}" in text
    assert f"reproduce: {best['command']}" in text
    assert resumed["status"]["counts"]["pruned"] >= 1


@pytest.mark.slow
def test_show_draws_the_search_and_lists_each_trial(resumed):
    assert resumed["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert resumed["shown"]["plot"] == str(resumed["plot"])
    assert [v["number"] for v in resumed["shown"]["values"]] == [0, 1, 2, 3]
    assert "median pruner" in resumed["texts"]["show"]


@pytest.mark.slow
def test_a_finished_search_takes_no_trial_twice(resumed):
    assert "worker done: 0 trial(s)" in resumed["texts"]["again"]
    assert {k: (r.status, r.finished_at) for k, r in resumed["final"].items()} == \
        {k: (r.status, r.finished_at) for k, r in resumed["after"].items()}


@pytest.mark.slow
def test_a_search_on_a_postgresql_store(zoo, postgresql_url, tmp_path, monkeypatch):
    if not FASHION.is_dir():
        pytest.skip(f"the real Fashion-MNIST is not at {FASHION}")
    monkeypatch.setenv("ZOO_ARTIFACTS", str(tmp_path / "shared"))
    queued = json.loads(zoo("sweep", "cnn", "--search", "tpe", "--trials", "2", "--space",
                            "lr=log(1e-3,1e-2)", *TINY, "--epochs", "1", "--engine", "none",
                            "--json",
                            store=postgresql_url, code=0).stdout)
    assert queued["total"] == 0  # the workers propose the trials
    sweep_id = queued["sweep"]["sweep_id"]
    assert "2 completed" in zoo("worker", "--sweep", sweep_id, store=postgresql_url, code=0).output
    out = json.loads(zoo("sweep", "status", sweep_id, "--json", store=postgresql_url,
                         code=0).stdout)
    assert out["counts"]["completed"] == 2
    assert out["search"]["best"]["run_id"] in {t["run_id"] for t in out["trials"]}
    with open_store(postgresql_url) as store:
        runs = store.runs(sweep_id=out["sweep"]["sweep_id"])
        assert [r.status for r in runs] == ["completed", "completed"]
        assert all(len(store.epochs(r.run_id)) == 1 for r in runs)


def test_the_benchmark_compares_the_arms_per_repetition():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "search.py"
    spec = importlib.util.spec_from_file_location("search_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = [dict(arm="random", seed=0, best_val_accuracy=0.80, train_seconds=100.0,
                 epochs_trained=40),
            dict(arm="tpe+median", seed=0, best_val_accuracy=0.82, train_seconds=50.0,
                 epochs_trained=30),
            dict(arm="tpe+median", seed=1, best_val_accuracy=0.79, train_seconds=70.0,
                 epochs_trained=20),
            dict(arm="random", seed=1, best_val_accuracy=0.80, train_seconds=100.0,
                 epochs_trained=40)]
    c = bench.compare(rows)
    assert c["gains"] == pytest.approx([0.02, -0.01])
    assert c["compute_fractions"] == {"train_seconds": pytest.approx([0.5, 0.7]),
                                      "epochs_trained": pytest.approx([0.75, 0.5])}
    assert c["median_gain"] == pytest.approx(0.005)
    assert c["median_compute_fraction"] == pytest.approx({"train_seconds": 0.6,
                                                          "epochs_trained": 0.625})
    assert c["goal_met"] == {"train_seconds": True, "epochs_trained": False}
