"""The leaderboard: completed runs aggregated by (model, dataset, config), and rendered.

Accuracies are fractions in [0, 1]; tables show them as percentages. Nothing here imports
TensorFlow.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
import textwrap
from typing import Any, Iterable

import tabulate

from zoo_core.errors import UsageError
from zoo_core.results import evidence
from zoo_core.store.records import (IMPORTED_TAG, RunRecord, imported,  # noqa: F401
                                     is_partial, precision_ran)
from zoo_core.settings import recorded_setting

AGGREGATE_KEYS = (
    "model", "plugin", "dataset", "config_id", "config", "precision", "n", "seeds", "test_acc_mean",
    "test_acc_std", "best_run", "best_test_acc", "params", "train_seconds", "examples_per_sec", "flagged",
    "partial", "replaced", "imported",
)
RUN_KEYS = (
    "run_id", "model", "plugin", "dataset", "config_id", "config", "precision", "seed", "test_accuracy",
    "test_loss", "val_accuracy", "best_epoch", "epochs_run", "params", "train_seconds", "examples_per_sec",
    "started_at", "partial", "imported",
)
MACHINE_FORMATS = ("csv", "json")
_CONFIG_WIDTH = 40  # a longer config label wraps onto more lines (where the format can)
_WRAPPING_FORMATS = set(tabulate.multiline_formats) - {"github", "pipe", "orgtbl", "jira"}
PARTIAL_NOTE = ("limit=N: a quick try on the first N training examples (`zoo run --limit`), "
                "shown with --include-partial; not comparable with runs on the full training set")
IMPORTED_NOTE = ("(imported): a run imported from a pack (`zoo unpack`, `zoo pull`); its figures "
                 "were measured where it was trained")


# -- aggregation -------------------------------------------------------------------------------



def best_run(runs: Iterable[RunRecord]) -> RunRecord | None:
    """The run a model name means among ``runs`` (``zoo predict MODEL``, a model's card): the
    completed run with a folder and the highest validation accuracy (the test split chooses
    nothing), full runs before quick tries made with ``--limit``, the latest on a tie; None
    when there is none."""
    done = [r for r in runs if r.status == "completed" and r.run_dir]

    def validation(run: RunRecord) -> float:  # none, or not finite (an old store's NaN): 0
        value = run.val_accuracy
        return value if value is not None and math.isfinite(value) else 0.0

    ranked = sorted(enumerate(done), key=lambda ir: (not is_partial(ir[1]),
                                                      validation(ir[1]), ir[0]))
    return ranked[-1][1] if ranked else None


def finite(run: RunRecord) -> bool:
    """No non-finite test accuracy, test loss or validation accuracy: zoo-core fails a run
    whose model outputs NaN when evaluated, but a store written by an older one may hold it
    as completed, and the leaderboard never ranks it."""
    return all(value is None or math.isfinite(value)
               for value in (run.test_accuracy, run.test_loss, run.val_accuracy))


def aggregate(runs: Iterable[RunRecord], include_partial: bool = False,
              details: bool = False) -> list[dict[str, Any]]:
    """One row per (model, plugin, dataset, config_id) over the completed runs with a
    (:func:`finite`) test accuracy.

    Each seed counts once per row: when the same settings ran with the same seed more than
    once, the latest run (by ``started_at``) is the one averaged, and ``replaced`` counts the
    others. Runs on a subset of the training split (``limit`` set) are left out unless
    ``include_partial``; their rows have ``partial`` True.

    A group whose runs disagree about the data (checksums, or the test split size) is not
    averaged: its ``flagged`` says why, its mean and std are None, and it sorts last.
    ``details``: the rows also have the evidence of their runs' folders
    (``evidence.DETAIL_KEYS``: MACs, CPU, cores, TensorFlow, git), which render shows.

    Returns:
        rows with the keys of AGGREGATE_KEYS, best mean test accuracy first.
    """
    groups: dict[tuple[str, str, str, str], dict[int, list[RunRecord]]] = {}
    for run in sorted(runs, key=lambda run: run.started_at):  # stable: ties keep their order
        if run.status == "completed" and run.test_accuracy is not None and finite(run) and (
                include_partial or not is_partial(run)):
            # the plugin too: a model name built by another plugin is another model
            seeds = groups.setdefault((run.model, run.plugin, run.dataset, run.config_id), {})
            seeds.setdefault(run.seed, []).append(run)
    rows = []
    for seeds in groups.values():
        members = [same_seed[-1] for same_seed in seeds.values()]
        row = _aggregate_group(members)
        if details:
            row.update(evidence.summarize(members))
        row["replaced"] = sum(len(same_seed) - 1 for same_seed in seeds.values())
        rows.append(row)
    return sorted(rows, key=_rank_key)


def _aggregate_group(group: list[RunRecord]) -> dict[str, Any]:
    accuracies = [float(run.test_accuracy) for run in group]
    best = max(group, key=lambda run: run.test_accuracy)  # the first, on a tie
    flagged = _data_disagreement(group)
    mean = std = None
    if not flagged:
        mean = statistics.fmean(accuracies)
        std = statistics.stdev(accuracies) if len(group) > 1 else 0.0
    return {
        "model": best.model,
        "plugin": best.plugin,
        "dataset": best.dataset,
        "config_id": best.config_id,
        "config": best.config,
        "precision": precision_ran(best),
        "n": len(group),
        "seeds": sorted(run.seed for run in group),
        "test_acc_mean": mean,
        "test_acc_std": std,
        "best_run": best.run_id,
        "best_test_acc": best.test_accuracy,
        "params": max((run.params for run in group if run.params is not None), default=None),
        "train_seconds": _mean(run.train_seconds for run in group),
        "examples_per_sec": _mean(run.examples_per_sec for run in group),
        "flagged": flagged,
        "partial": is_partial(best),
        "replaced": 0,
        "imported": sorted(run.run_id for run in group if imported(run)),
    }


def _data_disagreement(group: list[RunRecord]) -> str:
    """Why the group's runs are not comparable ("" when they are)."""
    problems = []
    if len({json.dumps(run.data_checksums, sort_keys=True) for run in group}) > 1:
        problems.append("checksums disagree across runs")
    test_sizes = {run.split_sizes.get("test") for run in group}
    if len(test_sizes) > 1:
        sizes = ", ".join(sorted(map(str, test_sizes)))
        problems.append(f"test split sizes disagree across runs ({sizes})")
    return "data differs: " + "; ".join(problems) if problems else ""


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def _rank_key(row: dict[str, Any]) -> tuple:
    mean = row["test_acc_mean"]
    return (bool(row["flagged"]), -(mean if mean is not None else 0.0),
            row["model"], row["dataset"], row["config_id"])


def runs_rows(runs: Iterable[RunRecord], include_partial: bool = False,
              details: bool = False) -> list[dict[str, Any]]:
    """One row per completed run (keys of RUN_KEYS), best test accuracy first; runs on a
    subset of the training split only with ``include_partial``; with ``details``, also the
    run's evidence (``evidence.DETAIL_KEYS``)."""
    completed = [run for run in runs if run.status == "completed" and finite(run)
                 and (include_partial or not is_partial(run))]
    completed.sort(key=lambda run: (run.test_accuracy is None, -(run.test_accuracy or 0.0)))
    return [{**{key: getattr(run, key) for key in RUN_KEYS
                if key not in ("partial", "precision", "imported")},
             "precision": precision_ran(run), "partial": is_partial(run),
             "imported": imported(run),
             **(evidence.summarize([run]) if details else {})} for run in completed]


# -- rendering ---------------------------------------------------------------------------------


def render(rows: list[dict[str, Any]], fmt: str = "simple", runs: bool = False,
           empty: str = "no completed runs yet") -> str:
    """Render aggregate rows (or, with ``runs=True``, the rows of runs_rows).

    Args:
        rows: from aggregate() or runs_rows(), each optionally with a "command" (shown as
            the last column) and the evidence of ``details`` (shown before it).
        fmt: any tabulate format name, or "csv" (full precision) or "json".
        runs: the rows are per-run rows.
        empty: what a human format shows when there are no rows.

    Returns:
        the text, without a trailing newline. No rows gives ``empty`` for humans, "[]" for
        json and a header line for csv.

    Raises:
        UsageError: an unknown format.
    """
    if fmt not in MACHINE_FORMATS and fmt not in tabulate.tabulate_formats:
        choices = ", ".join([*MACHINE_FORMATS, *sorted(tabulate.tabulate_formats)])
        raise UsageError(f"unknown format {fmt!r}; choose one of: {choices}")
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if fmt == "csv":
        return _csv(rows, list(rows[0]) if rows else list(RUN_KEYS if runs else AGGREGATE_KEYS))
    if not rows:
        return empty
    headers, aligns, table, notes = (_runs_table if runs else _aggregate_table)(rows)
    if any(row.get("partial") for row in rows):
        notes = [*notes, PARTIAL_NOTE]
    if any(_imported_mark(row) for row in rows):
        notes = [*notes, IMPORTED_NOTE]
    if fmt in _WRAPPING_FORMATS:  # elsewhere (markdown, csv ...) a cell stays one line
        column = headers.index("config")
        for cells in table:
            cells[column] = textwrap.fill(cells[column], _CONFIG_WIDTH, break_long_words=False)
    if "macs" in rows[0]:  # from `zoo leaderboard --details`
        headers, aligns = [*headers, *evidence.DETAIL_HEADERS], [*aligns, *evidence.DETAIL_ALIGNS]
        table = [[*cells, *evidence.detail_cells(row, format_count)]
                 for cells, row in zip(table, rows)]
    if "command" in rows[0]:  # from `zoo leaderboard --commands`
        code = "`{}`" if fmt in ("github", "pipe") else "{}"
        headers, aligns = [*headers, "command"], [*aligns, "left"]
        table = [[*cells, code.format(row["command"])] for cells, row in zip(table, rows)]
    text = tabulate.tabulate(
        table, headers=headers, tablefmt=fmt, colalign=aligns, disable_numparse=True
    )
    return "\n\n".join([text, "\n".join(notes)]) if notes else text


def _csv(rows: list[dict[str, Any]], keys: list[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_cell(value) for key, value in row.items()})
    return out.getvalue().rstrip("\n")


def _csv_cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return "" if value is None else value


def _aggregate_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[str], list, list]:
    """Headers, column alignments, cells, and one footnote per flagged row."""
    headers = ["rank", "model", "dataset", "config", "precision", "test acc", "n", "best run",
               "params", "train time", "ex/s"]
    aligns = ["right", "left", "left", "left", "left", "right", "right", "left", "right",
              "right", "right"]
    table, notes, rank = [], [], 0
    builders: dict[str, set] = {}
    for row in rows:
        builders.setdefault(row["model"], set()).add(row.get("plugin"))
    for row, label in zip(rows, _config_labels(rows)):
        if row["flagged"]:
            notes.append(f"[{len(notes) + 1}] {row['model']} on {row['dataset']} ({label}), "
                         f"not averaged: {row['flagged']}")
            position, accuracy = "-", f"flagged [{len(notes)}]"
        else:
            rank += 1
            position = str(rank)
            accuracy = format_accuracy(row["test_acc_mean"], row["test_acc_std"], row["n"])
        table.append([
            position,
            # the plugin, when runs of this name were built by more than one
            row["model"] + (f" ({row.get('plugin')})" if len(builders[row["model"]]) > 1 else ""),
            row["dataset"],
            label,
            row["precision"],
            accuracy,
            str(row["n"]),
            row["best_run"] + _imported_mark(row),
            format_count(row["params"]),
            format_duration(row["train_seconds"]),
            format_rate(row["examples_per_sec"]),
        ])
    return headers, aligns, table, notes


