"""The leaderboard as one query: the database keeps each seed's latest completed run, groups
the runs by (model, plugin, dataset, config_id), averages them and ranks the groups, so a
page of a 10,000-run store reads about a hundred rows rather than decoding every run.

:func:`group_rows` is what :meth:`zoo_core.store.sql.SQLStore.leaderboard` runs; the rules are
:func:`zoo_core.results.leaderboard.aggregate`'s (the reference, for runs in memory), and a
test keeps the two equal on SQLite and PostgreSQL. A backend spells three things its own way
(:class:`Dialect`): a JSON field as text, whether a run's tags hold a tag, and a string
aggregate.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable

from zoo_core.store.records import IMPORTED_TAG, recorded_precision

# the (model, plugin, dataset, config_id) a row stands for
GROUP = "model, plugin, dataset, config_id"
FINITE = "BETWEEN -1e308 AND 1e308"  # false for NaN and infinities, in both databases


@dataclass(frozen=True)
class Dialect:
    """How a backend spells a JSON text field (``{column}``, ``{key}``), a run's tags
    holding the tag given as a parameter (``{column}``), and a comma-joined aggregate
    (``{expr}``)."""

    json_text: str
    has_tag: str
    concat: str


SQLITE = Dialect(json_text="json_extract({column}, '$.{key}')",
                 has_tag="EXISTS (SELECT 1 FROM json_each({column}) WHERE json_each.value = ?)",
                 concat="group_concat({expr}, ',')")
POSTGRESQL = Dialect(json_text="({column}::jsonb ->> '{key}')",
                     has_tag="jsonb_exists({column}::jsonb, ?)",
                     concat="string_agg(CAST({expr} AS TEXT), ',')")


def statement(dialect: Dialect, include_partial: bool, tag: str | None) -> tuple[str, list]:
    """The query and its parameters: one row per group, ranked as the leaderboard ranks."""
    args: list[Any] = [IMPORTED_TAG]
    where = [
        "status = 'completed'", f"test_accuracy {FINITE}",
        f"(test_loss IS NULL OR test_loss {FINITE})",
        f"(val_accuracy IS NULL OR val_accuracy {FINITE})",
    ]
    if not include_partial:
        where.append(dialect.json_text.format(column="config", key="limit") + " IS NULL")
    if tag is not None:
        where.append(dialect.has_tag.format(column="tags"))
        args.append(tag)
    test_size = dialect.json_text.format(column="split_sizes", key="test")
    seed = f"PARTITION BY {GROUP}, seed"
    concat = dialect.concat.format
    # Only the narrow columns go through the window functions' sorts; the best run's wide
    # ones (its config) are joined back for the hundred-odd groups at the end.
    query = f"""
