"""The ``zoo run`` command that trains a recorded configuration again: the last column of
``zoo leaderboard --commands``, a run page's "reproduce" line. Nothing here imports TensorFlow."""

from __future__ import annotations

import shlex
from typing import Any

from zoo_core.catalogue.zoo import Zoo
from zoo_core.errors import ZooError
from zoo_core.results.leaderboard import format_setting
from zoo_core.settings import RETIRED, TRAINER_HPARAMS, recorded_precision

# The run settings with options of their own on `zoo run`; every other one goes via --set.
RUN_OPTIONS = {"epochs": "--epochs", "batch_size": "--batch-size", "lr": "--lr", "limit": "--limit"}


class Defaults(dict):
    """The config `zoo run MODEL` would record today, and in ``omitted`` what a config
    means by not naming a setting declared ``omit_default`` (its own default, which today's
    defaults may not be: a registry can set another)."""

    def __init__(self, config: dict[str, Any], omitted: dict[str, Any]):
        super().__init__(config)
        self.omitted = omitted


def current_defaults(zoo: Zoo, model: str, dataset: str) -> Defaults | None:
    """What `zoo run MODEL --dataset DATASET` would use today; None when it cannot run."""
    try:
        settings = zoo.resolve(model, dataset).settings
    except ZooError:
        return None
    trainer = {k: p.default for k, p in TRAINER_HPARAMS.items() if p.omit_default}
    return Defaults(settings.config, {**trainer, **settings.omit_default})


def reproduce_command(model: str, dataset: str, config: dict[str, Any], seeds: list[int],
                      defaults: dict[str, Any] | None = None) -> str:
    """The ``zoo run`` command that trains ``config`` again with these seeds.

    Args:
        config: a run's recorded settings (hyperparameters, trainer settings and limit);
            retired settings (``settings.RETIRED``) are left out.
        seeds: the seeds to run, e.g. ``[0, 1, 2]``.
        defaults: the settings ``zoo run MODEL`` would use today; only the settings that
            differ from them are spelled out. None (the model is not installed) spells out all.

    Returns:
        one command per run of consecutive seeds, joined by `` && ``.
    """
    words = ["zoo", "run", model, "--dataset", dataset]
    omitted = getattr(defaults, "omitted", {})
    # a setting the run's config leaves out was at its own default, which today's may not be
    config = {**{k: v for k, v in omitted.items() if k in (defaults or {})}, **config}
    for key in sorted(config):
        value = config[key]
        if key == "limit":
            if value is not None:
                words += ["--limit", str(value)]
            continue
        if key in RETIRED or (defaults is not None and key in defaults
                              and _same(defaults[key], value)):
            continue  # a retired setting did nothing then and cannot be given now
        if key == "bf16":  # the precision asked for
            words += ["--precision", recorded_precision(config)]
            continue
        text = str(value).lower() if isinstance(value, bool) else format_setting(value)
        words += [RUN_OPTIONS[key], shlex.quote(text)] if key in RUN_OPTIONS else \
            ["--set", shlex.quote(f"{key}={text}")]
    commands = []
    for first, count in _seed_ranges(seeds):
        extra = ([f"--seed {first}"] if first else []) + ([f"--seeds {count}"] if count > 1 else [])
        commands.append(" ".join(words + extra))
    return " && ".join(commands)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b or (
        isinstance(a, (int, float)) and isinstance(b, (int, float))
        and not isinstance(a, bool) and not isinstance(b, bool) and float(a) == float(b))


def _seed_ranges(seeds: list[int]) -> list[tuple[int, int]]:
    """``[0, 1, 2, 5]`` -> ``[(0, 3), (5, 1)]``."""
    ranges: list[tuple[int, int]] = []
    for seed in sorted(set(seeds)):
        if ranges and ranges[-1][0] + ranges[-1][1] == seed:
            ranges[-1] = (ranges[-1][0], ranges[-1][1] + 1)
        else:
            ranges.append((seed, 1))
    return ranges
