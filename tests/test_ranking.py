"""The leaderboard the database ranks (Store.leaderboard, one query) gives the rows the
reference aggregation (results.leaderboard.aggregate, over decoded runs) gives, on SQLite
and on a real PostgreSQL server: every rule of a row at once in one store."""

from __future__ import annotations

import math
import random

import pytest

from zoo_core.results.leaderboard import aggregate, best_run, is_partial
from zoo_core.store import open_store
from zoo_core.store.records import IMPORTED_TAG, RunRecord

BACKENDS = ["sqlite", "postgresql"]


def _record(i: int, rng: random.Random, **overrides) -> RunRecord:
    model = rng.choice(["cnn", "rnn", "lstm"])
    fields = dict(
        run_id=f"{model}-fashion-s{i}-20261207-000000-{i:04x}", status="completed", model=model,
        dataset=rng.choice(["fashion", "fashion", "mnist"]), plugin=f"zoo-{model}",
        plugin_version="0.1.0", zoo_version="0.1.0", tf_version="2.21.0",
        config={"epochs": 3, "lr": rng.choice([0.001, 0.002]), "limit": None},
        seed=rng.randrange(4), data_checksums={"train-images": "aa", "test-images": "bb"},
        split_sizes={"train": 54000, "val": 6000, "test": 10000},
        test_accuracy=rng.choice([0.9, 0.91, 0.92]),  # ties for the best run
        val_accuracy=0.9, test_loss=0.3, params=rng.choice([None, 1000, 2000]),
        train_seconds=rng.choice([None, 10.0, 20.0]), examples_per_sec=5000.0,
        started_at=f"2026-12-07T00:{rng.randrange(60):02d}:00+00:00",  # ties in start too
        precision=rng.choice([None, "float32", "bfloat16"]), tags=[],
    )
    fields.update(overrides)
    return RunRecord(**fields)


def _store_contents() -> list[RunRecord]:
    """Repeated seeds, quick tries, non-finite and missing accuracies, other statuses,
    imported runs, tags, data that disagrees, and ties in accuracy and start time."""
    rng = random.Random(7)
    records = [_record(i, rng) for i in range(150)]
    for i, record in enumerate(records):
        kind = i % 15
        if kind == 1:
            record.config = {**record.config, "limit": 3000}
        elif kind == 2:
            record.test_accuracy = math.nan if i % 2 else math.inf
        elif kind == 3:
            record.val_accuracy = math.nan
        elif kind == 4:
            record.status = "failed"
        elif kind == 5:
            record.test_accuracy = None
        elif kind == 6:
            record.tags = [IMPORTED_TAG]
        elif kind == 7:
            record.tags = ["paper", "a,b"]
        elif kind == 8 and record.model == "lstm":
            record.split_sizes = {**record.split_sizes, "test": 5000}
        elif kind == 9 and record.model == "rnn":
            record.data_checksums = {"train-images": "cc", "test-images": "bb"}
        elif kind == 10:
            record.split_sizes = {"train": 54000, "val": 6000}  # no test size recorded
    return records


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    location = (request.getfixturevalue("postgresql_url") if request.param == "postgresql"
                else str(tmp_path / "zoo.db"))
    with open_store(location) as opened:
        for record in _store_contents():
            opened.create_run(record)
        yield opened


def _same(got: list[dict], want: list[dict]) -> None:
    assert [r["best_run"] for r in got] == [r["best_run"] for r in want]
    for mine, theirs in zip(got, want):
        for key, value in theirs.items():
            if isinstance(value, float):
                # the std comes from a sum of squares: its last digits may differ
                assert mine[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
            else:
                assert mine[key] == value, (key, theirs["best_run"])
        assert set(mine) == set(theirs)


@pytest.mark.parametrize("include_partial", [False, True])
@pytest.mark.parametrize("model, dataset, tag", [(None, None, None), ("*n", "fashion", None),
                                                 (None, None, "paper")])
def test_the_database_ranks_as_the_reference_does(store, include_partial, model, dataset, tag):
    records = store.runs(model=model, dataset=dataset, status="completed", tag=tag)
    rows, left_out = store.leaderboard(include_partial, model=model, dataset=dataset, tag=tag)
    want = aggregate(records, include_partial)
    if (model, dataset, tag) == (None, None, None):  # the contents exercise every rule
        assert all(any(r[key] for r in want) for key in ("flagged", "replaced", "imported"))
    assert want
    _same(rows, want)
    assert left_out == (0 if include_partial else sum(is_partial(r) for r in records))


def test_an_empty_store_has_an_empty_leaderboard(tmp_path):
    with open_store(str(tmp_path / "zoo.db")) as empty:
        assert empty.leaderboard() == ([], 0)


def test_the_database_picks_the_run_a_model_name_means(store):
    """``zoo predict MODEL`` and ``/v1/models/MODEL`` read it in one query: the run
    results.leaderboard.best_run picks (full runs first, best validation, latest on a tie)."""
    for record in store.runs()[::4]:  # a folder for some; the others have none
        store.update_run(record.run_id, run_dir=f"/runs/{record.run_id}")
    everything = store.runs()
    for record in everything[1::7]:  # ties in validation accuracy, quick tries among them
        store.update_run(record.run_id, val_accuracy=0.95)
    checked = 0
    for model in ("cnn", "rnn", "lstm", "resnet"):
        for dataset in ("fashion", "mnist"):
            want = best_run(store.runs(model=model, dataset=dataset, status="completed"))
            got = store.best_run(model, dataset)
            assert (got and got.run_id) == (want and want.run_id), (model, dataset)
            checked += want is not None
    assert checked >= 5
