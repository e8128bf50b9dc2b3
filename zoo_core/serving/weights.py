"""Published weights: a model's declared packs (registry.toml's ``[models.NAME.weights.DATASET]``
over the plugin's ``register(weights=...)``), fetched, verified and imported as a run.

:func:`pull` is ``zoo pull``; :func:`ensure_weights` is what a command that needs a trained
model calls when the store has none (``zoo predict cnn IMAGE`` with no training);
:func:`check_declared` is the part of ``zoo check`` that checks the declarations. A pack
shipped inside the plugin's package is used first, offline; otherwise each URL in turn, with
a resumable download into ``$ZOO_HOME/packs``. Nothing is imported before the file's sha256
matches the declaration. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from zoo_core import paths
from zoo_core.catalogue import Zoo
from zoo_core.catalogue.weights import Weights
from zoo_core.data.downloads import DEFAULT_TIMEOUT, DownloadProgress, fetch_resumable
from zoo_core.errors import DataError, UsageError
from zoo_core.paths import RunFiles
from zoo_core.store.records import IMPORTED_TAG
from zoo_core.store.records import RunRecord
from zoo_core.store import Store
from zoo_core.serving import imports, packs
from zoo_core.serving.packs import PackError


def declared(zoo: Zoo, model: str) -> dict[str, Weights]:
    """The model's published weights by dataset: the plugin's, then registry.toml's over them.

    Raises:
        UsageError: the model is not installed.
    """
    spec = zoo.model(model)
    entry = zoo.catalogue.models.get(model)
    return {**spec.weights, **(entry.weights if entry is not None else {})}


def declaration(zoo: Zoo, model: str, dataset: str) -> Weights | None:
    """The model's weights for ``dataset``, or None when it declares none."""
    return declared(zoo, model).get(dataset)


@dataclass
class Pulled:
    """What :func:`pull` did: the run, where its pack came from, and whether it was there."""

    record: RunRecord
    source: str
    already: bool
    note: str = ""  # what of the run's folder could not be made (serving.imported)


def pulled_run(store: Store, model: str, weights: Weights) -> RunRecord | None:
    """The run imported from exactly these weights (its pack's sha256), if the store has it."""
    for run in store.runs(model=model, dataset=weights.dataset, status="completed",
                          tag=IMPORTED_TAG):
        if run.model == model and packs.provenance(Path(run.run_dir)).get("sha256") \
                == weights.sha256:
            return run
    return None


def pull(zoo: Zoo, store: Store, model: str, dataset: str,
         progress: DownloadProgress | None = None, timeout: float = DEFAULT_TIMEOUT) -> Pulled:
    """Get the model's published weights for ``dataset`` into ``store`` (see the module),
    downloading for at most ``timeout`` seconds in all. Pulls of the same weights on this
    machine at once take turns (a lock file beside the download): the second finds the
    first's file, or its run.

    Raises:
        UsageError: the model declares no weights for ``dataset``.
        PackError: no source gave a pack that verifies (each one's reason named), or the
            pack holds another run than the declaration says.
    """
    weights = declaration(zoo, model, dataset)
    if weights is None:
        others = ", ".join(sorted(declared(zoo, model))) or "none"
        raise UsageError(f"model {model!r} declares no published weights for {dataset!r} "
                         f"(it declares weights for: {others}); train it with "
                         f"`zoo run {model} --dataset {dataset}`")
    from zoo_core.serving import imported

    folder = paths.ensure_dir(paths.zoo_home() / "packs", "the packs folder", PackError)
    with _turn(folder / f"{model}-{weights.dataset}-{weights.sha256[:12]}.lock"):
        found = pulled_run(store, model, weights)
        if found is None:
            path, source = _fetch(zoo, model, weights, progress, time.monotonic() + timeout)
            try:
                _matches(path, model, weights, source)
            except PackError:
                if path.parent == folder:  # the declared sha256, another run: not kept either
                    path.unlink(missing_ok=True)
                raise
            done = imports.unpack(store, path, source=source)
    if found is not None:
        return Pulled(found, packs.provenance(Path(found.run_dir)).get("from", ""), True,
                      imported.complete(zoo, store, found))
    return Pulled(done.record, source, done.already, imported.complete(zoo, store, done.record))


