"""``zoo compare A B``: two runs side by side (the settings that differ, their metrics) and
their learning curves overlaid in one PNG; the command line prints it, the web shows it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo_core import paths
from zoo_core.results import views
from zoo_core.store import Store
from zoo_core.store.records import RunRecord


def compare(store: Store, run_a: str, run_b: str, plot_path: str | Path | None = None
            ) -> tuple[RunRecord, RunRecord, dict[str, Any]]:
    """Runs ``run_a`` and ``run_b`` compared: their records, and what ``zoo compare --json``
    says, :func:`views.compare_json` (``runs``,
    ``settings_that_differ`` as [A, B], ``metrics`` raw as [A, B]) and ``curves``, the PNG of
    their learning curves (``plot_path``, by default ``$ZOO_HOME/compare/A--B.png``), None
    when neither recorded an epoch.

    Raises:
        UnknownNameError: no such run; StoreError: the picture's folder cannot be made.
    """
    a, b = store.get(run_a), store.get(run_b)
    curves = {a.run_id: store.epochs(a.run_id), b.run_id: store.epochs(b.run_id)}
    path = Path(plot_path) if plot_path else \
        paths.zoo_home() / "compare" / f"{a.run_id}--{b.run_id}.png"
    if any(curves.values()):
        from zoo_core.results import plots  # numpy and matplotlib: only when comparing

        paths.ensure_dir(path.parent, "the folder for the comparison's curves")
        plots.compare_curves(curves, path, title=f"{a.run_id} vs {b.run_id}")
    else:
        path = None
    return a, b, {**views.compare_json(a, b), "curves": str(path) if path else None}
