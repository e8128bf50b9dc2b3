"""`zoo predict` and `zoo export` on real tiny runs (one cnn, one lstm with its default
custom-gradient sequence kernel), and the predictions picture every run draws."""

from __future__ import annotations

import dataclasses
import gzip
import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from zoo_core.catalogue import open_zoo
from zoo_core.cli import cli
from zoo_core.paths import RunFiles
from zoo_core.results import plots, predictions
from zoo_core.store import open_store
from zoo_core.serving import export as export_module
from zoo_core.serving.inference import Classifier, NoTrainedRun, resolve_model_run

FASHION = Path("/usr/share/datasets/fashion-mnist")
QUICK = ["--epochs", "1", "--limit", "1000"]
N_REAL = 200  # real test images each export is checked on


def zoo(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def real_images(n: int = N_REAL) -> np.ndarray:
    raw = gzip.decompress((FASHION / "t10k-images-idx3-ubyte.gz").read_bytes())
    return np.frombuffer(raw, np.uint8, offset=16, count=n * 784).reshape(n, 28, 28, 1)


def real_labels() -> np.ndarray:
    raw = gzip.decompress((FASHION / "t10k-labels-idx1-ubyte.gz").read_bytes())
    return np.frombuffer(raw, np.uint8, offset=8)


def idx_file(path: Path, images: np.ndarray) -> Path:
    """``images`` [N, H, W, 1] as a gzip-compressed IDX file, as the dataset ships."""
    n, h, w, _ = images.shape
    header = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in (n, h, w))
    path.write_bytes(gzip.compress(header + images.tobytes()))
    return path


@pytest.fixture(scope="module")
def trained(recorded_runs):
    """A store with a tiny cnn run and a tiny lstm run (the sequence kernel); run ids."""
    # float32: exports compute in float32, and the cnn's and the lstm's default precision is auto
    home, runs = recorded_runs(["cnn", *QUICK, "--precision", "float32"],
                               ["lstm", *QUICK, "--set", "hidden=32", "--precision", "float32"])
    return home, {r["model"]: r["run_id"] for r in runs}


@pytest.fixture
def home(trained, monkeypatch):
    monkeypatch.setenv("ZOO_HOME", str(trained[0]))
    return trained


def record(run_id: str):
    with open_store() as store:
        return store.get(run_id)


# -- zoo predict ---------------------------------------------------------------------------------


def test_predict_classifies_pictures_arrays_and_idx_and_names_each_bad_file(home, tmp_path):
    x = real_images(3)
    Image.fromarray(x[0, ..., 0]).resize((280, 280)).convert("RGB").save(tmp_path / "boot.png")
    Image.fromarray(x[1, ..., 0]).save(tmp_path / "pullover.jpg", quality=95)
    np.save(tmp_path / "batch.npy", x)
    (tmp_path / "notes.png").write_text("not a picture")
    np.save(tmp_path / "wrong.npy", np.zeros((3, 5)))
    files = ["boot.png", "pullover.jpg", "batch.npy", "notes.png", "wrong.npy", "gone.png",
             idx_file(tmp_path / "three-idx3-ubyte.gz", x)]
    r = zoo("predict", "latest", *[tmp_path / f for f in files], "--top", "2")
    assert r.exit_code == 1  # some files failed; the others are classified all the same
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"run {home[1]['lstm']} (lstm on fashion, test accuracy ")
    names = [line.split()[0] for line in lines[3:]]
    assert [Path(n).name for n in names] == [
        "boot.png", "pullover.jpg", "batch.npy[0]", "batch.npy[1]", "batch.npy[2]",
        "three-idx3-ubyte.gz[0]", "three-idx3-ubyte.gz[1]", "three-idx3-ubyte.gz[2]"]
    assert lines[1].split() == ["image", "top", "1", "top", "2"]
    errors = r.stderr.splitlines()
    assert len(errors) == 3 and all(e.startswith("Error: ") for e in errors)
    assert "notes.png: not an image" in errors[0]
    assert "wrong.npy: array of shape [3, 5] is not an image of this dataset" in errors[1]
    assert "gone.png: cannot be read (No such file or directory)" in errors[2]
    # the same images give the same answer whichever file brings them
    rows = {Path(line.split()[0]).name: line.split(None, 1)[1] for line in lines[3:]}
    assert rows["batch.npy[2]"] == rows["three-idx3-ubyte.gz[2]"]


