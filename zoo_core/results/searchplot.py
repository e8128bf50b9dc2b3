"""The picture of a search (``zoo sweep show ID --plot FILE``): its optimization history
(each trial's objective in the order proposed, the best so far as a step line, pruned trials
marked where they stopped) and one panel per searched setting against the objective.

It draws what :func:`zoo_core.runs.search.summary` returns (the same data as ``--json``),
with matplotlib's Agg backend like the zoo's other figures (:mod:`zoo_core.results.plots`).
It reads no store and no search: what to draw comes in as a dict.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

from zoo_core.results.plots import _pyplot, _save

_COLOURS = {"completed": "#1f77b4", "pruned": "#d62728"}
_BEST = "#2ca02c"
PANEL = 3.6  # inches per panel


def search_plot(part: Mapping[str, Any], path, title: str = "") -> Path:
    """Draw ``part`` (``search.summary``) as a PNG at ``path``; the path written."""
    names = list(part["space"])
    done = [v for v in part["values"] if v["value"] is not None
            and v["state"] in _COLOURS and math.isfinite(v["value"])]
    plt = _pyplot()
    columns = min(3, 1 + len(names))
    rows = math.ceil((1 + len(names)) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(PANEL * columns, PANEL * rows),
                             layout="constrained", squeeze=False)
    try:
        scale, unit = (100.0, " (%)") if part["objective"].endswith("accuracy") else (1.0, "")
        label = f"{part['objective']}{unit}"
        _history(axes[0][0], done, scale, label, part["objective"].endswith("accuracy"))
        for i, name in enumerate(names, start=1):
            _setting(axes[i // columns][i % columns], name, part["space"][name], done, scale,
                     label)
        for i in range(1 + len(names), rows * columns):
            axes[i // columns][i % columns].set_axis_off()
        fig.suptitle(title or "search")
        return _save(fig, path)
    finally:
        plt.close(fig)


def _history(ax, done, scale: float, label: str, maximize: bool) -> None:
    for state, colour in _COLOURS.items():
        shown = [v for v in done if v["state"] == state]
        ax.scatter([v["number"] for v in shown], [scale * v["value"] for v in shown],
                   c=colour, s=24, label=state, marker="o" if state == "completed" else "x")
    xs, best, top = [], [], None
    for v in sorted((v for v in done if v["state"] == "completed"), key=lambda v: v["number"]):
        if top is None or (v["value"] > top if maximize else v["value"] < top):
            top = v["value"]
        xs.append(v["number"])
        best.append(scale * top)
    if xs:
        ax.step(xs, best, where="post", color=_BEST, label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(label)
    ax.set_title("optimization history")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)


def _setting(ax, name: str, space: str, done, scale: float, label: str) -> None:
    choices = space[len("choice("):-1].split(",") if space.startswith("choice(") else None
    for state, colour in _COLOURS.items():
        shown = [v for v in done if v["state"] == state and v["params"].get(name) is not None
                 and (choices is None or v["params"][name] in choices)]
        xs = [choices.index(v["params"][name]) if choices else float(v["params"][name])
              for v in shown]
        ax.scatter(xs, [scale * v["value"] for v in shown], c=colour, s=24,
                   marker="o" if state == "completed" else "x")
    if choices:  # in the declared order, every choice shown
        ax.set_xticks(range(len(choices)), choices)
        ax.set_xlim(-0.5, len(choices) - 0.5)
    if space.startswith("log("):
        ax.set_xscale("log")
    ax.set_xlabel(f"{name}  {space}")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
