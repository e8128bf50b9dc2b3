"""Issue 31, part 1: a plugin installed the way users install one (`pip install DIR` into a
virtual environment's site-packages) is still named, file and line, when it fails.

One real virtual environment per test session: `python -m venv`, a `.pth` file that lends
it the site-packages of the interpreter running the tests (TensorFlow and zoo-core are not
installed again), then `pip install --no-deps --no-build-isolation` of a small broken plugin
written here. Its site-packages is inside the venv's ``lib/python3.X`` (sysconfig's
``platstdlib``), where the standard library's files would be in a system install.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

FASHION = Path("/usr/share/datasets/fashion-mnist")

PLUGIN = '''\
from zoo_core import hookimpl


def matmul(images, *, num_classes, hparams, training):
    import tensorflow as tf
    x = tf.compat.v1.placeholder_with_default(tf.reshape(images, [-1, 28 * 28]), [None, None])
    w = tf.compat.v1.get_variable("w", [100, num_classes])
    b = tf.compat.v1.get_variable("b", [num_classes])
    return tf.matmul(x, w) + b  # the MatMul line


def key(images, *, num_classes, hparams, training):
    return hparams["width"]  # the KeyError line


@hookimpl
def zoo_register_models(register):
    register("gru", matmul, summary="a matmul of the wrong shape")
    register("gru-key", key, summary="a builder that raises")
'''

PYPROJECT = '''\
[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "zoo-gru"
version = "0.1.0"
dependencies = ["zoo-core"]

[project.entry-points.zoo]
gru = "zoo_gru"

[tool.setuptools]
packages = ["zoo_gru"]
'''


def line_of(marker: str) -> int:
    return next(i for i, text in enumerate(PLUGIN.splitlines(), 1) if marker in text)


@pytest.fixture(scope="session")
def venv_python(tmp_path_factory) -> Path:
    """The python of a real virtual environment with zoo-gru pip-installed into it."""
    root = tmp_path_factory.mktemp("venv")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    paths = subprocess.run([str(python), "-c", "import sysconfig; p = sysconfig.get_paths(); "
                            "print(p['purelib']); print(p['platstdlib'])"],
                           check=True, capture_output=True, text=True).stdout.split("\n")
    site, platstdlib = Path(paths[0]), Path(paths[1])
    assert platstdlib in site.parents  # what hid installed plugins' frames (issue 31)
    # the test interpreter's packages (TensorFlow, zoo-core, pip, setuptools), after the venv's;
    # addsitedir, not a bare path, so that their own .pth files (the editable installs'
    # finders of zoo-core and the plugins) run too
    host = sysconfig.get_paths()["purelib"]
    (site / "zoo_host.pth").write_text(f"import site; site.addsitedir({host!r})\n")
    plugin = root / "zoo-gru"
    (plugin / "zoo_gru").mkdir(parents=True)
    (plugin / "pyproject.toml").write_text(PYPROJECT)
    (plugin / "zoo_gru" / "__init__.py").write_text(PLUGIN)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", str(plugin)],
                   check=True, capture_output=True, text=True, cwd=root)
    assert (site / "zoo_gru" / "__init__.py").is_file()  # installed, not on a path
    return python


def zoo(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("ZOO_DATA_DIR", "ZOO_REGISTRY")}
    return subprocess.run([str(python), "-m", "zoo_core", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_zoo_check_names_the_installed_plugins_lines(venv_python, tmp_path):
    result = zoo(venv_python, "check", "gru", cwd=tmp_path)
    assert result.returncode == 1
    text = " ".join(result.stdout.split())  # the table wraps long cells
    assert (f"InvalidArgumentError in op 'model/MatMul' (created at "
            f"zoo_gru/__init__.py:{line_of('the MatMul line')}): Matrix size-incompatible") in text
    result = zoo(venv_python, "check", "gru-key", "--skip", "overfit_one_batch", cwd=tmp_path)
    assert result.returncode == 1
    assert f"(at zoo_gru/__init__.py:{line_of('the KeyError line')})" in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(not FASHION.is_dir(), reason="needs Debian's dataset-fashion-mnist")
def test_zoo_run_blames_the_matmul_the_installed_plugin_created(venv_python, tmp_path):
    result = zoo(venv_python, "run", "gru", "--limit", "300", "--data-dir", str(FASHION),
                 cwd=tmp_path)
    assert result.returncode == 1
    error = result.stderr.splitlines()[-1]
    # TensorFlow fuses the MatMul and the `+ b` after it into one kernel named 'model/add';
    # the error names the MatMul, the plugin's line and the MatMul's own input shapes
    assert (f"InvalidArgumentError in op 'model/MatMul' (created at zoo_gru/__init__.py:"
            f"{line_of('the MatMul line')}): Matrix size-incompatible: In[0]: [128,784], "
            "In[1]: [100,10]; its inputs have static shapes (None, None), (100, 10).") in error
    result = zoo(venv_python, "run", "gru-key", "--limit", "300", "--data-dir", str(FASHION),
                 cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].endswith(
        f"(at zoo_gru/__init__.py:{line_of('the KeyError line')})")
