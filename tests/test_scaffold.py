"""`zoo new-plugin`: the plugin it writes installs with pip, shows in `zoo list`, passes
`zoo check`, trains with `zoo run` and ranks in `zoo leaderboard`, with no change to the zoo.

The plugin is pip-installed (editable) into an overlay environment: a throwaway venv
whose site-packages adds this environment's through a ``.pth`` file. pip installs into
the overlay only, so this environment is never modified: a crashed test or one running
at the same time cannot leave a stray plugin behind in it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from zoo_core import scaffold

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

NAME = "kitnet"


@pytest.fixture(scope="module")
def overlay(tmp_path_factory) -> Path:
    """A venv that sees every package of this one, and installs into its own folder."""
    root = tmp_path_factory.mktemp("overlay")
    venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt").create(root)
    python = root / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    Path(purelib, "zoo-test-overlay.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    return python


def run(python, *args, home: Path, check=True, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "ZOO_HOME": str(home)}
    out = subprocess.run([str(python), *args], capture_output=True, text=True, env=env, cwd=cwd)
    if check:
        assert out.returncode == 0, f"{args}: exit {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out


def test_a_scaffolded_plugin_installs_lists_checks_trains_and_ranks(zoo, overlay, tmp_path):
    home = tmp_path / "home"
    r = zoo("new-plugin", NAME, "--dir", str(tmp_path))
    assert r.exit_code == 0, r.output
    folder = tmp_path / f"zoo-{NAME}"
    assert f"created {folder} (the plugin zoo-{NAME}, model '{NAME}')" in r.output
    assert f"pip install -e {folder}" in r.output and f"zoo check {NAME}" in r.output

    pip = run(overlay, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
              "--no-index", "-e", str(folder), home=home, check=False)
    assert pip.returncode == 0, pip.stdout + pip.stderr

    listed = {m["name"]: m for m in json.loads(run(overlay, "-m", "zoo_core", "list", "--json",
                                                   home=home).stdout)}
    assert listed[NAME]["status"] == "installed" and listed[NAME]["plugin"] == f"zoo-{NAME}"
    assert set(listed[NAME]["hparams"]) == {"hidden", "layers", "dropout"}
    assert "cnn" in listed  # the zoo's own models are still there

    collected = run(overlay, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                    str(folder / "tests"), home=home, cwd=folder).stdout
    assert f"tests/test_{NAME}.py::test_conformance[overfit_one_batch]" in collected
    assert f"tests/test_{NAME}.py::test_registered_through_the_entry_point" in collected

    checked = json.loads(run(overlay, "-m", "zoo_core", "check", NAME, "--json", home=home).stdout)
    assert checked["passed"] is True, checked
    # every check passes but short_run_evaluation, which a model without batch norm skips
    assert {c["check"]: c["status"] for c in checked["checks"]} == {
        **dict.fromkeys([c["check"] for c in checked["checks"]], "passed"),
        "short_run_evaluation": "skipped"}

    trained = json.loads(run(overlay, "-m", "zoo_core", "run", NAME, "--epochs", "1", "--limit",
                             "500", "--json", home=home).stdout)
    assert trained["status"] == "completed"
    assert trained["plugin"] == f"zoo-{NAME}" and trained["plugin_version"] == "0.1.0"
    assert trained["config"]["hidden"] == 256 and trained["test_accuracy"] > 0.3

    board = json.loads(run(overlay, "-m", "zoo_core", "leaderboard", "--include-partial",
                           "--format", "json", home=home).stdout)
    assert [row["model"] for row in board] == [NAME]
    assert board[0]["best_run"] == trained["run_id"] and board[0]["n"] == 1


def test_the_scaffold_is_valid_python_and_toml():
    names = scaffold.plugin_names("my-net")
    assert (names.model, names.dist, names.package) == ("my-net", "zoo-my-net", "zoo_my_net")
    files = scaffold.render(names)
    assert sorted(files) == [".gitignore", "README.md", "pyproject.toml", "tests/test_my_net.py",
                             "zoo_my_net/__init__.py"]
    project = tomllib.loads(files["pyproject.toml"])
    assert project["project"]["name"] == "zoo-my-net"
    assert project["project"]["entry-points"]["zoo"] == {"my-net": "zoo_my_net"}
    assert project["project"]["dependencies"] == ["zoo-core>=0.1.0,<0.2"]
    assert project["tool"]["setuptools"]["packages"] == ["zoo_my_net"]
    for path in ("zoo_my_net/__init__.py", "tests/test_my_net.py"):
        compile(files[path], path, "exec")
    assert 'testing.checks("my-net")' in files["tests/test_my_net.py"]
    assert "${" not in "".join(files.values())


@pytest.mark.parametrize("version, pin", [
    ("0.1.0", ">=0.1.0,<0.2"), ("0.4.2", ">=0.4.2,<0.5"), ("1.3.0", ">=1.3.0,<2"),
])
def test_the_zoo_core_pin_follows_the_contract_series(version, pin):
    assert scaffold.core_pin(version) == pin


@pytest.mark.parametrize("name, message", [
    ("My Net", "invalid plugin name 'My Net': use lower-case letters and digits"),
    ("2net", "invalid plugin name '2net'"),
    ("my--net", "invalid plugin name 'my--net'"),
    ("net_", "invalid plugin name 'net_'"),
    ("x" * 41, "at most 40 characters"),
    ("core", "zoo-core would clash with the zoo's own names"),
    ("cnn", "a distribution named zoo-cnn is already installed"),
])
def test_bad_names_are_usage_errors(zoo, tmp_path, name, message):
    r = zoo("new-plugin", name, "--dir", str(tmp_path))
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output
    assert not list(tmp_path.iterdir())


def test_a_name_an_installed_plugin_registers_is_refused(zoo, fake_dist, tmp_path):
    fake_dist("zoo-other", {"zoo_other": '''
from zoo_core import hookimpl
def build(images, **kw): ...
@hookimpl
def zoo_register_models(register):
    register("taken", build, summary="registered under another distribution name")
'''})
    r = zoo("new-plugin", "taken", "--dir", str(tmp_path))
    assert r.exit_code == 2
    assert "a model named 'taken' is already registered by zoo-other" in r.output


def test_an_existing_folder_must_be_empty(zoo, tmp_path):
    (tmp_path / "zoo-mynet").mkdir()
    assert zoo("new-plugin", "zoo-mynet", "--dir", str(tmp_path)).exit_code == 0  # empty: fine
    r = zoo("new-plugin", "mynet", "--dir", str(tmp_path))
    assert r.exit_code == 2
    assert f"{tmp_path / 'zoo-mynet'} already exists and is not empty" in r.output
    (tmp_path / "file").mkdir()
    (tmp_path / "file" / "zoo-x").write_text("")
    r = zoo("new-plugin", "x", "--dir", str(tmp_path / "file"))
    assert r.exit_code == 2 and "exists and is a file" in r.output


def test_help_and_new_plugin_do_not_import_tensorflow(tmp_path):
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom zoo_core.cli import cli\n"
        f"for args in (['check', '--help'], ['new-plugin', '--help'], ['new-plugin', 'quick', "
        f"'--dir', {str(tmp_path)!r}]):\n"
        "    r = CliRunner().invoke(cli, args)\n"
        "    assert r.exit_code == 0, r.output\n"
        "    print(r.output)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.rstrip().endswith("[]")
    from zoo_core.testing import CHECKS

    for name in CHECKS:  # `zoo check --help` lists every check
        assert name in out.stdout