def test_predict_json_top_k_and_model_name(home, tmp_path):
    np.save(tmp_path / "two.npy", real_images(2).astype(np.float32) / 255)  # floats in [0, 1]
    r = zoo("predict", "cnn", tmp_path / "two.npy", "--json", "--top", "10")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["run_id"] == home[1]["cnn"] and out["errors"] == []
    assert [p["image"] for p in out["predictions"]] == [f"{tmp_path / 'two.npy'}[{i}]"
                                                        for i in range(2)]
    top = out["predictions"][0]["top"]
    assert set(top[0]) == {"class", "class_id", "probability"}
    assert sorted(t["class_id"] for t in top) == list(range(10))
    probs = [t["probability"] for t in top]
    assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1, abs=1e-5)
    classes = open_zoo().dataset("fashion").classes
    assert all(t["class"] == classes[t["class_id"]] for t in top)
    assert zoo("predict", "cnn", tmp_path / "two.npy", "--top", "1").stdout.splitlines()[1] \
        .split() == ["image", "top", "1"]


def test_predict_matches_the_runs_own_test_evaluation(home, tmp_path):
    """The same preprocessing and graph as the trainer's: zoo predict on the first 200 test
    images gives the classes and probabilities the run's test evaluation recorded."""
    run = record(home[1]["cnn"])
    recorded = np.load(Path(run.run_dir) / RunFiles.TEST_PREDICTIONS)
    r = zoo("predict", run.run_id[:20], idx_file(tmp_path / "t-idx3-ubyte.gz", real_images()),
            "--json", "--top", "1")
    assert r.exit_code == 0, r.output
    top = [p["top"][0] for p in json.loads(r.stdout)["predictions"]]
    assert [t["class_id"] for t in top] == recorded["test_predicted"][:N_REAL].tolist()
    np.testing.assert_allclose([t["probability"] for t in top],
                               recorded["test_confidence"][:N_REAL], atol=1e-5)


def test_a_model_without_a_completed_run_says_how_to_get_one(home, tmp_path):
    # on mnist: the rnn ships weights for fashion only (tests/test_shipped_weights.py)
    np.save(tmp_path / "one.npy", real_images(1)[0])
    r = zoo("predict", "rnn", tmp_path / "one.npy", "--dataset", "mnist")
    assert r.exit_code == 1
    assert r.stderr == ("Error: no completed run of rnn on mnist in the store: train one with "
                        "`zoo run rnn --dataset mnist`\n")


def test_resolve_model_run_takes_the_best_validation_accuracy_full_runs_first(home, tmp_path):
    base = record(home[1]["cnn"])
    full = {**base.config, "limit": None}
    runs = [dataclasses.replace(base, run_id="quick", val_accuracy=0.99),  # made with --limit
            dataclasses.replace(base, run_id="a", val_accuracy=0.80, config=full),
            dataclasses.replace(base, run_id="b", val_accuracy=0.85, config=full),
            dataclasses.replace(base, run_id="c", val_accuracy=0.85, config=full)]
    with open_store(str(tmp_path / "best.db")) as store:
        for run in runs:
            store.create_run(run)
        assert resolve_model_run(open_zoo(), store, "cnn", "fashion").run_id == "c"  # latest tie
        for run_id in "abc":
            store.delete_run(run_id)
        assert resolve_model_run(open_zoo(), store, "cnn", "fashion").run_id == "quick"
        store.delete_run("quick")
        with pytest.raises(NoTrainedRun):  # on mnist, where the cnn has no published weights
            resolve_model_run(open_zoo(), store, "cnn", "mnist")


# -- zoo export ----------------------------------------------------------------------------------

