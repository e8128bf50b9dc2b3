"""Input files for ``zoo predict``, read and converted to a dataset's image shape.

What a file holds is told by its first bytes, not its name:

- ``.npy`` arrays (``numpy.save``): one image ``[H, W]`` or ``[H, W, C]``, or a batch
  ``[N, H, W]`` or ``[N, H, W, C]``; uint8 (0-255, scaled as the trainer scales it), other
  integers within 0-255, or floats already in [0, 1] (as the trainer sees them).
- IDX files (``-ubyte``, ``.idx``; gzip-compressed or not): a batch ``[N, H, W]`` of
  unsigned bytes, like the dataset's own files (read by :mod:`zoo_core.data.idx`).
- images in any format Pillow reads (PNG, JPEG, GIF, BMP, TIFF, WebP), of any size and
  colour mode: EXIF rotation applied; 16-bit greyscale scaled to 8 bits; transparent areas
  laid on the background (black; white with ``invert``, which turns it black); converted to
  greyscale (Pillow's ``L``, ITU-R 601-2 luma: 0.299 R + 0.587 G + 0.114 B) for a
  one-channel dataset or to RGB for a three-channel one; scaled to fit H x W keeping its
  aspect ratio (Lanczos), the rest padded with the background, centred.

``invert`` turns every value v into 255 - v (1 - v for floats): Fashion-MNIST and MNIST
images are light objects on a black background, so a photo or a drawing on a white
background needs it. A one-channel picture whose edges come out light gets a note saying so.

Every problem is an :class:`ImageFileError`: one line naming the file.
"""

from __future__ import annotations

import gzip
import io
import math
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo_core.data.idx import GZIP_MAGIC, parse_idx
from zoo_core.errors import DataError, ZooError

NPY_MAGIC = b"\x93NUMPY"
LIGHT_EDGES = 128  # a mean edge value (0-255) from here up reads as a light background
MAX_UNZIPPED = 256 << 20  # the most a gzip-compressed input file may decompress to


class ImageFileError(ZooError):
    """An input file that cannot be classified: unreadable, not an image, wrong shape."""


@dataclass
class Images:
    """The images of one input file, in the dataset's shape."""

    path: str
    array: np.ndarray  # [N, H, W, C]: uint8, or float32 in [0, 1]
    batch: bool  # a batch file (named ``path[i]`` per image) rather than one image
    notes: list[str] = field(default_factory=list)  # advice that does not stop it

    def names(self) -> list[str]:
        return [f"{self.path}[{i}]" for i in range(len(self.array))] if self.batch \
            else [self.path]


@dataclass(frozen=True)
class Limits:
    """The most an untrusted file may unpack to (``zoo serve``'s uploads): bytes once
    decompressed, and a picture's pixels (width x height, read from its header before it is
    decoded, so that a decompression bomb is refused, not decoded)."""

    max_bytes: int
    max_pixels: int


def read_images(path: str | Path, image_shape, invert: bool = False) -> Images:
    """Read one input file as images of ``image_shape`` (H, W, C).

    Raises:
        ImageFileError: one line naming the file and what is wrong with it.
    """
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except IsADirectoryError:
        raise ImageFileError(f"{name}: is a folder, not a file") from None
    except OSError as e:
        raise ImageFileError(f"{name}: cannot be read ({e.strerror or e})") from None
    return decode_images(raw, name, image_shape, invert)


