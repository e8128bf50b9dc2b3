"""Data: finding, downloading, verifying and splitting image data.

The flow for a dataset declared in registry.toml (IDX files: Fashion-MNIST, MNIST):

- ``search.py`` looks for its four files in the folder the caller names (``data_dir``),
  ``$ZOO_DATA_DIR``, the zoo's cache (``$ZOO_HOME/datasets/NAME``), then its ``system_dirs``;
- ``downloads.py`` fetches them from the official URLs into the cache when they are nowhere
  local, verified before they are renamed into place (progress goes to a
  :class:`DownloadProgress` the caller passes);
- ``idx.py`` reads, decompresses, checksums and parses each file;
- ``splits.py`` carves the validation split (fixed seed) and converts to float32 [0, 1];
  it also checks what a plugin's own loader returns, for a dataset a plugin registers;
- ``loading.py`` runs the flow (:func:`load`) or only reports it (:func:`inspect`).

Every problem is a one-line :class:`~zoo_core.errors.DataError` naming the file or folder
and the fix, with settings named by marker (:func:`zoo_core.errors.setting`), never by a
command-line spelling; a folder the user named that does not exist is a UsageError.
Nothing here writes to the terminal or imports TensorFlow.
"""

from zoo_core.data.downloads import DownloadProgress, download
from zoo_core.data.idx import FIX, decompress, idx_problem, parse_idx, read_raw, sha256, verify_file
from zoo_core.data.loading import FileStatus, inspect, load
from zoo_core.data.search import cache_dir, locate, search_dirs
from zoo_core.data.splits import PIXEL_SCALE, Data, as_images, make_splits, to_float

__all__ = [
    "Data", "load", "inspect", "FileStatus",
    "locate", "search_dirs", "cache_dir",
    "download", "DownloadProgress",
    "verify_file", "parse_idx", "idx_problem", "decompress", "read_raw", "sha256", "FIX",
    "make_splits", "to_float", "as_images", "PIXEL_SCALE",
]
