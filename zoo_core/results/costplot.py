"""The cost/accuracy view of the leaderboard (``zoo leaderboard --plot FILE.png``).

Two panels side by side: test accuracy against training time per run, and against the
parameter count. One labelled point per leaderboard row, with its seed spread (the sample
standard deviation over seeds) as an error bar; the rows no other row beats at a lower or
equal cost (the Pareto front) are filled and joined by a step line. Drawn with matplotlib's
Agg backend and written atomically, as :mod:`zoo_core.results.plots` writes every figure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo_core.errors import UsageError
from zoo_core.results import plots
from zoo_core.results.leaderboard import format_count

SIZE = (12.0, 5.0)  # inches
FRONT_COLOUR = "#d62728"
OTHER_COLOUR = "#7f7f7f"
# (row key, axis label) per panel; a row without the figure is left out of that panel
PANELS = (("train_seconds", "training time per run (s)"), ("params", "parameters"))


def points(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the plot shows of leaderboard rows (from ``leaderboard.aggregate``): one point
    per averaged row (a flagged row has no mean and is left out), with its label, accuracy
    and spread in percent, its costs, and whether it is on each panel's Pareto front."""
    shown = [row for row in rows if row.get("test_acc_mean") is not None]
    labels = _labels(shown)
    found = [{"label": label, "accuracy": 100 * row["test_acc_mean"],
              "std": 100 * (row.get("test_acc_std") or 0.0), "n": row["n"],
              **{key: row.get(key) for key, _ in PANELS}}
             for row, label in zip(shown, labels)]
    for key, _ in PANELS:
        front = pareto_front([(p[key], p["accuracy"]) for p in found])
        for p, on in zip(found, front):
            p[f"front_{key}"] = on
    return found


def pareto_front(costs: list[tuple[float | None, float]]) -> list[bool]:
    """For each (cost, accuracy): no other point has a lower or equal cost and a higher
    accuracy, or the same accuracy at a lower cost. A point without a cost is on no front."""
    def beaten(c, a):
        return any(oc is not None and (oc <= c and oa > a or oc < c and oa >= a)
                   for oc, oa in costs)
    return [c is not None and not beaten(c, a) for c, a in costs]


def _labels(rows: list[dict[str, Any]]) -> list[str]:
    """``model``, with ``bf16`` when it computed in bfloat16, the dataset when there are
    several, and the config id when the same label would name two rows."""
    datasets = {row["dataset"] for row in rows}
    labels = [(f"{row['dataset']}: " if len(datasets) > 1 else "") + row["model"]
              + (" bf16" if row.get("precision") == "bfloat16" else "") for row in rows]
    return [label + (f" [{row['config_id'][:6]}]" if labels.count(label) > 1 else "")
            for label, row in zip(labels, rows)]


def draw(rows: list[dict[str, Any]], path, title: str = "") -> list[dict[str, Any]]:
    """Draw the cost/accuracy view of leaderboard ``rows`` into the PNG ``path``.

    Returns:
        the plotted points (:func:`points`), one per averaged row.

    Raises:
        UsageError: ``path``'s folder does not exist, or no row has a mean accuracy.
    """
    target = Path(path)
    if not target.parent.is_dir():
        raise UsageError(f"cannot write the plot {target}: its folder {target.parent} does not "
                         "exist (create it, or name a file in an existing folder)")
    found = points(rows)
    if not found:
        raise UsageError("no averaged leaderboard rows to plot: complete some runs first "
                         "(`zoo run cnn --dataset fashion`)")
    plt = plots._pyplot()
    fig, axes = plt.subplots(1, len(PANELS), figsize=SIZE)
    try:
        for ax, (key, label) in zip(axes, PANELS):
            _panel(ax, found, key, label)
        axes[0].set_ylabel("test accuracy (%), mean ± std over seeds")
        fig.suptitle(title or "test accuracy against cost: the Pareto front in red")
        fig.tight_layout()
        plots._save(fig, target)
    finally:
        plt.close(fig)
    return found


def _panel(ax, found: list[dict[str, Any]], key: str, label: str) -> None:
    shown = [p for p in found if p[key] is not None]
    for p in shown:
        on = p[f"front_{key}"]
        colour = FRONT_COLOUR if on else OTHER_COLOUR
        ax.errorbar(p[key], p["accuracy"], yerr=p["std"] if p["n"] > 1 else None, fmt="o",
                    color=colour, mfc=colour if on else "white", capsize=3, zorder=3)
        ax.annotate(p["label"], (p[key], p["accuracy"]), textcoords="offset points",
                    xytext=(6, 4), fontsize=8)
    front = sorted((p[key], p["accuracy"]) for p in shown if p[f"front_{key}"])
    if len(front) > 1:
        ax.step([c for c, _ in front], [a for _, a in front], where="post",
                color=FRONT_COLOUR, alpha=0.6, zorder=2)
    costs = [p[key] for p in shown if p[key] > 0]
    if costs and max(costs) / min(costs) > 10:
        ax.set_xscale("log")
    ax.margins(x=0.15)  # room for the labels right of the last points
    if key == "params":  # 421.6k, as the leaderboard writes them
        from matplotlib.ticker import FuncFormatter

        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: format_count(int(v))))
    ax.set_xlabel(label + (", log scale" if ax.get_xscale() == "log" else ""))
    ax.grid(alpha=0.3)
    if not shown:
        ax.text(0.5, 0.5, "not recorded", transform=ax.transAxes, ha="center", color="grey")
