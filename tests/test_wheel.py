"""zoo-core installed from a wheel (not the source tree) still finds its registry."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_carries_the_registry_and_lists_models(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )
    (wheel,) = tmp_path.glob("zoo_core-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("zoo_core/registry.toml") == (ROOT / "registry.toml").read_bytes()
        zf.extractall(site)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import zoo_core\n"
        "assert zoo_core.__file__.startswith(sys.argv[1]), zoo_core.__file__\n"
        "from zoo_core.cli import cli; cli(['list', '--json'], prog_name='zoo')\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(site)], capture_output=True, text=True,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    models = {m["name"]: m for m in json.loads(out.stdout)}
    assert models["cnn"]["status"] == "installed"
    assert models["cnn"]["datasets"] == ["fashion", "mnist"]
