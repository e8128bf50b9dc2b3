"""`zoo list`, `zoo plugins`, `zoo datasets` and the CLI's error handling."""

from __future__ import annotations

import json
import subprocess
import sys




def test_list_shows_the_three_models_with_their_plugins(zoo):
    result = zoo("list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:5] == ["model", "plugin", "status", "summary", "datasets"]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert rows["cnn"][1:3] == ["zoo-cnn", "installed"]
    assert rows["lstm"][1] == "zoo-lstm" and rows["rnn"][1] == "zoo-rnn"
    assert "fashion, mnist" in result.output


def test_list_filters_with_a_wildcard_and_prints_json(zoo):
    result = zoo("list", "l*", "--json")
    assert result.exit_code == 0
    models = json.loads(result.output)
    assert [m["name"] for m in models] == ["lstm", "lstm-stack"]
    assert models[0]["hparams"]["hidden"] == {"default": 128, "type": "int", "help": "units per LSTM cell"}
    assert zoo("list", "x*").output.strip() == "no model matches 'x*'"


def test_list_details_shows_hyperparameters(zoo):
    result = zoo("list", "cnn", "--details")
    assert "cnn hyperparameters:" in result.output
    assert "filters" in result.output and "int, >= 1, <= 1024" in result.output


def test_a_broken_plugin_does_not_break_list_and_shows_in_plugins(zoo, fake_dist):
    fake_dist("zoo-broken", {"zoo_broken": "import tensorflo  # a typo"})
    result = zoo("list")
    assert result.exit_code == 0
    assert "cnn" in result.output
    assert "warning: plugin broken (zoo_broken in zoo-broken) did not load: import failed: ModuleNotFoundError" in result.stderr
    plugins = zoo("plugins")
    assert plugins.exit_code == 0
    assert "broken: import failed: ModuleNotFoundError: No module named 'tensorflo'" in plugins.output
    statuses = {p["distribution"]: p["status"] for p in json.loads(zoo("plugins", "--json").output)}
    assert statuses["zoo-broken"] == "failed" and statuses["zoo-cnn"] == "ok"


def test_a_model_listed_without_its_plugin_says_how_to_install(zoo, tmp_path):
    registry = tmp_path / "registry.toml"
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "registry.toml").read_text()
    registry.write_text(text + '\n[models.gru]\nplugin = "zoo-gru"\nsummary = "GRU"\n')
    result = zoo("--registry", str(registry), "list")
    row = next(line.split() for line in result.output.splitlines() if line.startswith("gru "))
    assert row[:4] == ["gru", "zoo-gru", "not", "installed"]
    assert "gru: pip install zoo-gru" in result.output


def test_a_malformed_registry_is_one_line_and_exit_code_1(zoo, tmp_path):
    registry = tmp_path / "registry.toml"
    registry.write_text("[models.cnn\n")
    result = zoo("--registry", str(registry), "list")
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {registry}: invalid TOML")
    assert "Traceback" not in result.output
    result = zoo("list", env={"ZOO_REGISTRY": str(registry)})
    assert result.exit_code == 1 and "invalid TOML" in result.output


def test_a_missing_registry_file_names_the_option_and_the_variable(zoo, tmp_path):
    result = zoo("--registry", str(tmp_path / "nope.toml"), "list")
    assert result.exit_code == 1
    assert result.output == (f"Error: registry file {tmp_path / 'nope.toml'} does not exist: "
                             "check --registry / ZOO_REGISTRY\n")


def test_datasets_shows_where_the_files_are_and_that_they_verify(zoo):
    result = zoo("datasets", "--json")
    assert result.exit_code == 0
    rows = {d["name"]: d for d in json.loads(result.output)}
    assert rows["fashion"]["location"] == "/usr/share/datasets/fashion-mnist (system)"
    assert rows["fashion"]["verified"] == "yes"


def test_datasets_reports_a_corrupted_copy(zoo, tmp_path):
    import shutil
    for name in ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]:
        shutil.copy(f"/usr/share/datasets/fashion-mnist/{name}", tmp_path / name)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8bjunk")
    result = zoo("datasets", "--data-dir", str(tmp_path))
    assert result.exit_code == 1  # the table still lists every dataset (issue 19, case 13)
    assert "NO" in result.output
    assert "t10k-labels-idx1-ubyte.gz: corrupted or truncated gzip file" in result.output


def test_listing_commands_do_not_import_tensorflow_or_numpy():
    # what keeps them answering in a fraction of a second
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom zoo_core.cli import cli\n"
        "for args in (['--help'], ['list'], ['plugins'], ['list', '--json'], ['leaderboard'],\n"
        "             ['store', '--help'], ['store', 'migrate'], ['predict', '--help'],\n"
        "             ['export', '--help'], ['serve', '--help'], ['site', '--help']):\n"
        "    r = CliRunner().invoke(cli, args)\n"
        "    assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in\n"
        "             ('tensorflow', 'keras', 'tf_keras', 'matplotlib', 'numpy', 'psycopg')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_version(zoo):
    result = zoo("--version")
    assert result.exit_code == 0 and result.output.startswith("zoo, version ")
