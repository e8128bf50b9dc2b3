"""The leaderboard: aggregation over runs, flagged data disagreements, and every output format."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import tabulate

from zoo_core.cli.results import EMPTY_LEADERBOARD
from zoo_core.results.reproduce import reproduce_command
from zoo_core.errors import UsageError
from zoo_core.results import leaderboard
from zoo_core.results.leaderboard import aggregate, render, runs_rows
from zoo_core.store.records import RunRecord

CHECKSUMS = {"train-images": "aa", "test-images": "bb"}
SPLITS = {"train": 54000, "val": 6000, "test": 10000}


def run(run_id, test_accuracy, *, seed=0, model="cnn", dataset="fashion", config=None,
        status="completed", **overrides) -> RunRecord:
    fields = dict(
        run_id=run_id,
        status=status,
        model=model,
        dataset=dataset,
        plugin=f"zoo-{model}",
        plugin_version="0.1.0",
        zoo_version="0.1.0",
        tf_version="2.16.1",
        config=config if config is not None else {"epochs": 3, "lr": 0.001},
        seed=seed,
        data_checksums=dict(CHECKSUMS),
        split_sizes=dict(SPLITS),
        test_accuracy=test_accuracy,
        params=1_234_567,
        train_seconds=100.0 + seed,
        examples_per_sec=5000.0 + seed,
        started_at=f"2024-01-01T00:00:{seed:02d}+00:00",
    )
    fields.update(overrides)
    return RunRecord(**fields)


@pytest.fixture
def runs():
    cnn = [run(f"cnn-{s}", acc, seed=s) for s, acc in enumerate([0.91, 0.915, 0.905])]
    rnn = [run(f"rnn-{s}", acc, seed=s, model="rnn") for s, acc in enumerate([0.85, 0.87])]
    lstm = [run("lstm-0", 0.88, model="lstm", params=93_412)]
    return cnn + rnn + lstm


def test_aggregate_matches_numpy(runs):
    rows = aggregate(runs)
    assert [row["model"] for row in rows] == ["cnn", "lstm", "rnn"]
    cnn = rows[0]
    accs = np.array([0.91, 0.915, 0.905])
    assert cnn["n"] == 3
    assert cnn["seeds"] == [0, 1, 2]
    assert cnn["test_acc_mean"] == pytest.approx(accs.mean())
    assert cnn["test_acc_std"] == pytest.approx(accs.std(ddof=1))
    assert cnn["best_run"] == "cnn-1"
    assert cnn["best_test_acc"] == 0.915
    assert cnn["train_seconds"] == pytest.approx(101.0)
    assert cnn["examples_per_sec"] == pytest.approx(5001.0)
    assert cnn["params"] == 1_234_567
    assert cnn["config"] == {"epochs": 3, "lr": 0.001}
    assert cnn["config_id"] == runs[0].config_id
    assert cnn["flagged"] == ""
    assert set(cnn) == set(leaderboard.AGGREGATE_KEYS)

    lstm = rows[1]
    assert (lstm["n"], lstm["test_acc_mean"], lstm["test_acc_std"]) == (1, 0.88, 0.0)


def test_groups_split_by_config_and_dataset(runs):
    runs.append(run("cnn-long", 0.93, config={"epochs": 12, "lr": 0.001}))
    runs.append(run("cnn-mnist", 0.99, dataset="mnist"))
    rows = aggregate(runs)
    keys = [(row["model"], row["dataset"], row["config"].get("epochs"), row["n"]) for row in rows]
    assert keys == [("cnn", "mnist", 3, 1), ("cnn", "fashion", 12, 1), ("cnn", "fashion", 3, 3),
                    ("lstm", "fashion", 3, 1), ("rnn", "fashion", 3, 2)]


def test_only_completed_runs_with_a_test_accuracy_count(runs):
    runs += [
        run("cnn-failed", 0.99, seed=7, status="failed"),
        run("cnn-interrupted", 0.99, seed=8, status="interrupted"),
        run("cnn-running", None, seed=9, status="running"),
        run("cnn-no-test", None, seed=10),
    ]
    cnn = aggregate(runs)[0]
    assert cnn["n"] == 3 and cnn["seeds"] == [0, 1, 2]
    assert [row["run_id"] for row in runs_rows(runs)][:2] == ["cnn-1", "cnn-0"]
    assert {row["run_id"] for row in runs_rows(runs)} == {r.run_id for r in runs
                                                          if r.status == "completed"}
    assert aggregate([run("x", 0.5, status="failed")]) == []


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"data_checksums": {"train-images": "zz", "test-images": "bb"}}, "checksums disagree"),
        ({"split_sizes": {"train": 54000, "val": 6000, "test": 5000}}, "test split sizes"),
    ],
)
def test_disagreeing_data_is_flagged_not_averaged(runs, change, reason):
    runs.append(run("cnn-odd", 0.999, seed=5, **change))
    rows = aggregate(runs)
    flagged = rows[-1]
    assert flagged["model"] == "cnn" and flagged["n"] == 4
    assert flagged["flagged"].startswith("data differs: ") and reason in flagged["flagged"]
    assert flagged["test_acc_mean"] is None and flagged["test_acc_std"] is None
    assert [row["model"] for row in rows] == ["lstm", "rnn", "cnn"]
    lines = render(rows).splitlines()
    assert lines[-3].split()[:2] == ["-", "cnn"] and "flagged [1]" in lines[-3]
    assert lines[-2] == ""
    assert lines[-1].startswith("[1] cnn on fashion") and reason in lines[-1]
    assert "not averaged" in lines[-1]


def test_simple_table(runs):
    text = render(aggregate(runs))
    header, _, first, *_ = text.splitlines()
    assert header.split()[:4] == ["rank", "model", "dataset", "config"]
    assert first.split()[:3] == ["1", "cnn", "fashion"]
    assert "91.00 ± 0.50 %" in first
    assert "1.2M" in first and "1m41s" in first and "5,001" in first
    assert "88.00 %" in text and "93.4k" in text
    assert runs[0].config_id in first  # one config per model: the id labels it
    assert max(len(line) for line in text.splitlines()) < 120


def test_config_label_shows_what_varies(runs):
    runs.append(run("cnn-long", 0.93, config={"epochs": 12, "lr": 0.001}))
    text = render(aggregate(runs))
    assert "epochs=12" in text and "epochs=3" in text
    assert "lr=" not in text


def test_github_format(runs):
    lines = render(aggregate(runs), fmt="github").splitlines()
    assert [cell.strip() for cell in lines[0].strip("|").split("|")][:2] == ["rank", "model"]
    assert set(lines[1]) <= set("|-: ")
    assert len(lines) == 2 + 3


def test_csv_format_is_full_precision(runs):
    rows = aggregate(runs)
    parsed = list(csv.DictReader(io.StringIO(render(rows, fmt="csv"))))
    assert len(parsed) == 3
    assert list(parsed[0]) == list(leaderboard.AGGREGATE_KEYS)
    assert float(parsed[0]["test_acc_mean"]) == rows[0]["test_acc_mean"]
    assert json.loads(parsed[0]["config"]) == rows[0]["config"]
    assert json.loads(parsed[0]["seeds"]) == [0, 1, 2]


def test_json_format(runs):
    rows = aggregate(runs)
    assert json.loads(render(rows, fmt="json")) == rows


def test_runs_view(runs):
    rows = runs_rows(runs)
    assert set(rows[0]) == set(leaderboard.RUN_KEYS)
    text = render(rows, runs=True)
    assert text.splitlines()[0].split()[:2] == ["run", "model"]
    assert "91.50 %" in text.splitlines()[2]
    assert json.loads(render(rows, fmt="json", runs=True))[0]["run_id"] == "cnn-1"
    parsed = list(csv.DictReader(io.StringIO(render(rows, fmt="csv", runs=True))))
    assert [row["run_id"] for row in parsed] == [row["run_id"] for row in rows]


def test_empty_leaderboard():
    assert render([]) == "no completed runs yet"
    assert "zoo run cnn --dataset fashion" in EMPTY_LEADERBOARD
    assert render([], empty="nothing") == "nothing"
    assert "no completed runs" in render([], fmt="github", runs=True)
    assert json.loads(render([], fmt="json")) == []
    assert next(csv.reader(io.StringIO(render([], fmt="csv")))) == list(leaderboard.AGGREGATE_KEYS)


def test_unknown_format_lists_the_choices(runs):
    with pytest.raises(UsageError, match="unknown format 'fancy'") as excinfo:
        render(aggregate(runs), fmt="fancy")
    for choice in ("csv", "json", "github", "simple"):
        assert choice in str(excinfo.value)
    with pytest.raises(UsageError):
        render([], fmt="fancy")


@pytest.mark.parametrize("fmt", sorted(tabulate.tabulate_formats))
def test_every_tabulate_format_renders(runs, fmt):
    assert "cnn" in render(aggregate(runs), fmt=fmt)


@pytest.mark.parametrize(
    "value, text",
    [(None, ""), (512, "512"), (93_412, "93.4k"), (1_234_567, "1.2M"), (999_960, "1.0M")],
)
def test_format_count(value, text):
    assert leaderboard.format_count(value) == text


@pytest.mark.parametrize(
    "value, text",
    [(None, ""), (4.25, "4.2s"), (192, "3m12s"), (3725, "1h02m"), (59.99, "1m00s")],
)
def test_format_duration(value, text):
    assert leaderboard.format_duration(value) == text


def test_format_accuracy():
    assert leaderboard.format_accuracy(0.91234, 0.0015, 3) == "91.23 ± 0.15 %"
    assert leaderboard.format_accuracy(0.9, 0.0, 1) == "90.00 %"
    assert leaderboard.format_accuracy(None) == ""


def test_reproduce_command_spells_out_what_differs_from_the_defaults():
    defaults = {"epochs": 10, "lr": 0.001, "bidirectional": False, "hidden": 128, "dropout": 0.0}
    config = {"epochs": 30, "lr": 0.002, "bidirectional": True, "hidden": 128, "dropout": 0,
              "limit": None}
    assert reproduce_command("rnn", "fashion", config, [0, 1, 2], defaults) == \
        "zoo run rnn --dataset fashion --set bidirectional=true --epochs 30 --lr 0.002 --seeds 3"
    # not installed: every setting, exactly; seeds that are not consecutive: one command each
    cmd = reproduce_command("x", "mnist", {"lr": 0.1234567891, "limit": 500}, [1, 2, 5])
    assert cmd == ("zoo run x --dataset mnist --limit 500 --lr 0.1234567891 --seed 1 --seeds 2 && "
                   "zoo run x --dataset mnist --limit 500 --lr 0.1234567891 --seed 5")
    # a value with a space survives the shell
    assert "--set 'note=a b'" in reproduce_command("x", "d", {"note": "a b"}, [0])
    # a bool never equals an int default
    assert "--set flag=true" in reproduce_command("x", "d", {"flag": True}, [0], {"flag": 1})


def test_render_adds_a_command_column_as_code_in_markdown():
    rows = aggregate([run("a", 0.9)])
    rows[0]["command"] = "zoo run cnn --dataset fashion"
    assert "| `zoo run cnn --dataset fashion` |" in render(rows, fmt="github")
    assert render(rows, fmt="simple").splitlines()[0].rstrip().endswith("command")


# -- honesty (issue 18): quick tries, repeated seeds, readable configs -----------------------------


def test_runs_with_a_limit_are_left_out_unless_asked_for_and_marked(runs):
    quick = run("cnn-quick", 0.99, config={"epochs": 3, "lr": 0.001, "limit": 1000})
    rows = aggregate([*runs, quick])
    assert "cnn-quick" not in [row["best_run"] for row in rows]
    assert all(row["partial"] is False for row in rows)
    assert "cnn-quick" not in [row["run_id"] for row in runs_rows([*runs, quick])]
    rows = aggregate([*runs, quick], include_partial=True)
    (partial,) = [row for row in rows if row["partial"]]
    assert partial["best_run"] == "cnn-quick"
    text = render(rows)
    line = next(line for line in text.splitlines() if "cnn-quick" in line)
    assert "limit=1000" in line
    assert text.endswith(leaderboard.PARTIAL_NOTE)
    per_run = runs_rows([*runs, quick], include_partial=True)
    assert [row["partial"] for row in per_run if row["run_id"] == "cnn-quick"] == [True]


def test_a_seed_run_twice_counts_once_the_later_run(runs):
    again = run("cnn-0-again", 0.95, seed=0, started_at="2024-01-02T00:00:00+00:00")
    cnn = next(row for row in aggregate([*runs, again]) if row["model"] == "cnn")
    assert (cnn["n"], cnn["seeds"], cnn["replaced"]) == (3, [0, 1, 2], 1)
    assert cnn["test_acc_mean"] == pytest.approx(np.mean([0.95, 0.915, 0.905]))
    assert " 3  cnn-0-again " in render([cnn]).splitlines()[2]  # n, then the best run


def test_long_config_labels_wrap_instead_of_being_cut(runs):
    long = {f"setting_{i}": i for i in range(6)}
    rows = aggregate([run("a", 0.9, config={**long, "epochs": 1}),
                      run("b", 0.8, config={**{k: v + 1 for k, v in long.items()}, "epochs": 1})])
    text = render(rows)
    assert "…" not in text
    for key in long:
        assert f"{key}=" in text
    github = render(rows, "github")
    assert len(github.splitlines()) == 4  # header, rule, two rows: one line each


def test_reproduce_command_names_the_precision_the_run_computed_in():
    config = {"bf16": True, "epochs": 20, "limit": None}
    assert reproduce_command("cnn-bn", "fashion", config, [0], {"bf16": False, "epochs": 20}) \
        == "zoo run cnn-bn --dataset fashion --precision bfloat16"
    assert reproduce_command("cnn-bn", "fashion", {**config, "bf16": False}, [0],
                             {"bf16": True, "epochs": 20}) \
        == "zoo run cnn-bn --dataset fashion --precision float32"


def test_reproduce_command_names_a_setting_the_config_left_out_at_its_own_default(the_zoo):
    """read=rows is the rnn plugin's own default (omit_default: left out of the config) but
    not the registry's (rows+columns): the command must say so, or it trains another model."""
    from zoo_core.results.reproduce import current_defaults

    defaults = current_defaults(the_zoo, "rnn", "fashion")
    rows_only = the_zoo.resolve("rnn", "fashion", {"read": "rows"}).settings
    assert "read" not in rows_only.config and defaults["read"] == "rows+columns"
    command = reproduce_command("rnn", "fashion", rows_only.config, [0], defaults)
    assert command == "zoo run rnn --dataset fashion --set read=rows"
    again = the_zoo.resolve("rnn", "fashion", {"read": "rows"}).settings.config_id
    assert again == rows_only.config_id
    default = the_zoo.resolve("rnn", "fashion").settings
    assert reproduce_command("rnn", "fashion", default.config, [0, 1, 2], defaults) == \
        "zoo run rnn --dataset fashion --seeds 3"
