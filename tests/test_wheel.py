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
    # -S: no site processing, so the source tree's editable-install finder is not
    # loaded; the dependencies' folder is appended by hand (its .pth files unread).
    deps = next(p for p in sys.path if p.endswith("site-packages"))
    code = (
        "import sys; sys.path[:0] = [sys.argv[1]]; sys.path.append(sys.argv[2])\n"
        "import zoo_core, zoo_core.cli, zoo_cnn\n"
        "for m in (zoo_core, zoo_core.cli):\n"
        "    assert m.__file__.startswith(sys.argv[1]), m.__file__\n"
        "from zoo_core.cli import cli; cli(['list', '--json'], prog_name='zoo')\n"
    )
    plugins = ":".join(str(ROOT / "plugins" / p) for p in ("zoo-rnn", "zoo-lstm", "zoo-cnn"))
    out = subprocess.run([sys.executable, "-S", "-c", code, str(site), deps],
                         capture_output=True, text=True, cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": plugins})
    assert out.returncode == 0, out.stderr
    models = {m["name"]: m for m in json.loads(out.stdout)}
    assert models["cnn"]["status"] == "installed"
    assert models["cnn"]["datasets"] == ["fashion", "mnist"]