@contextlib.contextmanager
def _turn(lock: Path):
    """Hold ``lock`` (an advisory lock on a file, released when the process ends, however
    it ends): one pull of the same weights at a time on this machine."""
    with open(lock, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def ensure_weights(zoo: Zoo, store: Store, model: str, dataset: str,
                   progress: DownloadProgress | None = None) -> str | None:
    """The id of a completed run of the model's published weights for ``dataset``, pulled
    first when the store lacks it; None when the model declares no weights for ``dataset``.

    Raises:
        PackError: the declared weights cannot be fetched or do not verify.
    """
    if declaration(zoo, model, dataset) is None:
        return None
    return pull(zoo, store, model, dataset, progress).record.run_id


def shipped_run(zoo: Zoo, model: str, dataset: str, folder: Path) -> RunRecord | None:
    """The run of the model's weights for ``dataset`` shipped in its plugin's package, its
    pack verified and extracted into the empty ``folder``, without touching any store (what
    a read-only server uses when its store has no run of the model); None when no shipped
    pack is declared, or the shipped file does not match its declaration.

    Raises:
        PackError: the shipped pack is damaged.
    """
    declared_weights = declaration(zoo, model, dataset)
    path = shipped_file(zoo, model, declared_weights) if declared_weights else None
    if path is None or _sha_problem(path, declared_weights):
        return None
    contents = packs.read(path, extract_to=folder)
    return RunRecord(**{**contents.run["record"], "run_dir": str(folder), "tags": [IMPORTED_TAG]})


def shipped_file(zoo: Zoo, model: str, weights: Weights) -> Path | None:
    """Where the pack shipped in the plugin's package is (``weights.file``), or None."""
    package = zoo.model(model).package
    if not weights.file or not package:
        return None
    try:
        found = resources.files(package.split(":")[0]).joinpath(weights.file)
    except (ImportError, TypeError, ValueError):
        return None
    return Path(str(found))


def _fetch(zoo: Zoo, model: str, weights: Weights, progress, deadline: float
           ) -> tuple[Path, str]:
    """A verified pack file of ``weights`` and where it came from: the shipped file, a copy
    fetched before, or a URL (downloads bounded by the declared size, else a pack's most,
    and ``deadline``)."""
    errors = []
    shipped = shipped_file(zoo, model, weights)
    if shipped is not None:
        problem = _sha_problem(shipped, weights)
        if not problem:
            return shipped, f"{zoo.model(model).plugin} package: {weights.file}"
        errors.append(f"{weights.file} in the plugin's package: {problem}")
    folder = paths.ensure_dir(paths.zoo_home() / "packs", "the packs folder", PackError)
    cached = folder / f"{model}-{weights.dataset}-{weights.sha256[:12]}{packs.EXTENSION}"
    part = cached.with_name(cached.name + ".part")
    if weights.urls and cached.is_file() and not _sha_problem(cached, weights):
        return cached, weights.urls[0]  # fetched before
    for url in weights.urls:
        try:
            fetch_resumable(url, part, progress, f"downloading {cached.name}",
                            limit=packs.MAX_TOTAL_BYTES, size=weights.size, deadline=deadline)
        except DataError as e:
            part.unlink(missing_ok=True)  # each URL starts afresh; within one, cuts resume
            errors.append(f"{url}: {e.template}")
            continue
        problem = _sha_problem(part, weights)
        if problem:
            part.unlink(missing_ok=True)
            errors.append(f"{url}: {problem}")
            continue
        part.replace(cached)
        return cached, url
    raise PackError(f"could not get the {model} weights for {weights.dataset}: "
                    + ("; ".join(errors) or "no file shipped and no URL declared")
                    + f" (declared in {weights.declared_in})")


def _sha_problem(path: Path, weights: Weights) -> str:
    """Why the file is not the declared pack ("" when its sha256 matches)."""
    try:
        digest = packs.file_sha256(path)
    except FileNotFoundError:
        return "no such file"
    except OSError as e:
        return e.strerror or str(e)
    if digest != weights.sha256:
        return (f"its sha256 is {digest}, not the declared {weights.sha256} "
                "(a damaged or different file): refused")
    return ""


def _matches(path: Path, model: str, weights: Weights, source: str) -> None:
    """Refuse a pack whose run is not the one declared (another model, dataset or config)."""
    run = packs.read(path).run["record"]
    have = (run.get("model"), run.get("dataset"), run.get("config_id"))
    if have != (model, weights.dataset, weights.config_id):
        raise PackError(f"{source}: the pack holds a run of {have[0]} on {have[1]} with config "
                        f"{have[2]}, but {weights.declared_in} declares {model} on "
                        f"{weights.dataset} with config {weights.config_id}")


def check_declared(zoo: Zoo, model: str) -> list[tuple[str, str, str]]:
    """``zoo check``'s view of the model's declared weights: one (name, status, message) per
    dataset, ``weights:DATASET``. A shipped file must exist, match its sha256, and hold a run
    with the declared config id and test accuracy (to 4 decimals); URLs are not fetched (their
    syntax was checked when the declaration was read)."""
    out = []
    for dataset, weights in sorted(declared(zoo, model).items()):
        name = f"weights:{dataset}"
        urls = f"{len(weights.urls)} URL(s), not fetched"
        shipped = shipped_file(zoo, model, weights)
        if shipped is None:
            out.append((name, "passed", f"no shipped file; {urls}"))
            continue
        problem = _sha_problem(shipped, weights) or _facts_problem(shipped, weights)
        if problem:
            out.append((name, "failed", f"{weights.file} ({shipped}): {problem}; declared in "
                                        f"{weights.declared_in}"))
        else:
            out.append((name, "passed", f"{weights.file}: sha256, config_id {weights.config_id} "
                                        f"and test accuracy {weights.test_accuracy:.4f} match; "
                                        f"{urls}"))
    return out


def _facts_problem(path: Path, weights: Weights) -> str:
    """Why the pack's run is not the declared one ("" when its facts match)."""
    try:
        run = packs.read(path).run["record"]
        with zipfile.ZipFile(path) as zf:
            metrics = json.loads(zf.read(RunFiles.METRICS))
        accuracy = float(metrics["test"]["accuracy"])
    except PackError as e:
        return str(e)
    except (KeyError, TypeError, ValueError):
        return f"its {RunFiles.METRICS} has no test accuracy"
    if run.get("config_id") != weights.config_id:
        return (f"the pack's run has config_id {run.get('config_id')}, the declaration says "
                f"{weights.config_id}")
    if round(accuracy, 4) != round(weights.test_accuracy, 4):
        return (f"the pack's test accuracy is {accuracy:.4f}, the declaration says "
                f"{weights.test_accuracy:.4f}")
    return ""
