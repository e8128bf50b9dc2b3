"""Golden digits: a short seed-0 run of each built-in model gives exactly the pinned numbers.

Any change to what a run computes (the trainer, a builder, evaluation, the data pipeline)
moves them, and so moves the registry's reference rows and the shipped packs of that model,
which promise that their command gives their digits with today's code. This test says which
to measure again (docs/results.md, "What changes a run's digits").

The digits also depend on the TensorFlow version and on which oneDNN kernels the CPU gets
(bfloat16 or not, AVX-512 or not), so they are pinned per (TensorFlow, CPU kind); on a
machine with none pinned the test is skipped and says how to pin them:

    python tests/test_golden.py --update    # runs them, writes tests/data/golden.json
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "data" / "golden.json"
MODELS = ("rnn", "lstm", "lstm-stack", "cnn", "cnn-bn")
PRECISIONS = ("float32", "bfloat16")
LIMIT = 1000  # training images (of which 900 train and 100 validate); 1,000 test images


def machine() -> str:
    """The key the digits are pinned under: TensorFlow's version and the CPU's kind."""
    from zoo_core._tf import tf as import_tf  # not a bare import: TF_USE_LEGACY_KERAS first

    tf = import_tf()

    flags = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    kind = next((k for k in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if k in flags),
                "other")
    return f"tensorflow {tf.__version__}, {kind}"


def golden_run(model: str, precision: str) -> dict:
    """One epoch of ``model`` with seed 0 on a small real subset: its digits."""
    from zoo_core import data
    from zoo_core.catalogue import open_zoo
    from zoo_core.train.loop import train
    import tempfile

    zoo = open_zoo()
    subset = data.load(zoo.dataset("fashion"), limit=LIMIT)
    subset = dataclasses.replace(subset, x_test=subset.x_test[:LIMIT], y_test=subset.y_test[:LIMIT])
    r = zoo.resolve(model, "fashion", overrides={"epochs": 1, "precision": precision})
    with tempfile.TemporaryDirectory() as folder:
        result = train(r.model, r.hparams, r.trainer, subset, 0, Path(folder))
    epoch = result.epochs[0]
    return {"train_loss": epoch["train_loss"], "val_loss": epoch["val_loss"],
            "test_loss": result.test.loss, "test_accuracy": result.test.accuracy}


def promises(model: str) -> str:
    """The registry rows and shipped packs whose digits a change to ``model``'s moves."""
    from zoo_core.catalogue import open_zoo

    zoo = open_zoo()
    rows = [f"`{ref['command']}`" for ref in zoo.catalogue.models[model].reference.values()]
    packs = [f"{w.file}" for w in zoo.model(model).weights.values() if getattr(w, "file", None)]
    return (f"registry.toml's rows for {model} ({', '.join(rows) or 'none'}) and its shipped "
            f"pack(s) ({', '.join(packs) or 'none'})")


def _pinned() -> dict:
    return json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}


@pytest.mark.slow
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("model", MODELS)
def test_a_short_seed_0_run_gives_the_pinned_digits(model, precision):
    from zoo_core.settings import cpu_has_bf16

    if precision == "bfloat16" and not cpu_has_bf16():
        pytest.skip("this CPU has no bfloat16: a bfloat16 run would be a float32 one")
    key = machine()
    pinned = _pinned().get(key, {}).get(f"{model} {precision}")
    if pinned is None:
        pytest.skip(f"no digits pinned for {key}: python tests/test_golden.py --update")
    got = golden_run(model, precision)
    assert got == pinned, (
        f"a seed-0 run of {model} in {precision} computes other digits than pinned for {key} "
        f"({pinned} -> {got}): this change moves {model}'s results, so measure again "
        f"{promises(model)} (docs/results.md), then pin the new digits with "
        "python tests/test_golden.py --update")


def test_the_pinned_digits_cover_every_built_in_model():
    """Every built-in model is pinned on some machine kind; a kind may lack a model whose
    numerics changed after its digits were pinned there, until a machine of that kind pins
    them again (its test then skips, saying how)."""
    from zoo_core.catalogue import open_zoo

    models = set(open_zoo().catalogue.models)
    assert set(MODELS) == models
    pinned = [{r.split()[0] for r in runs} for runs in _pinned().values()]
    assert all(kind <= models for kind in pinned)
    assert set().union(*pinned) == models


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: python tests/test_golden.py --update")
    from zoo_core.settings import cpu_has_bf16

    key = machine()
    runs = {}
    for name in MODELS:
        for p in PRECISIONS if cpu_has_bf16() else ("float32",):
            runs[f"{name} {p}"] = golden_run(name, p)
            print(f"{key}: {name} {p}: {runs[f'{name} {p}']}", flush=True)
    pinned = {**_pinned(), key: runs}
    GOLDEN.write_text(json.dumps(pinned, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