def decode_images(raw: bytes, name: str, image_shape, invert: bool = False,
                  limits: Limits | None = None) -> Images:
    """The images of a file's bytes ``raw`` (named ``name`` in messages), as
    :func:`read_images` reads them; within ``limits`` when given.

    Raises:
        ImageFileError: one line naming the file and what is wrong with it.
    """
    if not raw:
        raise ImageFileError(f"{name}: the file is empty")
    data = _gunzip(raw, name, limits) if raw[:2] == GZIP_MAGIC else raw
    if data[:6] == NPY_MAGIC:
        found = _from_array(_load_npy(data, name), name, image_shape)
    elif data[:3] == b"\x00\x00\x08":
        found = _from_array(_parse_idx(data, name), name, image_shape, "IDX ")
    else:
        found = _decode_picture(data, name, image_shape, invert, limits)
        invert = False  # done while decoding: the background depends on it
    if invert:
        found.array = 1.0 - found.array if found.array.dtype != np.uint8 else 255 - found.array
    return found


def _gunzip(raw: bytes, name: str, limits: Limits | None = None) -> bytes:
    """The decompressed bytes, read as a stream and never past what they can be: an IDX file
    up to the size its header declares (what follows is refused unread), anything else up
    to ``limits.max_bytes`` (default :data:`MAX_UNZIPPED`), so that a small file cannot fill
    the memory."""
    cap = limits.max_bytes if limits is not None else MAX_UNZIPPED
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
            head = f.read(4)
            if len(head) == 4 and head[:3] == b"\x00\x00\x08" and head[3]:
                head += f.read(4 * head[3])
                if len(head) < 4 + 4 * head[3]:
                    return head  # a truncated header: parse_idx says so
                size = math.prod(struct.unpack(f">{head[3]}I", head[4:]))
                if len(head) + size > cap:
                    raise ImageFileError(f"{name}: its IDX header declares {size:,} bytes of "
                                         f"images, more than the {cap:,} zoo reads: refused")
                data = head + f.read(size)
                if len(data) == len(head) + size and f.read(1):
                    raise ImageFileError(f"{name}: has trailing bytes: more than the "
                                         f"{len(data):,} its IDX header promises (not read)")
                return data
            data = head + f.read(cap + 1 - len(head))
    except (OSError, EOFError, zlib.error) as e:
        raise ImageFileError(f"{name}: corrupted or truncated gzip file ({e})") from None
    if len(data) > cap:
        raise ImageFileError(f"{name}: decompresses to more than {cap:,} bytes: refused")
    return data