FRESH = textwrap.dedent("""
    import importlib.abc, json, sys

    class NoZoo(importlib.abc.MetaPathFinder):  # the exports must work without the zoo
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("zoo_core", "zoo_cnn", "zoo_lstm", "zoo_rnn"):
                raise ImportError(f"{name} is not to be imported here")

    sys.meta_path.insert(0, NoZoo())
    import numpy as np
    import tensorflow as tf

    jobs = json.loads(sys.argv[1])
    x = np.load(jobs["images"])
    for job in jobs["exports"]:
        if job["format"] == "savedmodel":
            out = tf.saved_model.load(job["path"]).signatures["serving_default"](
                images=tf.constant(x))
            out = {k: v.numpy() for k, v in out.items()}
        else:
            runner = tf.lite.Interpreter(model_path=job["path"]).get_signature_runner(
                "serving_default")
            out = runner(images=x)
        np.save(job["path"].rstrip("/") + ".probabilities.npy", out["probabilities"])
        np.save(job["path"].rstrip("/") + ".class_ids.npy", out["class_ids"])
        assert out["probabilities"].dtype == np.float32 and out["class_ids"].dtype == np.int64
    print(sorted(m for m in sys.modules if m.split(".")[0].startswith("zoo")))
""")


def test_exports_give_the_runs_own_predictions_in_a_fresh_process(home, tmp_path):
    x = real_images()
    np.save(tmp_path / "images.npy", x)
    jobs, expected = [], {}
    for model, run_id in home[1].items():
        with Classifier.load(open_zoo(), record(run_id)) as classifier:
            expected[model] = classifier.probabilities(x)
        r = zoo("export", run_id, "-o", tmp_path / "serving", "--json")
        assert r.exit_code == 0, r.output
        saved = json.loads(r.stdout)
        assert saved["path"] == str(tmp_path / "serving" / model / "1")
        assert (tmp_path / "serving" / model / "1" / "saved_model.pb").is_file()
        r = zoo("export", run_id, "--format", "tflite", "-o", tmp_path / "lite", "--json")
        assert r.exit_code == 0, r.output
        lite = json.loads(r.stdout)
        assert lite["path"] == str(tmp_path / "lite" / f"{model}.tflite")
        r = zoo("export", run_id, "--format", "tflite", "-o", lite["path"])  # -o FILE.tflite
        assert r.exit_code == 2 and f"{lite['path']} exists" in r.stderr
        jobs += [{"model": model, "format": "savedmodel", "path": saved["path"]},
                 {"model": model, "format": "tflite", "path": lite["path"]}]
    env = {"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"}  # no PYTHONPATH
    done = subprocess.run([sys.executable, "-I", "-c", FRESH,
                           json.dumps({"images": str(tmp_path / "images.npy"), "exports": jobs})],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"  # no zoo module was imported
    for job in jobs:
        probabilities = np.load(job["path"].rstrip("/") + ".probabilities.npy")
        class_ids = np.load(job["path"].rstrip("/") + ".class_ids.npy")
        want = expected[job["model"]]
        assert (class_ids == want.argmax(axis=1)).all(), job
        np.testing.assert_allclose(probabilities, want, atol=1e-5, err_msg=str(job))


def test_export_versions_refuses_to_overwrite_and_leaves_nothing_half_written(home, tmp_path):
    run_id = home[1]["cnn"]
    out = tmp_path / "serving"
    assert zoo("export", run_id, "-o", out, "--name", "shirts").exit_code == 0
    r = zoo("export", run_id, "-o", out, "--name", "shirts")  # the next free version
    assert r.exit_code == 0 and r.stdout.strip().endswith(str(out / "shirts" / "2"))
    r = zoo("export", run_id, "-o", out, "--name", "shirts", "--version", "1")
    assert r.exit_code == 2 and f"{out / 'shirts' / '1'} exists: give another --version or " \
        "--name, or --force to replace it" in r.stderr
    meta = json.loads((out / "shirts" / "1" / "assets.extra" / "zoo.json").read_text())
    assert meta["run_id"] == run_id and meta["classes"][9] == "Ankle boot"

    def broken(classifier, folder):
        folder.mkdir()
        (folder / "saved_model.pb").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(export_module, "write_savedmodel", broken)
        r = zoo("export", run_id, "-o", out, "--name", "shirts", "--version", "1", "--force")
    assert r.exit_code == 1 and "No space left on device" in r.stderr
    assert sorted(p.name for p in (out / "shirts").iterdir()) == ["1", "2"]  # no staging left
    assert (out / "shirts" / "1" / "saved_model.pb").stat().st_size > 1000  # the old one kept
    r = zoo("export", run_id, "-o", out, "--name", "shirts", "--version", "1", "--force")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (out / "shirts").iterdir()) == ["1", "2"]


