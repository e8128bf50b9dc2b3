"""PNG figures for a run: learning curves, a confusion matrix and a grid of test predictions.

matplotlib is imported lazily, inside the functions, so that importing this module (and
``zoo list``) stays fast; it renders with the non-interactive Agg backend, so no display is
needed. Every figure is written atomically: to a temporary file in the target folder, then
``os.replace``-d over the destination, so a reader never sees a half-written PNG.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from zoo_core.paths import RunFiles
from zoo_core.train.metrics import train_loss_terms

DPI = 100
LEARNING_CURVES_SIZE = (10.0, 4.0)  # inches

_TRAIN_COLOUR = "#1f77b4"
_VAL_COLOUR = "#d62728"
_BEST_COLOUR = "#555555"


def learning_curves(epochs: list[dict], path, title: str = "",
                    train_loss_terms: Sequence[str] = ()) -> Path:
    """Plot loss and accuracy (%) per epoch, train vs validation, and save a PNG at ``path``.

    ``epochs`` holds dicts with the keys ``epoch`` (1-based), ``train_loss``,
    ``train_accuracy``, ``val_loss`` and ``val_accuracy`` (accuracy as a fraction 0..1). A
    missing, ``None`` or non-finite value skips that point. The epoch with the best validation
    accuracy (the earliest one on a tie) is marked with a dashed vertical line.
    ``train_loss_terms`` (``train.metrics.train_loss_terms``) name what the training loss adds
    to the validation loss's cross-entropy: the loss panel's legend says so.
    """
    rows = sorted(
        (e for e in epochs if _number(e.get("epoch")) is not None),
        key=lambda e: e["epoch"],
    )
    val_x, val_acc = _series(rows, "val_accuracy")
    best_epoch = val_x[val_acc.index(max(val_acc))] if val_acc else None

    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=LEARNING_CURVES_SIZE, layout="constrained")
    try:
        _curves_panel(ax_loss, rows, "loss", 1.0, best_epoch, train_loss_terms)
        _curves_panel(ax_acc, rows, "accuracy", 100.0, best_epoch)
        heading = title or "learning curves"
        if best_epoch is not None:
            heading += f"  (best val accuracy {max(val_acc) * 100:.2f}% at epoch {best_epoch})"
        fig.suptitle(heading)
        return _save(fig, path)
    finally:
        plt.close(fig)


def compare_curves(runs: dict[str, list[dict]], path, title: str = "") -> Path:
    """Overlay several runs' learning curves in one PNG: loss and accuracy (%) per epoch,
    each run in its own colour, validation solid and training dashed.

    ``runs`` maps a label (a run id) to its epochs, as :func:`learning_curves` takes them.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=LEARNING_CURVES_SIZE, layout="constrained")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    try:
        for ax, name, scale in ((axes[0], "loss", 1.0), (axes[1], "accuracy", 100.0)):
            epochs = []
            for i, (label, rows) in enumerate(runs.items()):
                rows = sorted((e for e in rows if _number(e.get("epoch")) is not None),
                              key=lambda e: e["epoch"])
                epochs += [int(e["epoch"]) for e in rows]
                for split, style in (("val", "-"), ("train", "--")):
                    xs, ys = _series(rows, f"{split}_{name}", scale)
                    if xs:
                        ax.plot(xs, ys, style, color=colours[i % len(colours)], linewidth=1.6,
                                label=f"{label} ({'validation' if split == 'val' else 'train'})")
            ax.set_title(name)
            ax.set_xlabel("epoch")
            if epochs:
                _epoch_axis(ax, min(epochs), max(epochs))
            ax.grid(alpha=0.3)
        if axes[1].get_legend_handles_labels()[0]:
            axes[1].legend(fontsize="x-small", loc="lower right")
        fig.suptitle(title or "learning curves compared")
        return _save(fig, path)
    finally:
        plt.close(fig)


