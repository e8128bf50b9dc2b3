"""The leaderboard's accuracy-against-cost picture as SVG (what ``zoo leaderboard --plot``
draws with matplotlib), so that each point can link to its row's best run: the points and
Pareto fronts are :func:`zoo_core.results.costplot.points`'s, only placed on a canvas here."""

from __future__ import annotations

import math
from typing import Any

from zoo_core.results import costplot
from zoo_core.results.leaderboard import format_count, format_duration

WIDTH, HEIGHT = 420, 260
LEFT, RIGHT, TOP, BOTTOM = 52, 16, 14, 40  # margins for the axes' labels


def panels(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One panel per cost (training time, parameters): each point placed, with its label,
    accuracy, spread, the best run it links to and whether it is on the front; [] when no
    row has a mean."""
    shown = [row for row in rows if row.get("test_acc_mean") is not None]
    found = costplot.points(shown)
    if not found:
        return []
    out = []
    for key, label in costplot.PANELS:
        placed = [(p, row) for p, row in zip(found, shown) if p[key] is not None and p[key] > 0]
        out.append(_panel(placed, key, label))
    return out


def _panel(placed: list, key: str, label: str) -> dict[str, Any]:
    costs = [p[key] for p, _ in placed]
    accuracies = [p["accuracy"] for p, _ in placed]
    log = bool(costs) and max(costs) / min(costs) > 10
    x = _scale(costs, LEFT, WIDTH - RIGHT, log)
    y = _scale(accuracies, HEIGHT - BOTTOM, TOP, False)
    fmt = format_duration if key == "train_seconds" else (lambda v: format_count(int(v)))
    points = [{"x": round(x(p[key]), 1), "y": round(y(p["accuracy"]), 1),
               "label": p["label"], "accuracy": p["accuracy"], "std": p["std"], "n": p["n"],
               "ylo": round(y(p["accuracy"] - p["std"]), 1),
               "yhi": round(y(p["accuracy"] + p["std"]), 1),
               "cost": fmt(p[key]), "front": p[f"front_{key}"], "run": row["best_run"]}
              for p, row in placed]
    front = sorted((pt["x"], pt["y"]) for pt in points if pt["front"])
    steps = []
    for i, (fx, fy) in enumerate(front):  # a step line, as matplotlib's where="post"
        steps.append(f"{'M' if i == 0 else 'L'}{fx},{front[i - 1][1] if i else fy}")
        steps.append(f"L{fx},{fy}")
    return {"key": key, "label": label + (", log scale" if log else ""), "points": points,
            "front": " ".join(steps) if len(front) > 1 else "", "width": WIDTH,
            "height": HEIGHT, "empty": not points,
            "yticks": _ticks(accuracies, y, "{:.1f}"),
            "xticks": _ticks(costs, x, None, fmt, log), "plot": {
                "x0": LEFT, "x1": WIDTH - RIGHT, "y0": HEIGHT - BOTTOM, "y1": TOP}}


def _scale(values: list[float], start: float, end: float, log: bool):
    """value -> pixel, with a margin of 10 % either side (a single value sits in the middle)."""
    f = math.log10 if log else (lambda v: v)
    low, high = (min(map(f, values)), max(map(f, values))) if values else (0.0, 1.0)
    pad = (high - low) * 0.1 or (abs(high) * 0.1 or 1.0)
    low, high = low - pad, high + pad
    return lambda v: start + (f(v) - low) / (high - low) * (end - start)


def _ticks(values: list[float], at, fmt: str | None, text=None, log: bool = False) -> list:
    """Three labelled ticks: the lowest, middle and highest value."""
    if not values:
        return []
    low, high = min(values), max(values)
    middle = math.sqrt(low * high) if log else (low + high) / 2
    shown = sorted({low, middle, high})
    return [{"at": round(at(v), 1), "text": fmt.format(v) if fmt else text(v)} for v in shown]
