"""Published weights as a model declares them: per dataset, a pack's sha256, where to get it
(``urls``, or a ``file`` shipped inside the plugin's package) and the run's facts it must
hold (``config_id``, ``test_accuracy``).

The same table shape in registry.toml (``[models.cnn.weights.fashion]``) and in a plugin's
registration (``register(..., weights={"fashion": {...}})``); :func:`parse_weights` checks
either and says what to fix. Fetching and importing them is :mod:`zoo_core.serving.weights`.
Nothing here imports TensorFlow.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable

from zoo_core.catalogue.specs import NAME_RULE, valid_name
from zoo_core.errors import ZooError, short_repr

WEIGHTS_KEYS = ("urls", "file", "sha256", "size", "config_id", "test_accuracy")
URL_SCHEMES = ("http", "https", "file")
_FILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*\Z")
_FIX = "`zoo pack RUN -o FILE` prints the declaration to paste"


@dataclass(frozen=True)
class Weights:
    """One model's published weights for one dataset."""

    dataset: str
    sha256: str  # of the pack file
    config_id: str  # the run's config id, as the leaderboard shows it
    test_accuracy: float  # the run's test accuracy (a fraction)
    urls: tuple[str, ...] = ()  # tried in order
    file: str = ""  # a pack inside the plugin's package (importlib.resources), tried first
    declared_in: str = ""  # where the declaration is, for messages
    size: int | None = None  # of the pack file in bytes, when declared: a download's bound


def parse_weights(value: Any, at: Callable[[str], str], error: type[ZooError]
                  ) -> dict[str, Weights]:
    """Check a ``weights`` table: dataset name -> declaration.

    Args:
        value: the table (a dict).
        at: where a key is, for messages: ``at("")`` the table itself, ``at("fashion")`` one
            dataset's declaration.
        error: the error to raise (RegistryError, PluginError).

    Raises:
        error: naming the place, the key, what it must be and what to do.
    """
    if not isinstance(value, dict):
        raise error(f"{at('')} weights must be a table of dataset name -> declaration, got "
                    f"{short_repr(value)}")
    out = {}
    for dataset, table in value.items():
        if not valid_name(dataset):
            raise error(f"{at('')} weights names dataset {short_repr(dataset)}, an invalid "
                        f"name: {NAME_RULE}")
        out[dataset] = _one(dataset, table, at(dataset), error)
    return out


def _one(dataset: str, t: Any, where: str, error: type[ZooError]) -> Weights:
    if not isinstance(t, dict):
        raise error(f"{where} must be a table with {', '.join(WEIGHTS_KEYS)}, got {short_repr(t)}")
    extra = sorted(set(t) - set(WEIGHTS_KEYS))
    if extra:
        raise error(f"{where} unknown key {short_repr(extra[0])}; allowed keys: "
                    f"{', '.join(sorted(WEIGHTS_KEYS))}")
    for key in ("sha256", "config_id", "test_accuracy"):
        if key not in t:
            raise error(f"{where} is missing {key!r}: {_FIX}")
    sha = t["sha256"]
    if not isinstance(sha, str) or not re.fullmatch("[0-9a-fA-F]{64}", sha):
        raise error(f"{where} sha256 must be the pack file's sha256, 64 hex digits, got "
                    f"{short_repr(sha)}: {_FIX}")
    if not isinstance(t["config_id"], str) or not t["config_id"].strip():
        raise error(f"{where} config_id must be the run's config id (a string), got "
                    f"{short_repr(t['config_id'])}: {_FIX}")
    accuracy = t["test_accuracy"]
    if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)) \
            or not 0 <= accuracy <= 1:
        raise error(f"{where} test_accuracy must be the run's test accuracy, a fraction "
                    f"from 0 to 1, got {short_repr(accuracy)}")
    urls = t.get("urls", [])
    if not isinstance(urls, list) or not all(isinstance(u, str) and _url_ok(u) for u in urls):
        raise error(f"{where} urls must be a list of http://, https:// or file:// URLs of the "
                    f"pack, got {short_repr(urls)}")
    file = t.get("file", "")
    if not isinstance(file, str) or (file and (not _FILE.match(file) or ".." in file.split("/"))):
        raise error(f"{where} file must be the pack's path inside the plugin's package, such "
                    f"as \"weights/{dataset}.zoopack\", got {short_repr(file)}")
    size = t.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
        raise error(f"{where} size must be the pack file's size in bytes, a positive integer, "
                    f"got {short_repr(size)}: {_FIX}")
    if not urls and not file:
        raise error(f"{where} needs urls (where the pack is published) or file (a pack shipped "
                    "in the plugin's package), or both")
    return Weights(dataset, sha.lower(), t["config_id"], float(accuracy), tuple(urls), file,
                   declared_in=where, size=size)


def _url_ok(url: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in URL_SCHEMES and bool(parts.netloc or parts.scheme == "file")
