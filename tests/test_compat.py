"""A plugin written against the documented API of zoo-core 0.1.0 (before the core was
regrouped into catalogue/, data/, train/, runs/) still installs, passes `zoo check`, and
its own tests pass, unchanged.

The fixture is what 0.1.0's `zoo new-plugin legacy` wrote, its ``register`` call given
the two optional arguments 0.1.0's docs/hooks.md documents (``inputs``, ``description``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import zoo_core

LEGACY = Path(__file__).parent / "data" / "plugin-0.1.0" / "zoo-legacy"
pytestmark = pytest.mark.slow


@pytest.fixture
def site(tmp_path):
    """The plugin installed as pip lays it out: its package, and a .dist-info whose entry
    points importlib.metadata reads."""
    project = tomllib.loads((LEGACY / "pyproject.toml").read_text())["project"]
    site = tmp_path / "site"
    shutil.copytree(LEGACY / "zoo_legacy", site / "zoo_legacy")
    info = site / f"zoo_legacy-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\n"
                                   f"Version: {project['version']}\n")
    (info / "entry_points.txt").write_text(
        "[zoo]\n" + "".join(f"{k} = {v}\n" for k, v in project["entry-points"]["zoo"].items()))
    return site


def _run(site: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          timeout=600, cwd=cwd)


def test_its_zoo_core_pin_accepts_this_release():
    (pin,) = tomllib.loads((LEGACY / "pyproject.toml").read_text())["project"]["dependencies"]
    assert Requirement(pin).specifier.contains(zoo_core.__version__), (
        f"a plugin scaffolded by 0.1.0 pins {pin}: this release ({zoo_core.__version__}) "
        "would not install beside it")


def test_it_passes_zoo_check(site):
    r = _run(site, "-m", "zoo_core", "check", "legacy")
    assert r.returncode == 0, r.stdout + r.stderr
    # short_run_evaluation is skipped: the legacy plugin has no batch norm
    assert "8 passed, 0 failed, 1 skipped" in r.stdout


def test_its_own_tests_pass(site, tmp_path):
    checkout = shutil.copytree(LEGACY, tmp_path / "zoo-legacy")  # the author's own checkout
    r = _run(site, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", cwd=checkout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert " passed" in r.stdout and "failed" not in r.stdout
