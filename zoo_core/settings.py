"""The settings of a run: one home for what they are, how they merge, and their id.

Every run is trained with two kinds of setting:

- the **trainer settings** every model shares (epochs, learning rate, schedule,
  augmentation, precision, ...): :class:`TrainerSettings`, a frozen dataclass with a
  comment per field, from which :data:`TRAINER_HPARAMS` (their declarations, for
  ``zoo list --details``, registry.toml and ``--set``) is derived;
- the **model's hyperparameters**, declared by its plugin with :class:`HParam`.

:func:`merge` layers them, later layers winning: plugin and trainer defaults <
registry.toml (per model, then per dataset) < the command line, checking each value
against its declaration and recording where each came from. The result,
:class:`RunSettings`, is what a run records and what its :func:`config_id` hashes.

This module is the foundation the catalogue, the trainer and the runs build on; it
imports nothing else of the zoo's but its errors and its hyperparameter declarations
(:mod:`zoo_core.hparams`, re-exported here), and no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from zoo_core.errors import HParamError, RegistryError, setting, short_repr
from zoo_core.hparams import MAX_INT, HParam, as_hparam  # noqa: F401 - part of this module's API

# The largest seed: the store's seed column is SQLite's INTEGER (64-bit) and PostgreSQL's
# INTEGER (32-bit, signed); TensorFlow's graph seed and stateless keys are int64 and NumPy's
# default_rng takes any size, so PostgreSQL sets the bound.
MAX_SEED = 2**31 - 1
MAX_SEEDS = 10_000  # seeds in one `zoo run --seeds N`
def _setting(default: Any, help: str, **bounds: Any) -> Any:
    """A trainer setting's field: its default, and its declaration in the metadata."""
    return field(default=default, metadata={"hparam": HParam(default, help=help, **bounds)})


PRECISIONS = ("float32", "bfloat16", "auto")


