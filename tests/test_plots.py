"""zoo_core.results.plots: valid PNGs, odd inputs, atomic writes, and no eager matplotlib import."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from zoo_core.results import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def read_png(path):
    """Check the signature and decode the file; return (height, width)."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    import matplotlib.image

    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[2] in (3, 4)
    return pixels.shape[:2]


def only_file(folder):
    """The folder holds exactly one file: no temporary left behind."""
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 1, names
    return folder / names[0]


def epochs(n):
    return [
        {"epoch": i, "train_loss": 1.0 / i, "train_accuracy": 0.7 + 0.02 * i,
         "val_loss": 1.1 / i + 0.01 * i, "val_accuracy": 0.68 + 0.02 * i - 0.004 * i * i}
        for i in range(1, n + 1)
    ]


def test_learning_curves_png(tmp_path):
    out = tmp_path / "figs" / "curves.png"  # the folder is created
    result = plots.learning_curves(epochs(8), out, title="cnn on fashion-mnist")
    assert result == out
    assert only_file(out.parent) == out
    h, w = read_png(out)
    assert 350 <= h <= 450 and 950 <= w <= 1050  # about 10x4 in at 100 dpi


def test_learning_curves_single_epoch(tmp_path):
    out = plots.learning_curves(epochs(1), str(tmp_path / "one.png"))
    assert only_file(tmp_path) == out
    read_png(out)


def test_learning_curves_none_values(tmp_path):
    rows = epochs(5)
    rows[0]["val_loss"] = None
    rows[2]["train_accuracy"] = None
    rows[3]["val_accuracy"] = float("nan")
    for key in ("train_loss", "val_loss"):  # a whole series missing
        del rows[4][key]
    rows.append({"epoch": 6, "train_loss": None, "train_accuracy": None,
                 "val_loss": None, "val_accuracy": None})
    out = plots.learning_curves(rows, tmp_path / "gaps.png")
    read_png(out)
    no_val = [{**e, "val_loss": None, "val_accuracy": None} for e in epochs(3)]
    read_png(plots.learning_curves(no_val, tmp_path / "noval.png"))  # no best epoch to mark


def test_learning_curves_replaces_existing_file(tmp_path):
    out = tmp_path / "curves.png"
    out.write_bytes(b"stale")
    plots.learning_curves(epochs(3), out)
    assert only_file(tmp_path) == out
    read_png(out)


def test_confusion_matrix_png(tmp_path):
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 40, size=(10, 10))
    matrix[np.diag_indices(10)] = rng.integers(700, 1000, size=10)
    out = tmp_path / "confusion.png"
    assert plots.confusion_matrix(matrix, FASHION_CLASSES, out, title="cnn") == out
    assert only_file(tmp_path) == out
    h, w = read_png(out)
    assert 300 <= h <= 2000 and 300 <= w <= 2000


def test_confusion_matrix_empty_rows_and_tiny(tmp_path):
    matrix = np.array([[5, 1, 0], [0, 0, 0], [2, 0, 7]])  # a class with no examples
    read_png(plots.confusion_matrix(matrix, ["a", "b", "c"], tmp_path / "a.png"))
    read_png(plots.confusion_matrix(np.zeros((2, 2), int), ["x", "y"], tmp_path / "b.png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]


def test_confusion_matrix_rejects_bad_shapes(tmp_path):
    with pytest.raises(ValueError):
        plots.confusion_matrix(np.zeros((2, 3), int), ["a", "b"], tmp_path / "x.png")
    with pytest.raises(ValueError):
        plots.confusion_matrix(np.zeros((2, 2), int), ["a"], tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


def test_failed_save_leaves_no_temporary(tmp_path, monkeypatch):
    import matplotlib.figure

    def boom(self, *args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", boom)
    out = tmp_path / "curves.png"
    out.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        plots.learning_curves(epochs(2), out)
    assert only_file(tmp_path) == out and out.read_bytes() == b"old"


def test_import_does_not_load_matplotlib():
    code = ("import sys, zoo_core.results.plots; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    assert proc.stdout.strip() == "[]"


def test_figures_are_closed(tmp_path):
    import matplotlib.pyplot as plt

    before = set(plt.get_fignums())
    plots.learning_curves(epochs(3), tmp_path / "c.png")
    plots.confusion_matrix(np.eye(3, dtype=int), ["a", "b", "c"], tmp_path / "m.png")
    assert set(plt.get_fignums()) == before


def test_the_loss_legend_says_what_the_training_loss_includes(tmp_path, monkeypatch):
    """Issue 31: with label smoothing the training loss is not the validation loss's plain
    cross-entropy, and the picture and the epoch lines say so."""
    from zoo_core.train.metrics import loss_note, train_loss_terms

    legends = []
    save = plots._save

    def keep(fig, path, tight=False):
        legends.append([t.get_text() for t in fig.axes[0].get_legend().get_texts()])
        return save(fig, path, tight)

    monkeypatch.setattr(plots, "_save", keep)
    terms = train_loss_terms({"label_smoothing": 0.1, "weight_decay": 0.0, "lr": 0.001})
    assert terms == ["label smoothing 0.1"]
    plots.learning_curves(epochs(3), tmp_path / "a.png", train_loss_terms=terms)
    plots.learning_curves(epochs(3), tmp_path / "b.png")
    assert legends[0][:2] == ["train (with label smoothing 0.1)", "validation (plain cross-entropy)"]
    assert legends[1][:2] == ["train", "validation"]
    assert loss_note({"label_smoothing": 0.1, "weight_decay": 5e-4}) == (
        "train loss: the training objective, cross-entropy with label smoothing 0.1 and weight "
        "decay 0.0005; val loss: plain cross-entropy (the two are not comparable)")
    assert loss_note({"label_smoothing": 0.0, "weight_decay": 0.0}) == ""
