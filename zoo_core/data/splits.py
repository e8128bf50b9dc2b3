"""A loaded dataset split three ways, and the checks on what a plugin's loader returns.

The validation split is carved from the training set with the dataset's fixed seed; the
test split is never touched. Images come out ``[N, H, W, C]``: uint8 as loaded (a quarter
of float32's memory; the trainer's graph and :func:`to_float` scale them to [0, 1] with the
same float32 multiply, :data:`PIXEL_SCALE`), or float32 in [0, 1] from a plugin's loader that
returns floats; labels int32 ``[N]``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from zoo_core.catalogue.specs import DatasetSpec
from zoo_core.errors import DataError, UsageError, first_line, location, setting


@dataclass
class Data:
    """A loaded dataset split three ways: images ``[N, H, W, C]`` uint8 (as loaded) or
    float32 in [0, 1]; :func:`to_float` gives what the model sees."""

    classes: tuple[str, ...]
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    checksums: dict[str, str] = field(default_factory=dict)
    source: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def split_sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}


def make_splits(spec: DatasetSpec, x_tr, y_tr, x_te, y_te, checksums: dict[str, str],
                source: str, limit: int | None = None) -> Data:
    """Carve the validation split (fixed seed); images ``[N, H, W, C]``, uint8 kept.

    Args:
        limit: keep only the first ``limit`` training examples (after the validation
            split is carved); a UsageError when it is below 1 or above what there is.
    """
    n_val = spec.validation
    if n_val >= len(y_tr):
        fix = (f"lower validation= in the register() call of plugin {spec.plugin}"
               if spec.load is not None else f"lower its validation in {spec.plugin}")
        raise DataError(
            f"dataset {spec.name!r}: validation split of {n_val} leaves no training data "
            f"({len(y_tr)} training examples); {fix}"
        )
    order = np.random.default_rng(spec.split_seed).permutation(len(y_tr))
    val_idx, train_idx = order[:n_val], order[n_val:]
    if limit is not None:
        if limit < 1:
            raise UsageError(f"{setting('limit')} must be at least 1, got {limit}")
        if limit > len(train_idx):
            raise UsageError(
                f"{setting('limit', limit)} is larger than the training split of {spec.name} "
                f"({len(train_idx)} examples after the validation split)"
            )
        train_idx = train_idx[:limit]
    return Data(
        classes=spec.classes,
        x_train=as_images(x_tr[train_idx]), y_train=y_tr[train_idx].astype(np.int32),
        x_val=as_images(x_tr[val_idx]), y_val=y_tr[val_idx].astype(np.int32),
        x_test=as_images(x_te), y_test=y_te.astype(np.int32),
        checksums=checksums, source=source,
    )


# uint8 pixels become float32 in [0, 1] by one float32 multiply by this, here and in the
# trainer's graph (zoo_core.train.graph), so both give the same bits.
PIXEL_SCALE = np.float32(1.0 / 255.0)


def as_images(x: np.ndarray) -> np.ndarray:
    """Images as ``[N, H, W, C]``: uint8 kept as it is, anything else as float32."""
    if x.ndim == 3:
        x = x[..., None]
    return x if x.dtype == np.uint8 else x.astype(np.float32, copy=False)


def to_float(x: np.ndarray, spec: DatasetSpec | None = None) -> np.ndarray:
    """Images as float32 ``[N, H, W, C]``; uint8 input is scaled to [0, 1] (what the model
    sees). ``spec`` is accepted for older callers and not used."""
    x = as_images(x)
    if x.dtype == np.uint8:
        return np.multiply(x, PIXEL_SCALE, dtype=np.float32)
    return x


def to_float_op(tf, images):
    """:func:`to_float` of a uint8 [N, H, W, C] tensor, as graph ops (cast, then times
    :data:`PIXEL_SCALE` in float32: the same float32 values), for graphs that take uint8
    images themselves (the exports of :mod:`zoo_core.serving.export`)."""
    return tf.cast(images, tf.float32) * tf.constant(PIXEL_SCALE, tf.float32)


def array_digest(x: np.ndarray, y: np.ndarray) -> str:
    """The sha256 of images and labels together (a plugin dataset's checksum)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(x).tobytes())
    h.update(np.ascontiguousarray(y).tobytes())
    return h.hexdigest()


def from_plugin(spec: DatasetSpec, data_dir) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Call a plugin's loader and check what it returns; DataError naming the plugin."""
    try:
        out = spec.load(data_dir)
        x_tr, y_tr, x_te, y_te = (np.asarray(a) for a in out)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - a plugin's loader failed
        raise DataError(f"dataset {spec.name!r} (plugin {spec.plugin}) failed to load: "
                        f"{type(e).__name__}: {first_line(e)}{location(e)}") from None
    for what, x, y in (("train", x_tr, y_tr), ("test", x_te, y_te)):
        problem = plugin_split_problem(spec, what, x, y)
        if problem:
            raise DataError(f"dataset {spec.name!r} (plugin {spec.plugin}): {problem}")
    return x_tr, y_tr, x_te, y_te


def plugin_split_problem(spec: DatasetSpec, what: str, x: np.ndarray, y: np.ndarray) -> str | None:
    """What is wrong with one split a plugin's loader returned, or None when it is sound."""
    h, w, c = spec.image_shape
    shape = x.shape if x.ndim == 4 else x.shape + (1,)
    wrong = "the plugin's loader is wrong"
    if x.ndim not in (3, 4) or shape[1:] != (h, w, c):
        return f"{what} images have shape {x.shape}, expected [N, {h}, {w}, {c}]"
    if not (x.dtype == np.uint8 or np.issubdtype(x.dtype, np.floating)):
        return f"{what} images are {x.dtype}, expected uint8 or float; {wrong}"
    if x.dtype != np.uint8 and x.size:
        low, high = float(np.min(x)), float(np.max(x))
        if not (0.0 <= low and high <= 1.0):  # also NaN
            return (f"{what} images are {x.dtype} with values from {low:g} to {high:g}, "
                    "expected float images in [0, 1]: return uint8 (the core scales it) or "
                    "scale the floats in the loader (e.g. x / 255)")
    if not np.issubdtype(y.dtype, np.integer):
        return f"{what} labels are {y.dtype}, expected integers; {wrong}"
    if y.ndim != 1 or len(y) != len(x):
        return f"{len(y)} {what} labels for {len(x)} images; {wrong}"
    if len(y) and (y.min() < 0 or y.max() >= spec.num_classes):
        return f"{what} labels outside 0..{spec.num_classes - 1}; {wrong}"
    return None