def _load_npy(data: bytes, name: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ImageFileError(f"{name}: not a readable .npy array ({e})") from None


def _parse_idx(data: bytes, name: str) -> np.ndarray:
    try:
        return parse_idx(data, name, "check the file")
    except DataError as e:
        raise ImageFileError(str(e)) from None


def _from_array(x: np.ndarray, name: str, image_shape, kind: str = "") -> Images:
    """An array as images [N, H, W, C]: its values checked, its shape matched."""
    h, w, c = image_shape
    expected = f"[H, W], [N, H, W] or [N, H, W, C] with H, W, C = {h}, {w}, {c}" if c == 1 \
        else f"[H, W, C] or [N, H, W, C] with H, W, C = {h}, {w}, {c}"
    shape = tuple(x.shape)
    if shape[-3:] == (h, w, c) and x.ndim in (3, 4):
        batch, x = x.ndim == 4, x.reshape((-1, h, w, c))
    elif c == 1 and shape[-2:] == (h, w) and x.ndim in (2, 3):
        batch, x = x.ndim == 3, x.reshape((-1, h, w, 1))
    else:
        what = " (a labels file?)" if x.ndim == 1 else ""
        raise ImageFileError(f"{name}: {kind}array of shape {list(shape)}{what} is not an image "
                             f"of this dataset: expected {expected}")
    return Images(name, _pixel_values(x, name), batch)


def _pixel_values(x: np.ndarray, name: str) -> np.ndarray:
    """uint8 as it is; integers within 0-255 as uint8; floats within [0, 1] as float32."""
    if x.dtype == np.uint8:
        return x
    if x.dtype == np.bool_ or not (np.issubdtype(x.dtype, np.integer)
                                   or np.issubdtype(x.dtype, np.floating)):
        raise ImageFileError(f"{name}: values of type {x.dtype}, expected uint8 (0-255) or "
                             "floats in [0, 1]")
    low, high = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    if np.issubdtype(x.dtype, np.integer):
        if low < 0 or high > 255:
            raise ImageFileError(f"{name}: {x.dtype} values from {low:g} to {high:g}, expected "
                                 "0-255")
        return x.astype(np.uint8)
    if not (0.0 <= low and high <= 1.0):  # also NaN
        raise ImageFileError(f"{name}: {x.dtype} values from {low:g} to {high:g}, expected "
                             "floats in [0, 1] (as the model sees them): save uint8 0-255, or "
                             "divide by 255")
    return x.astype(np.float32)


def _decode_picture(data: bytes, name: str, image_shape, invert: bool,
                    limits: Limits | None = None) -> Images:
    """A picture through Pillow, converted as the module says."""
    from PIL import Image, ImageOps, UnidentifiedImageError  # only when a picture is read

    h, w, c = image_shape
    if c not in (1, 3):
        raise ImageFileError(f"{name}: pictures convert to 1 or 3 channels, and this dataset "
                             f"has {c}: give a .npy array of shape [N, {h}, {w}, {c}]")
    background = 255 if invert else 0
    try:
        with Image.open(io.BytesIO(data)) as opened:  # the header only, so far
            _check_size(opened.size, name, limits)
            opened.load()
            picture = _flattened(ImageOps.exif_transpose(opened), background, c)
    except UnidentifiedImageError:
        raise ImageFileError(f"{name}: not an image (PNG, JPEG, ...), a .npy array or an IDX "
                             "file") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageFileError(f"{name}: damaged or truncated image ({e})") from None
    fitted = ImageOps.pad(picture, (w, h), method=Image.Resampling.LANCZOS,
                          color=(background,) * c if c == 3 else background)
    x = np.asarray(fitted, dtype=np.uint8).reshape(1, h, w, c)
    found = Images(name, 255 - x if invert else x, batch=False)
    if c == 1 and _light_edges(np.asarray(picture)) != invert:
        found.notes.append(
            f"{name}: its edges are {'dark' if invert else 'light'}, and the model learnt "
            f"light objects on a dark background: try {'without' if invert else 'with'} "
            "--invert")
    return found


def _check_size(size: tuple[int, int], name: str, limits: Limits | None) -> None:
    """Refuse a picture of more than ``limits.max_pixels`` pixels before decoding it."""
    if limits is not None and size[0] * size[1] > limits.max_pixels:
        raise ImageFileError(f"{name}: a picture of {size[0]} x {size[1]} pixels, more than the "
                             f"{limits.max_pixels:,} accepted: refused (scale it down)")


def _light_edges(picture: np.ndarray) -> bool:
    """Whether a greyscale picture's outermost rows and columns are light on average."""
    edges = np.concatenate([picture[0], picture[-1], picture[:, 0], picture[:, -1]])
    return float(edges.mean()) >= LIGHT_EDGES


def _flattened(picture, background: int, channels: int):
    """``picture`` in mode L (one channel) or RGB, 8 bits, transparency laid on
    ``background``."""
    from PIL import Image

    if picture.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):  # 16-bit greyscale
        values = np.asarray(picture, dtype=np.float64)
        top = 65535.0 if picture.mode != "I" or values.max() > 255 else 255.0
        picture = Image.fromarray(np.round(values * (255.0 / top)).clip(0, 255).astype(np.uint8))
    elif picture.mode == "F":
        values = np.asarray(picture, dtype=np.float64)
        top = 1.0 if values.max() <= 1.0 else 255.0
        picture = Image.fromarray(np.round(values * (255.0 / top)).clip(0, 255).astype(np.uint8))
    if picture.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in picture.info:
        rgba = picture.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (background, background, background, 255))
        picture = Image.alpha_composite(base, rgba)
    return picture.convert("L" if channels == 1 else "RGB")