def _series(rows: list[dict], key: str, scale: float = 1.0) -> tuple[list[int], list[float]]:
    """The epochs that have a number for ``key``, and those numbers times ``scale``."""
    xs, ys = [], []
    for e in rows:
        v = _number(e.get(key))
        if v is not None:
            xs.append(int(e["epoch"]))
            ys.append(v * scale)
    return xs, ys


def _curves_panel(ax, rows: list[dict], name: str, scale: float, best_epoch: int | None,
                  terms: Sequence[str] = ()) -> None:
    """One panel of the learning curves: ``train_<name>`` and ``val_<name>`` per epoch."""
    all_epochs = [int(e["epoch"]) for e in rows]
    marker = "o" if len(all_epochs) <= 30 else None
    labels = {"train": "train", "val": "validation"}
    if terms:  # the two losses are not the same quantity: say so beside each curve
        labels = {"train": f"train (with {', '.join(terms)})",
                  "val": "validation (plain cross-entropy)"}
    for split, colour in (("train", _TRAIN_COLOUR), ("val", _VAL_COLOUR)):
        xs, ys = _series(rows, f"{split}_{name}", scale)
        if xs:
            ax.plot(xs, ys, color=colour, marker=marker, markersize=4, linewidth=1.8,
                    label=labels[split])
    if best_epoch is not None:
        ax.axvline(best_epoch, color=_BEST_COLOUR, linestyle="--", linewidth=1.2, zorder=1,
                   label=f"best epoch {best_epoch}")
    ax.set_title(name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(name + (" (%)" if scale != 1.0 else ""))
    if all_epochs:
        _epoch_axis(ax, min(all_epochs), max(all_epochs))
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small", framealpha=0.9)
    else:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center",
                va="center", color="grey")