WITH done AS (
    SELECT rowid AS seq, run_id, model, plugin, dataset, config_id, seed, started_at, test_accuracy,
           params, train_seconds, examples_per_sec, data_checksums,
           COALESCE(CAST({test_size} AS TEXT), 'None') AS test_size,
           CASE WHEN {dialect.has_tag.format(column="tags")} THEN 1 ELSE 0 END AS imported
    FROM runs WHERE {' AND '.join(where)}
), seeded AS (
    SELECT done.*, ROW_NUMBER() OVER latest AS newest, COUNT(*) OVER whole AS same_seed,
           LAST_VALUE(started_at) OVER whole AS seed_at, LAST_VALUE(seq) OVER whole AS seed_seq
    FROM done
    WINDOW latest AS (PARTITION BY {GROUP}, seed ORDER BY started_at DESC, seq DESC),
           whole AS (latest ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
), kept AS (
    SELECT seeded.*, ROW_NUMBER() OVER (PARTITION BY {GROUP}
                                        ORDER BY test_accuracy DESC, seed_at, seed_seq) AS best
    FROM seeded WHERE newest = 1
), grouped AS (
    SELECT {GROUP}, COUNT(*) AS n, AVG(test_accuracy) AS mean,
           SUM(test_accuracy * test_accuracy) AS squares,
           SUM(same_seed - 1) AS replaced,
           AVG(train_seconds) AS train_seconds, AVG(examples_per_sec) AS examples_per_sec,
           CASE WHEN COUNT(DISTINCT data_checksums) > 1 THEN 1 ELSE 0 END AS checksums_differ,
           CASE WHEN COUNT(DISTINCT test_size) > 1 THEN 1 ELSE 0 END AS sizes_differ,
           {concat(expr="test_size")} AS test_sizes,
           {concat(expr="seed")} AS seeds,
           {concat(expr="CASE WHEN imported = 1 THEN run_id END")} AS imported,
           MAX(CASE WHEN best = 1 THEN seq END) AS best_seq,
           MAX(CASE WHEN best = 1 THEN run_id END) AS best_run,
           MAX(CASE WHEN best = 1 THEN test_accuracy END) AS best_test_acc,
           MAX(params) AS params
    FROM kept GROUP BY {GROUP}
)
SELECT grouped.*, runs.config, runs.precision
FROM grouped JOIN runs ON runs.rowid = grouped.best_seq
ORDER BY checksums_differ + sizes_differ > 0,
         CASE WHEN checksums_differ + sizes_differ > 0 THEN 0 ELSE mean END DESC,
         model, dataset, config_id"""
    return query, args


def partial_statement(dialect: Dialect, tag: str | None) -> tuple[str, list]:
    """How many completed quick tries (``--limit``) each (model, dataset) has: what the
    leaderboard leaves out unless asked."""
    where = ["status = 'completed'",
             dialect.json_text.format(column="config", key="limit") + " IS NOT NULL"]
    args: list[Any] = []
    if tag is not None:
        where.append(dialect.has_tag.format(column="tags"))
        args.append(tag)
    return (f"SELECT model, dataset, COUNT(*) AS partial FROM runs WHERE {' AND '.join(where)} "
            "GROUP BY model, dataset"), args


def best_statement(dialect: Dialect) -> str:
    """The run a model name means on a dataset (parameters: model, dataset), as
    :func:`zoo_core.results.leaderboard.best_run` chooses it: completed, with a folder, full
    runs before quick tries, then the highest validation accuracy (none, or not finite: 0),
    the latest on a tie."""
    limit = dialect.json_text.format(column="config", key="limit")
    return ("WHERE status = 'completed' AND run_dir <> '' AND model = ? AND dataset = ? "
            f"ORDER BY CASE WHEN {limit} IS NULL THEN 1 ELSE 0 END DESC, "
            f"CASE WHEN val_accuracy {FINITE} THEN val_accuracy ELSE 0 END DESC, "
            "started_at DESC, rowid DESC LIMIT 1")


def to_row(group: dict[str, Any]) -> dict[str, Any]:
    """A group as :func:`zoo_core.results.leaderboard.aggregate` makes its row."""
    config = json.loads(group["config"])
    flagged = _flagged(group)
    n = int(group["n"])
    mean = std = None
    if not flagged:
        mean = float(group["mean"])
        # the sum of squares about the mean, from the sum of squares (one pass in the query)
        squares = float(group["squares"]) - n * mean * mean
        std = math.sqrt(max(0.0, squares) / (n - 1)) if n > 1 else 0.0
    return {
        "model": group["model"],
        "plugin": group["plugin"],
        "dataset": group["dataset"],
        "config_id": group["config_id"],
        "config": config,
        "precision": group["precision"] or recorded_precision(config),
        "n": n,
        "seeds": sorted(int(seed) for seed in _split(group["seeds"])),
        "test_acc_mean": mean,
        "test_acc_std": std,
        "best_run": group["best_run"],
        "best_test_acc": float(group["best_test_acc"]),
        "params": group["params"],
        "train_seconds": _float(group["train_seconds"]),
        "examples_per_sec": _float(group["examples_per_sec"]),
        "flagged": flagged,
        "partial": config.get("limit") is not None,
        "replaced": int(group["replaced"]),
        "imported": sorted(_split(group["imported"])),
    }


def rows(run: Callable[[str, list], Any], dialect: Dialect, include_partial: bool = False,
         tag: str | None = None, keep: Callable[[str, str], bool] = lambda model, dataset: True
         ) -> tuple[list[dict[str, Any]], int]:
    """The leaderboard's rows (those whose model and dataset ``keep`` accepts) and how many
    quick tries it left out, from two queries through ``run(statement, args)``."""
    found = [to_row(dict(group)) for group in run(*statement(dialect, include_partial, tag))
             if keep(group["model"], group["dataset"])]
    left_out = 0
    if not include_partial:
        left_out = sum(int(row["partial"]) for row in run(*partial_statement(dialect, tag))
                       if keep(row["model"], row["dataset"]))
    return found, left_out


def _flagged(group: dict[str, Any]) -> str:
    problems = []
    if group["checksums_differ"]:
        problems.append("checksums disagree across runs")
    if group["sizes_differ"]:
        sizes = ", ".join(sorted(set(_split(group["test_sizes"]))))
        problems.append(f"test split sizes disagree across runs ({sizes})")
    return "data differs: " + "; ".join(problems) if problems else ""


def _split(joined: str | None) -> list[str]:
    return [part for part in (joined or "").split(",") if part]


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