def _runs_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[str], list, list]:
    """Headers, column alignments, cells, and (no) footnotes."""
    headers = ["run", "model", "dataset", "config", "precision", "seed", "test acc", "val acc",
               "epochs", "params", "train time", "ex/s", "started (UTC)"]
    aligns = ["left", "left", "left", "left", "left", "right", "right", "right", "right",
              "right", "right", "right", "left"]
    labels = _config_labels(rows)
    table = [
        [
            row["run_id"] + _imported_mark(row),
            row["model"],
            row["dataset"],
            label,
            row["precision"],
            str(row["seed"]),
            format_accuracy(row["test_accuracy"]),
            format_accuracy(row["val_accuracy"]),
            str(row["epochs_run"]),
            format_count(row["params"]),
            format_duration(row["train_seconds"]),
            format_rate(row["examples_per_sec"]),
            row["started_at"][:16].replace("T", " "),
        ]
        for row, label in zip(rows, labels)
    ]
    return headers, aligns, table, []


def _imported_mark(row: dict[str, Any]) -> str:
    """`` (imported)`` after a run that came from a pack (the best run, in an aggregate row)."""
    flag = row.get("imported")
    return " (imported)" if flag is True or (isinstance(flag, list)
                                             and row.get("best_run") in flag) else ""