def _epoch_axis(ax, lo: int, hi: int) -> None:
    """Whole-epoch ticks from ``lo`` to ``hi``, with a little room at both ends."""
    from matplotlib.ticker import MaxNLocator  # lazily: matplotlib stays out of light commands

    if hi - lo < 10:  # few epochs: a tick on each (MaxNLocator would add halves)
        ax.set_xticks(range(lo, hi + 1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    pad = 0.5 if hi - lo < 4 else 0.03 * (hi - lo)
    ax.set_xlim(lo - pad, hi + pad)


def confusion_matrix(matrix, classes: Sequence[str], path, title: str = "") -> Path:
    """Draw a confusion matrix (rows = true class, columns = predicted) and save a PNG.

    Cell colour is the row-normalised fraction (the share of each true class predicted as each
    class); the raw count is written in every cell. The title carries the overall accuracy.
    """
    counts = np.asarray(matrix)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {counts.shape}")
    n = counts.shape[0]
    classes = [str(c) for c in classes]
    if len(classes) != n:
        raise ValueError(f"{len(classes)} class names for a {n}x{n} confusion matrix")
    counts = counts.astype(np.int64)
    row_sums = counts.sum(axis=1, keepdims=True)
    norm = np.divide(counts, row_sums, out=np.zeros(counts.shape, dtype=float),
                     where=row_sums > 0)
    total = int(counts.sum())
    accuracy = float(np.trace(counts)) / total if total else None

    plt = _pyplot()
    from matplotlib.ticker import PercentFormatter  # lazily: matplotlib stays out of light commands

    cmap = plt.get_cmap("Blues")
    side = min(max(4.0, 0.55 * n + 2.5), 20.0)
    fig, ax = plt.subplots(figsize=(side + 1.4, side), layout="constrained")
    try:
        image = ax.imshow(norm, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
        bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
        bar.ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
        bar.set_label("share of true class")
        if n <= 40:
            _write_counts(ax, counts, norm, cmap, side)
        _matrix_axes(ax, classes)
        acc = f"accuracy {accuracy * 100:.2f}% ({int(np.trace(counts))}/{total})" \
            if accuracy is not None else "accuracy n/a (no examples)"
        ax.set_title(f"{title}\n{acc}" if title else acc)
        # A square image beside a colourbar can defeat the layout engine, whose margins then
        # clip the "true" label at large n; a tight bounding box always frames everything.
        return _save(fig, path, tight=True)
    finally:
        plt.close(fig)


def _write_counts(ax, counts, norm, cmap, side: float) -> None:
    """Write each cell's count, in a colour that reads on the cell's shade."""
    n = counts.shape[0]
    # Fit the widest count in a cell: a digit is ~0.6 em wide, plus some margin.
    digits = max(3, len(str(int(counts.max()))) if counts.size else 1)
    cell_pt = 0.8 * side / n * 72
    fontsize = max(5.0, min(10.0, cell_pt / (0.75 * digits)))
    for i in range(n):
        for j in range(n):
            r, g, b, _ = cmap(norm[i, j])
            dark = 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.5
            colour = "white" if dark else ("black" if counts[i, j] else "#b0b0b0")
            ax.text(j, i, str(counts[i, j]), ha="center", va="center",
                    color=colour, fontsize=fontsize)


def _matrix_axes(ax, classes: list[str]) -> None:
    """Class names on both axes, no ticks or frame, thin white lines between the cells."""
    n = len(classes)
    ax.set_xticks(range(n), labels=classes, rotation=45, ha="right",
                  rotation_mode="anchor")
    ax.set_yticks(range(n), labels=classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.tick_params(length=0)
    ax.set_xticks([k - 0.5 for k in range(n + 1)], minor=True)
    ax.set_yticks([k - 0.5 for k in range(n + 1)], minor=True)
    ax.grid(which="minor", color="white", linewidth=0.8)
    ax.tick_params(which="minor", length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)


def predictions_grid(chosen, path, title: str = "") -> Path:
    """Draw a sample of test images (a :class:`zoo_core.results.predictions.Sample`) in a grid,
    each captioned with its predicted class and probability and, when wrong, in red with its
    true class; save a PNG at ``path``.

    One image of all the cells and one text per caption (not an axes per cell): drawn at the
    end of every run, it must be quick.
    """
    n = len(chosen.index)
    cols = max(1, min(6, n))
    rows = max(1, math.ceil(n / cols))
    h, w, c = chosen.images.shape[1:] if n else (28, 28, 1)
    gap = max(2, w // 7)  # pixels between cells
    inch = 1.9 / (w + gap)  # inches per pixel: a cell is 1.9 inches wide
    caption = math.ceil(0.34 / inch)  # pixels above each cell: two lines of text
    cell_h, cell_w = h + caption, w + gap
    mosaic = np.full((rows * cell_h, cols * cell_w - gap, c), 255, np.uint8)
    for k in range(n):
        top, left = (k // cols) * cell_h + caption, (k % cols) * cell_w
        mosaic[top:top + h, left:left + w] = chosen.images[k]
    plt = _pyplot()
    height = mosaic.shape[0] * inch  # the mosaic's, below the title's 0.55 inches
    fig = plt.figure(figsize=(mosaic.shape[1] * inch + 0.2, height + 0.65))
    try:
        ax = fig.add_axes((0.1 / fig.get_figwidth(), 0.1 / fig.get_figheight(),
                           1 - 0.2 / fig.get_figwidth(), height / fig.get_figheight()))
        ax.imshow(mosaic[..., 0] if c == 1 else mosaic, cmap="gray" if c == 1 else None,
                  vmin=0, vmax=255, interpolation="nearest")
        ax.set_axis_off()
        for k in range(n):
            wrong = chosen.predicted[k] != chosen.labels[k]
            text = f"{chosen.classes[chosen.predicted[k]]} {100 * chosen.confidence[k]:.0f}%"
            ax.text((k % cols) * cell_w + w / 2, (k // cols) * cell_h + caption - 1.5,
                    text + (f"\ntrue: {chosen.classes[chosen.labels[k]]}" if wrong else ""),
                    ha="center", va="bottom", fontsize=8, linespacing=1.1,
                    color=_VAL_COLOUR if wrong else "black")
        mistakes = int(np.sum(chosen.predicted != chosen.labels))
        summary = (f"{mistakes} of {n} wrong, in red (the most confident mistakes first, "
                   "then a fixed random sample)")
        fig.suptitle(f"{title}\n{summary}" if title else summary, fontsize=9)
        return _save(fig, path)
    finally:
        plt.close(fig)


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or None (missing, None, NaN or infinite)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def run_plots(run_dir: Path, title: str, epochs: list[dict], confusion=None,
              classes: Sequence[str] = (), sample=None,
              train_loss_terms: Sequence[str] = ()) -> list[Path]:
    """Draw a run's learning curves (from ``epochs``) and, given a ``confusion`` matrix, its
    test confusion matrix, and given a ``sample`` (:func:`zoo_core.results.predictions.load`),
    its predictions picture, into ``run_dir``; returns the files drawn. They are optional: a
    file that cannot be written (or drawn) is a warning, since the run's record does not
    depend on it."""
    drawn = []
    try:
        if epochs:
            drawn.append(learning_curves(epochs, run_dir / RunFiles.CURVES, title=title,
                                         train_loss_terms=train_loss_terms))
        if confusion is not None:
            drawn.append(confusion_matrix(confusion, classes, run_dir / RunFiles.CONFUSION,
                                          title=f"{title}: test split"))
    except OSError as e:
        warnings.warn(f"cannot draw the plots in {run_dir}: {e.strerror or e}; the run is "
                      "recorded all the same", stacklevel=2)
    if sample is not None:
        try:
            drawn.append(predictions_grid(sample, run_dir / RunFiles.PREDICTIONS,
                                          title=f"{title}: test split"))
        except Exception as e:  # noqa: BLE001 - a picture never costs a run
            why = e.strerror if isinstance(e, OSError) and e.strerror else \
                f"{type(e).__name__}: {e}"
            warnings.warn(f"cannot draw {RunFiles.PREDICTIONS} in {run_dir}: {why}; the run is "
                          "recorded all the same", stacklevel=2)
    return drawn


def draw_missing(record, epochs: list[dict]) -> list[Path]:
    """The plots of a completed run that are missing from its folder (a signal cut in while
    they were drawn, or they were deleted), drawn from its stored ``epochs``, its
    metrics.json and its predictions.npz; returns the files drawn (none when nothing is
    missing, or the folder has no metrics.json: the zoo writes it before the plots)."""
    from zoo_core.results import predictions  # here: predictions.py draws nothing itself

    run_dir = Path(record.run_dir) if record.run_dir else None
    if record.status != "completed" or run_dir is None or \
            not (run_dir / RunFiles.METRICS).is_file():  # not a folder this zoo finished
        return []
    curves = epochs if not (run_dir / RunFiles.CURVES).exists() else []
    confusion, classes = None, ()
    if not (run_dir / RunFiles.CONFUSION).exists():
        try:
            test = json.loads((run_dir / RunFiles.METRICS).read_text(encoding="utf-8"))["test"]
            confusion, classes = np.asarray(test["confusion"]), test["classes"]
        except (OSError, ValueError, KeyError, TypeError):
            pass  # no readable metrics.json: no confusion matrix to draw
    sample = None if (run_dir / RunFiles.PREDICTIONS).exists() else predictions.load(run_dir)
    if not curves and confusion is None and sample is None:
        return []
    title = f"{record.model} on {record.dataset}, seed {record.seed}"
    return run_plots(run_dir, title, curves, confusion, classes, sample,
                     train_loss_terms(record.config or {}))


def _pyplot():
    import matplotlib  # lazily: matplotlib stays out of light commands

    # Select Agg before pyplot is first imported. If the caller already imported pyplot with a
    # backend of its own (a notebook, say), leave it: switching would close its figures, and
    # savefig renders to PNG with any backend.
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path, tight: bool = False) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            fig.savefig(out, format="png", dpi=DPI, facecolor="white",
                        **({"bbox_inches": "tight", "pad_inches": 0.15} if tight else {}))
        os.chmod(tmp, 0o644)  # mkstemp makes the file 0600; a figure is for sharing
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target