@functools.lru_cache(maxsize=None)
def cpu_has_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX512-BF16 or AMX-BF16; Linux only).

    Without them oneDNN would emulate bfloat16, slower than float32, so a run asking for
    bfloat16 trains in float32 there (and records float32).
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            flags = next((line.split(":", 1)[1].split() for line in f
                          if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@dataclass(frozen=True)
class TrainerSettings:
    """The settings every model shares, owned by the trainer.

    A model may not declare these names; registry.toml and the command line may set
    them. ``threads`` and ``precision`` change how fast a run trains, not what it computes
    (beyond float rounding), and are chosen per model in registry.toml from
    measurements; they are part of the config all the same (``precision`` as the one
    asked for, under the key ``bf16``: bfloat16 where the CPU has it; what a run computed
    in on its machine is its record's ``precision``). The
    :data:`SPEED_ONLY` settings change only how the same steps are dispatched: a run
    records them, but its config (and config id) leaves them out.
    """

    epochs: int = _setting(10, "passes over the training split", min=1, max=10_000)
    batch_size: int = _setting(128, "examples per training step", min=1, max=65_536)
    lr: float = _setting(1e-3, "learning rate of the optimizer", min=1e-12, max=10.0,
                         search="log(1e-4,1e-2)")
    # Settings added after runs were recorded (omit_default): at their defaults a config
    # leaves them out, so the config ids recorded before them still hold.
    optimizer: str = _setting(
        "adam", "adam; nesterov (SGD with Nesterov momentum, see momentum)",
        choices=("adam", "nesterov"), omit_default=True, search="choice(adam,nesterov)")
    momentum: float = _setting(0.9, "momentum of optimizer=nesterov (not used by adam)",
                               min=0.0, max=0.999, omit_default=True)
    lr_schedule: str = _setting(
        "constant", "constant; cosine (decay to 0 over the run); step (x0.1 at 50% and 75%); "
                    "linear (decay linearly to 0 at the end); after any warmup",
        choices=("constant", "cosine", "step", "linear"), search="choice(constant,cosine)")
    warmup: float = _setting(
        0.0, "fraction of the training steps over which lr rises linearly from 0, before "
             "lr_schedule runs over the rest (one-cycle: lr_schedule=linear, warmup=0.25)",
        min=0.0, max=0.9, omit_default=True)
    clip_norm: float = _setting(0.0, "clip gradients to this global norm (0: off)", min=0.0)
    weight_decay: float = _setting(0.0, "L2 penalty on weight matrices and kernels (0: off)",
                                   min=0.0, search="float(0,5e-4)")
    label_smoothing: float = _setting(0.0, "label smoothing in [0, 1)", min=0.0, max=0.99,
                                      search="float(0,0.2)")
    augment_shift: int = _setting(0, "random shifts of training images by up to N pixels (0: off)",
                                  min=0, max=8)
    augment_flip: bool = _setting(False, "random horizontal flips of training images")
    augment_erase: int = _setting(
        0, "cutout: an N x N square inside each training image set to 0, after flips and "
           "shifts (0: off)", min=0, max=28, omit_default=True)
    ema: float = _setting(
        0.0, "decay of an exponential moving average of the trainable weights, updated after "
             "every step (at step t with min(ema, (1 + t) / (10 + t))), which validation, the "
             "best checkpoint and the test use; training goes on from the raw weights (0: off; "
             "typical 0.999; batch norm's moving statistics are not averaged)",
        min=0.0, max=0.9999, omit_default=True)
    swa: int = _setting(
        0, "stochastic weight averaging: the mean of the trainable weights at the ends of the "
           "last N epochs (all of them when the run has fewer), which validation, the best "
           "checkpoint and the test use; training goes on from the raw weights (0: off; not "
           "with ema; batch norm's statistics are estimated again for the mean, bn_batches)",
        min=0, max=10_000, omit_default=True)
    bn_batches: int = _setting(
        16, "training batches over which batch normalization's statistics are estimated "
            "again, with the current weights, before each evaluation and checkpoint (0: the "
            "moving averages as trained, which a short run has not yet settled); no effect "
            "on a model without batch normalization", min=0, max=10_000, omit_default=True)
    patience: int = _setting(
        0, "stop after N epochs without a better validation accuracy (0: off)", min=0)
    threads: int = _setting(
        0, "threads per op and ops at once (0: TensorFlow's default, all cores)", min=0, max=256)
    precision: str = _setting(
        "float32", "numeric precision: float32; bfloat16 (oneDNN mixed precision for matmuls and "
                   "convolutions, variables stay float32) on CPUs with AVX512-BF16 or AMX, "
                   "float32 on others; auto: bfloat16 where the CPU has it",
        choices=PRECISIONS)

    @property
    def effective_precision(self) -> str:
        """What the run computes in on this machine: "bfloat16" only where the CPU has it."""
        return "bfloat16" if self.precision in ("bfloat16", "auto") and cpu_has_bf16() \
            else "float32"
    steps_per_call: int = _setting(
        0, "optimizer steps per Session.run, the same math (0: automatic, about 50 ms per call; "
           "1: one step per call); speed only, not part of the config id", min=0, max=1024)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Trainer settings that change how fast, never what, a run computes: recorded with the run
# (its run folder's config.json and metrics.json) but left out of its config and config id,
# so runs that differ only in them are the same configuration on the leaderboard.
SPEED_ONLY = ("steps_per_call",)


@dataclass(frozen=True)
class Retired:
    """A trainer setting the zoo no longer has."""

    value: Any  # the value that made it do nothing, which every config still names
    why: str  # why it went, for the error that rejects it


# Removed settings. Every config still names each, at the value that made it do nothing
# (what runs recorded before it went), so config ids, registry.toml's reference results
# and the leaderboard's groups stay the same; no layer may set it any more.
RETIRED: dict[str, Retired] = {
    "xla": Retired(False, "it set XLA's global JIT level, which does nothing on a CPU, where "
                          "the zoo trains (and XLA on the whole step measured slower there)"),
}


# Settings given under another name now: the old name -> what to write instead.
RENAMED = {"bf16": "precision (--precision bfloat16, or precision = \"auto\" in registry.toml)"}


# The declarations of the trainer settings, in field order.
TRAINER_HPARAMS: dict[str, HParam] = {
    f.name: f.metadata["hparam"] for f in dataclasses.fields(TrainerSettings)}

TRAINER_DEFAULT = "trainer default"
COMMAND_LINE = "command line"


def config_id(config: Mapping[str, Any]) -> str:
    """The first 10 hex digits of the SHA-256 of ``config`` as canonical JSON."""
    canonical = json.dumps(dict(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:10]


@dataclass(frozen=True)
class RunSettings:
    """Everything that decides what a run computes, merged, with where each value came from.

    ``limit`` (train on the first N training examples only) is part of it, so that a
    quick try on a subset never averages with full runs on the leaderboard.
    """

    trainer: TrainerSettings = field(default_factory=TrainerSettings)
    hparams: Mapping[str, Any] = field(default_factory=dict)  # the model's, by name
    limit: int | None = None
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    speed_only: tuple[str, ...] = ()  # the model's hyperparameters declared speed_only
    # the model's hyperparameters declared omit_default, with their defaults
    omit_default: Mapping[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> dict[str, Any]:
        """What a run records as its settings (and hashes into its config id): all but the
        :data:`SPEED_ONLY` ones, and the :data:`RETIRED` ones at their retired values."""
        trainer = {k: v for k, v in self.trainer.to_dict().items()
                   if k not in SPEED_ONLY and k != "precision"
                   and not (TRAINER_HPARAMS[k].omit_default and v == TRAINER_HPARAMS[k].default)}
        # what was asked, the same on every machine: bfloat16 where the CPU has it ("bfloat16"
        # and "auto" ask the same); what ran is the run's record's (docs/architecture.md)
        trainer["bf16"] = self.trainer.precision != "float32"
        retired = {k: r.value for k, r in RETIRED.items()}
        hparams = {k: v for k, v in self.hparams.items() if k not in self.speed_only
                   and not (k in self.omit_default and v == self.omit_default[k])}
        return {**trainer, **retired, **hparams, "limit": self.limit}

    @property
    def speed(self) -> dict[str, Any]:
        """The :data:`SPEED_ONLY` settings and the model's ``speed_only`` hyperparameters,
        which a run records beside its config."""
        return {**{k: getattr(self.trainer, k) for k in SPEED_ONLY},
                **{k: self.hparams[k] for k in self.speed_only if k in self.hparams}}

    @property
    def values(self) -> dict[str, Any]:
        """Every setting by its name: the trainer's (``precision`` as asked for, where the
        config records ``bf16``, what it computes in here), the :data:`RETIRED` ones at their
        retired values, the model's hyperparameters and ``limit``: the config's, with the
        ``omit_default`` and speed-only ones it leaves out."""
        return {**self.trainer.to_dict(), **{k: r.value for k, r in RETIRED.items()},
                **self.hparams, "limit": self.limit}

    @property
    def config_id(self) -> str:
        return config_id(self.config)

    @classmethod
    def recorded(cls, config: Mapping[str, Any], declared: Mapping[str, HParam]) -> RunSettings:
        """A run's settings as it recorded them (``config``, and its speed-only settings if
        given there too), for the model's ``declared`` hyperparameters. Settings added
        since the run was made take their defaults; retired ones are ignored."""
        trainer = {k: recorded_setting(config, k) for k in TRAINER_HPARAMS}
        if "precision" not in config:  # a config records the precision asked as ``bf16``
            trainer["precision"] = recorded_precision(config)
        hparams = {k: config.get(k, p.default) for k, p in declared.items()}
        return cls(TrainerSettings(**trainer), hparams, config.get("limit"),
                   {k: "recorded" for k in (*trainer, *hparams)}, _speed_only(declared),
                   _omitted(declared))


def recorded_setting(config: Mapping[str, Any], key: str) -> Any:
    """A setting's value as a run's ``config`` records it; a trainer setting the config does
    not name is at its default (declared ``omit_default``, or added since the run); another
    setting it does not name is None (a model's default is not known here)."""
    if key in config:
        return config[key]
    return TRAINER_HPARAMS[key].default if key in TRAINER_HPARAMS else None


def recorded_precision(config: Mapping[str, Any]) -> str:
    """The precision a config asks for, as a word: ``bf16`` is bfloat16 where the CPU has it
    (float32 elsewhere). A config recorded before zoo-core recorded the precision a run
    ran in separately (``RunRecord.precision``) said with ``bf16`` what ran."""
    return "bfloat16" if config.get("bf16") else "float32"


@dataclass(frozen=True)
class Layer:
    """One source of values in the merge.

    Attributes:
        source: where the values come from, as the run records it
            ("registry.toml [models.cnn.hparams]", "command line").
        values: name -> value. ``None`` values are skipped (an option not given).
        text: the values are strings (``--set key=value``), parsed by their declared type.
        where: for a file: the location errors name; its mistakes are RegistryErrors.
    """

    source: str
    values: Mapping[str, Any]
    text: bool = False
    where: str = ""


def merge(model: str, declared: Mapping[str, HParam], layers: Sequence[Layer] = (), *,
          plugin: str = "", limit: int | None = None) -> RunSettings:
    """Merge defaults and layers into a run's settings, later layers winning.

    Args:
        model: the model's name, for messages.
        declared: the model's declared hyperparameters.
        layers: registry.toml's tables, then the command line's values.
        plugin: the distribution that declared them, for the sources.
        limit: the training-set limit, if any.

    Raises:
        RegistryError: a layer read from a file names an unknown setting or a bad value.
        HParamError: the same for any other layer (the user's options).
    """
    every = {**TRAINER_HPARAMS, **declared}
    values = {k: p.default for k, p in every.items()}
    sources = {k: TRAINER_DEFAULT if k in TRAINER_HPARAMS else f"{plugin} default" for k in every}
    for layer in layers:
        for key, value in layer.values.items():
            if value is None:
                continue
            values[key] = _checked(every, key, value, layer, model)
            sources[key] = layer.source
    _check_together(values, sources)
    trainer = TrainerSettings(**{k: values[k] for k in TRAINER_HPARAMS})
    return RunSettings(trainer, {k: values[k] for k in declared}, limit, sources,
                       _speed_only(declared), _omitted(declared))


def _check_together(values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
    """Trainer settings that mean something only together: ``momentum`` is Nesterov's, and
    set with Adam it would do nothing (yet make another config id); ``swa`` and ``ema``
    are two averages of the same weights, of which a run uses one.

    Raises:
        HParamError: one line naming both settings and where each was set.
    """
    if values["swa"] and values["ema"]:
        raise HParamError(
            f"swa {values['swa']} ({sources['swa']}) and ema {values['ema']:g} "
            f"({sources['ema']}) both average the weights: keep one, "
            f"{setting('swa', '0')} or {setting('ema', '0')}")
    momentum = TRAINER_HPARAMS["momentum"].default
    if values["optimizer"] == "adam" and values["momentum"] != momentum:
        raise HParamError(
            f"momentum {values['momentum']:g} ({sources['momentum']}) is used only by optimizer "
            f"nesterov, and optimizer is adam ({sources['optimizer']}): add "
            f"{setting('optimizer', 'nesterov')} or leave momentum at {momentum:g}")


def _speed_only(declared: Mapping[str, HParam]) -> tuple[str, ...]:
    return tuple(k for k, p in declared.items() if p.speed_only)


def _omitted(declared: Mapping[str, HParam]) -> dict[str, Any]:
    return {k: p.default for k, p in declared.items() if p.omit_default}


def _checked(every: Mapping[str, HParam], key: str, value: Any, layer: Layer, model: str) -> Any:
    if key not in every and key in RENAMED:
        now = RENAMED[key]
        if layer.where:
            raise RegistryError(f"{layer.where} sets {short_repr(key)}, a setting that is now "
                                f"{now}; write that instead")
        raise HParamError(f"setting {short_repr(key)} is now {now}; use that instead")
    if key not in every and key in RETIRED:
        why = RETIRED[key].why
        if layer.where:
            raise RegistryError(f"{layer.where} sets {short_repr(key)}, a setting that was "
                                f"removed: {why}; delete it there")
        raise HParamError(f"setting {short_repr(key)} was removed: {why}; leave it out")
    if key not in every:
        if layer.where:
            raise RegistryError(f"{layer.where} sets unknown hyperparameter {short_repr(key)}; "
                                f"{model} accepts: {', '.join(sorted(every))}")
        valid = ", ".join(f"{k} ({p.type_name})" for k, p in sorted(every.items()))
        raise HParamError(f"unknown hyperparameter {short_repr(key)} for {model}; valid: {valid}")
    try:
        return every[key].parse(key, value) if layer.text else every[key].check(key, value)
    except HParamError as e:
        if layer.where:
            raise RegistryError(f"{layer.where} {e}") from None
        raise


def model_values(model: str, declared: Mapping[str, HParam], *, values: Mapping[str, Any] = (),
                 text: Mapping[str, str] = ()) -> dict[str, Any]:
    """A model's hyperparameters: its defaults with ``values`` (typed) and ``text`` (parsed
    by type) set over them; trainer settings are not accepted here (``zoo check``, the
    conformance kit).

    Raises:
        HParamError: a name the model does not declare, or a bad value.
    """
    out = {k: p.default for k, p in declared.items()}
    for given, parse in ((dict(values), False), (dict(text), True)):
        for key, value in given.items():
            if key not in declared:
                raise HParamError(f"unknown hyperparameter {short_repr(key)} for {model}; "
                                  "declared: " + (", ".join(declared) or "none"))
            out[key] = declared[key].parse(key, value) if parse else declared[key].check(key, value)
    return out