def config_labels(rows: list[dict[str, Any]]) -> list[str]:
    """A short label per row, as the table's config column shows it: the settings that vary
    within its (model, dataset), else the config id (``limit=N`` on a quick try)."""
    return _config_labels(rows)


def _config_labels(rows: list[dict[str, Any]]) -> list[str]:
    """A short label per row: the settings that vary within its (model, dataset), else the id."""
    configs: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        configs.setdefault((row["model"], row["dataset"]), []).append(row["config"])
    def value(config, key):  # one model's: one it does not name is at the model's default
        found = recorded_setting(config, key)
        return "default" if found is None else format_setting(found)

    labels = []
    for row in rows:
        siblings = configs[(row["model"], row["dataset"])]
        keys = sorted({key for config in siblings for key in config} - {"bf16"})  # a column
        varying = [k for k in keys if len({value(c, k) for c in siblings}) > 1]
        if row.get("partial") and "limit" not in varying:
            varying.insert(0, "limit")  # a quick try says so, whatever its siblings
        label = " ".join(f"{k}={value(row['config'], k)}" for k in varying)
        labels.append(label or row["config_id"])
    return labels


def format_setting(value: Any) -> str:
    """Short, and exact: ``0.001`` -> ``"0.001"``, ``0.1234567891`` -> ``"0.1234567891"``."""
    if not isinstance(value, float):
        return str(value)
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


# -- cell formats ------------------------------------------------------------------------------


def format_accuracy(mean: float | None, std: float | None = None, n: int = 1) -> str:
    """``0.9123, 0.0015, 3`` -> ``"91.23 ± 0.15 %"``; a single run shows no spread."""
    if mean is None:
        return ""
    if n > 1 and std is not None:
        return f"{mean * 100:.2f} ± {std * 100:.2f} %"
    return f"{mean * 100:.2f} %"


def format_count(count: int | None) -> str:
    """``1234567`` -> ``"1.2M"``, ``93412`` -> ``"93.4k"``, ``512`` -> ``"512"``."""
    if count is None:
        return ""
    for divisor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if round(count / divisor, 1) >= 1:
            return f"{count / divisor:.1f}{suffix}"
    return str(count)


def format_duration(seconds: float | None) -> str:
    """``192`` -> ``"3m12s"``, ``4.25`` -> ``"4.2s"``, ``3725`` -> ``"1h02m"``."""
    if seconds is None:
        return ""
    if round(seconds, 1) < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def format_rate(per_second: float | None) -> str:
    """``12345.6`` -> ``"12,346"``."""
    return "" if per_second is None else f"{per_second:,.0f}"
