"""``zoo site -o DIR``: the pages of ``zoo serve`` as static files, to publish a leaderboard
on any static host or open it from ``file://``.

The same templates over the same data (:mod:`zoo_core.web.pages`), with relative links:
``index.html`` (and ``index-partial.html`` with the quick tries), ``models/NAME.html``,
``runs/ID.html`` with the run's pictures copied beside it (``runs/ID/curves.png``),
``sweeps/ID.html``, each with its ``.json`` twin, and ``static/``. What needs a server is
left out: trying a model, comparing two runs, a training run's live updates.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from zoo_core import paths
from zoo_core.catalogue.zoo import Zoo
from zoo_core.errors import UsageError
from zoo_core.store.records import run_files
from zoo_core.store import Store
from zoo_core.web import pages
from zoo_core.web.render import Links, render

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")  # a page's file name
MARK = ".zoo-site"  # the file that says a folder was written by zoo site (and may be replaced)


@dataclass
class Built:
    """What :func:`build` wrote."""

    folder: Path
    pages: int
    pictures: int


def build(zoo: Zoo, store: Store, target: Path, force: bool = False) -> Built:
    """Write the site into ``target``, whole: into a temporary folder beside it, then moved
    into place (replacing an earlier site there; any other non-empty folder only with
    ``force``).

    Raises:
        UsageError: ``target`` is a non-empty folder that is not a site, without ``force``.
    """
    target = Path(target)
    if target.exists() and any(target.iterdir()) and not (target / MARK).exists() and not force:
        raise UsageError(f"{target} is not empty and was not written by `zoo site`: give an "
                         "empty or new folder, or --force to replace it")
    parent = paths.ensure_dir(target.absolute().parent, "the site's folder", UsageError)
    tmp = Path(tempfile.mkdtemp(prefix=".zoo-site-", dir=parent))
    try:
        built = _write(zoo, store, tmp)
        (tmp / MARK).write_text("written by zoo site\n")
        if target.exists():
            shutil.rmtree(target)
        os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Built(target, *built)


def _write(zoo: Zoo, store: Store, out: Path) -> tuple[int, int]:
    shutil.copytree(str(resources.files("zoo_core.web") / "static"), out / "static")
    count = pictures = 0
    for include_partial, name in ((False, "index"), (True, "index-partial")):
        data = pages.leaderboard(store, include_partial)
        count += _page(out, name, "leaderboard.html", "", data, site=True)
    count += _page(out, "runs", "runs.html", "", pages.runs(store))
    count += _page(out, "sweeps", "sweeps.html", "", pages.sweeps(store))
    for record in store.runs():
        if not SAFE_NAME.fullmatch(record.run_id):
            continue  # a name that is not a file name (from a foreign store): no page
        data = pages.run(zoo, store, record.run_id)
        count += _page(out, f"runs/{record.run_id}", "run.html", "../", data, site=True)
        pictures += _copy_pictures(record, out / "runs" / record.run_id)
    for name in sorted({r.model for r in store.runs()} | set(zoo.models)):
        try:
            data = pages.model(zoo, store, name)
        except pages.NotFound:  # a model neither installed nor in the catalogue
            continue
        count += _page(out, f"models/{name}", "model.html", "../", data, site=True,
                       canvas=False)
    for sweep in store.sweeps():
        if not SAFE_NAME.fullmatch(sweep.sweep_id):
            continue
        data = pages.sweep(store, sweep.sweep_id)
        count += _page(out, f"sweeps/{sweep.sweep_id}", "sweep.html", "../", data)
    return count, pictures


def _page(out: Path, name: str, template: str, root: str, data: Any, **context: Any) -> int:
    """``name.html`` and its twin ``name.json``."""
    path = out / f"{name}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(template, Links(root, site=True), data=data, **context))
    path.with_suffix(".json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    return 1


def _copy_pictures(record, folder: Path) -> int:
    copied = 0
    for name, path in run_files(record).items():
        if name in pages.PICTURES and Path(path).is_file():
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, folder / name)
            copied += 1
    return copied