def test_export_of_a_running_run_uses_its_best_checkpoint_so_far_with_a_warning(
        trained, tmp_path, monkeypatch):
    import shutil

    from zoo_core.store import liveness

    home = tmp_path / "home"
    shutil.copytree(trained[0], home)
    monkeypatch.setenv("ZOO_HOME", str(home))
    run_id = trained[1]["cnn"]
    with open_store() as store:  # as while it trains: its best epoch so far is checkpointed
        store.mark_running(run_id, **liveness.owner())
    r = zoo("export", run_id, "-o", tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert f"warning: run {run_id} is running: its best checkpoint so far is used" in r.stderr
    assert (tmp_path / "out" / "cnn" / "1" / "saved_model.pb").is_file()
    docs = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    section = docs[docs.index("## `zoo export "):docs.index("## `zoo pack ")]
    assert "a run that is not completed" in section and "best checkpoint so far" in section


def test_a_bfloat16_run_predicts_as_it_ran_and_exports_float32(home, tmp_path):
    """zoo predict builds a run's graph as the run did (its recorded precision); an export
    computes in float32 (bfloat16 is a session option, not part of the graph)."""
    import tensorflow as tf

    from zoo_core.serving.export import export, plan
    from zoo_core.settings import cpu_has_bf16

    x = real_images()
    run = record(home[1]["cnn"])
    with Classifier.load(open_zoo(), run) as classifier:
        float32 = classifier.probabilities(x)
    bf16_run = dataclasses.replace(run, config={**run.config, "bf16": True}, precision="bfloat16")
    with Classifier.load(open_zoo(), bf16_run) as classifier:
        assert classifier.settings.trainer.effective_precision == \
            ("bfloat16" if cpu_has_bf16() else "float32")
        bf16 = classifier.probabilities(x)
        done = export(classifier, plan("savedmodel", tmp_path, "cnn"))
    out = tf.saved_model.load(str(done.path)).signatures["serving_default"](images=tf.constant(x))
    assert out["probabilities"].dtype == tf.float32
    np.testing.assert_allclose(out["probabilities"].numpy(), float32, atol=1e-5)
    if cpu_has_bf16():
        assert np.abs(bf16 - float32).max() > 1e-5  # it did compute in bfloat16
    assert (bf16.argmax(axis=1) == float32.argmax(axis=1)).mean() > 0.95


# -- the predictions picture ---------------------------------------------------------------------


def test_every_run_draws_its_predictions_and_zoo_show_redraws_them(home):
    run = record(home[1]["cnn"])
    folder = Path(run.run_dir)
    assert (folder / RunFiles.PREDICTIONS).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = np.load(folder / RunFiles.TEST_PREDICTIONS)
    labels = real_labels()
    wrong = saved["test_predicted"] != labels
    assert 0 < wrong.sum() < len(labels) and len(saved["index"]) == 36
    # the first half: the most confident mistakes, most confident first
    mistakes = saved["index"][:18]
    assert wrong[mistakes].all()
    assert saved["confidence"][:18].tolist() == sorted(saved["confidence"][:18], reverse=True)
    np.testing.assert_array_equal(saved["confidence"][:18],
                                  np.sort(saved["test_confidence"][wrong])[::-1][:18])
    assert (saved["images"] == real_images(10000)[saved["index"]]).all()
    assert (saved["labels"] == labels[saved["index"]]).all()
    (folder / RunFiles.PREDICTIONS).unlink()
    r = zoo("show", run.run_id)
    assert r.exit_code == 0 and f"predictions.png  {folder / RunFiles.PREDICTIONS}" in r.stdout
    assert (folder / RunFiles.PREDICTIONS).is_file()


def test_a_picture_that_cannot_be_drawn_is_a_warning(tmp_path, monkeypatch):
    chosen = predictions.Sample(np.arange(2), np.zeros((2, 28, 28, 1), np.uint8), np.array([0, 1]),
                                np.array([0, 0]), np.array([0.9, 0.8], np.float32), ("a", "b"))

    def fails(*args, **kwargs):
        raise ValueError("a matplotlib bug")

    monkeypatch.setattr(plots, "predictions_grid", fails)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert plots.run_plots(tmp_path, "t", [], sample=chosen) == []
    assert "cannot draw predictions.png" in str(caught[0].message)
    monkeypatch.undo()
    assert plots.run_plots(tmp_path, "t", [], sample=chosen) == [tmp_path / "predictions.png"]
