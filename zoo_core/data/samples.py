"""A few real test images written as files, to try ``zoo predict`` on (``zoo datasets
--samples DIR``).

From a dataset's test split (the official files, verified as for training), in the forms
``zoo predict`` reads and users have at hand:

- ``CLASS.png``: the first test image, enlarged ten times (nearest neighbour), as a PNG;
- ``CLASS-on-white.jpg``: the second, inverted (a dark object on white, as a photo usually
  is: ``zoo predict --invert`` turns it back) and enlarged to 300 pixels, as an RGB JPEG;
- ``three.npy``: the next three, as they are, one uint8 array ``[3, H, W]`` (``[3, H, W, C]``
  for colour images).

CLASS is the image's class name in lower case, other characters turned into ``-``
(``ankle-boot.png``, ``pullover-on-white.jpg`` for Fashion-MNIST).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo_core.data.splits import Data


@dataclass(frozen=True)
class SampleFile:
    """A file written: its path, which test images it holds, their classes, and what it is."""

    path: Path
    indices: tuple[int, ...]
    classes: tuple[str, ...]
    what: str


def slug(name: str) -> str:
    """``Ankle boot`` -> ``ankle-boot``, ``T-shirt/top`` -> ``t-shirt-top``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "image"


def write_samples(loaded: Data, folder: Path) -> list[SampleFile]:
    """Write the sample files of ``loaded``'s test split into ``folder`` (made if needed;
    files of the same names are replaced)."""
    from PIL import Image  # lazily: pillow stays out of the light commands

    folder.mkdir(parents=True, exist_ok=True)
    images = loaded.x_test[:5]
    if images.dtype != np.uint8:  # a plugin's float32 images in [0, 1]
        images = np.rint(np.clip(images, 0, 1) * 255).astype(np.uint8)
    labels = [loaded.classes[int(k)] for k in loaded.y_test[:5]]
    written = []

    def picture(array: np.ndarray) -> Image.Image:
        return Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)

    first = folder / f"{slug(labels[0])}.png"
    h, w = images.shape[1:3]
    picture(images[0]).resize((10 * w, 10 * h), Image.NEAREST).save(first)
    written.append(SampleFile(first, (0,), (labels[0],), f"enlarged to {10 * w}x{10 * h}"))

    second = folder / f"{slug(labels[1])}-on-white.jpg"
    side = 300
    picture(255 - images[1]).convert("RGB").resize((side, side * h // w), Image.BILINEAR).save(
        second, quality=95)
    written.append(SampleFile(second, (1,), (labels[1],),
                              f"inverted, {side}x{side * h // w} RGB JPEG (needs --invert)"))

    three = folder / "three.npy"
    np.save(three, images[2:5, ..., 0] if images.shape[-1] == 1 else images[2:5])
    shape = ", ".join(str(d) for d in np.load(three).shape)
    written.append(SampleFile(three, (2, 3, 4), tuple(labels[2:5]), f"uint8 [{shape}]"))
    return written
