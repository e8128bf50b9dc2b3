"""What a registration is: hyperparameter declarations, model and dataset specs.

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from zoo_core.errors import HParamError

# The four files of an IDX dataset, as registry.toml names them.
FILE_ROLES = ("train_images", "train_labels", "test_images", "test_labels")

_TYPES = {bool: "bool", int: "int", float: "float", str: "str"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class HParam:
    """A declared hyperparameter.

    Attributes:
        default: the value used when nothing else sets it.
        type: bool, int, float or str; taken from ``default`` when omitted.
        help: one line for ``zoo list --details`` and error messages.
        min, max: inclusive bounds for numbers (None for unbounded).
        choices: the allowed values, for strings.
    """

    default: Any
    type: type | None = None
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None

    def __post_init__(self):
        t = self.type if self.type is not None else type(self.default)
        if t not in _TYPES:
            raise TypeError(
                f"hyperparameter type must be bool, int, float or str, not {t.__name__}"
            )
        object.__setattr__(self, "type", t)
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))
        self.check("default", self.default)

    @property
    def type_name(self) -> str:
        return _TYPES[self.type]

    def describe(self) -> str:
        parts = [self.type_name]
        if self.choices:
            parts.append("one of " + "|".join(map(str, self.choices)))
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        return ", ".join(parts)

    def check(self, name: str, value: Any) -> Any:
        """Return ``value`` coerced to this type, or raise :class:`HParamError`."""
        t = self.type
        if t is float and isinstance(value, int) and not isinstance(value, bool):
            try:
                value = float(value)
            except OverflowError:
                raise HParamError(f"{name} must be a finite number, got {short_repr(value)}") from None
        if not isinstance(value, t) or (t is int and isinstance(value, bool)):
            raise HParamError(
                f"{name} must be {self.describe()}, got {short_repr(value)} ({type(value).__name__})"
            )
        if t is float and not math.isfinite(value):
            raise HParamError(f"{name} must be a finite number, got {short_repr(value)}")
        if ((self.min is not None and value < self.min)
                or (self.max is not None and value > self.max)
                or (self.choices is not None and value not in self.choices)):
            raise HParamError(f"{name} must be {self.describe()}, got {short_repr(value)}")
        return value

    def parse(self, name: str, text: str) -> Any:
        """Parse a command-line string (``--set name=text``) and check it."""
        t = self.type
        s = text.strip()
        try:
            if t is bool:
                if s.lower() in _TRUE:
                    value = True
                elif s.lower() in _FALSE:
                    value = False
                else:
                    raise ValueError
            elif t is int:
                value = int(s)
            elif t is float:
                value = float(s)
            else:
                value = text
        except ValueError:
            raise HParamError(f"{name} must be {self.describe()}, got {short_repr(text)}") from None
        return self.check(name, value)


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)``, shortened so that a message stays one readable line."""
    try:
        text = repr(value)
    except ValueError:  # an integer too long to print
        text = f"a {type(value).__name__} too long to print"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def as_hparam(name: str, declared: Any) -> HParam:
    """Turn a declaration (an HParam or a bare default) into an HParam."""
    if isinstance(declared, HParam):
        return declared
    try:
        return HParam(declared)
    except TypeError as e:
        raise HParamError(f"hyperparameter {name!r}: {e}") from None


# Settings every model shares, owned by the trainer. A model may not declare these
# names; registry.toml and the command line may set them.
TRAINER_HPARAMS: dict[str, HParam] = {
    "epochs": HParam(10, help="passes over the training split", min=1, max=10_000),
    "batch_size": HParam(128, help="examples per training step", min=1, max=65_536),
    "lr": HParam(1e-3, help="Adam learning rate", min=1e-12, max=10.0),
    "lr_schedule": HParam(
        "constant",
        help="constant; cosine (decay to 0 over the run); step (x0.1 at 50% and 75%)",
        choices=("constant", "cosine", "step"),
    ),
    "clip_norm": HParam(0.0, help="clip gradients to this global norm (0: off)", min=0.0),
    "weight_decay": HParam(
        0.0, help="L2 penalty on weight matrices and kernels (0: off)", min=0.0
    ),
    "label_smoothing": HParam(0.0, help="label smoothing in [0, 1)", min=0.0, max=0.99),
    "augment_shift": HParam(
        0, help="random shifts of training images by up to N pixels (0: off)", min=0, max=8
    ),
    "augment_flip": HParam(False, help="random horizontal flips of training images"),
    "patience": HParam(
        0, help="stop after N epochs without a better validation accuracy (0: off)", min=0
    ),
    # Speed only: these change how fast a run trains, not what it computes (beyond
    # float rounding), and are chosen per model in registry.toml from measurements.
    "threads": HParam(0, help="threads per op and ops at once (0: TensorFlow's default, all cores)",
                      min=0, max=256),
    "xla": HParam(False, help="compile the training step with XLA"),
    "bf16": HParam(False, help="mixed precision: oneDNN bfloat16 matmuls and convolutions on CPUs "
                               "with AVX512-BF16 or AMX (variables stay float32); float32 "
                               "on other CPUs"),
}


@dataclass
class ModelSpec:
    """A registered model: a builder with its declared hyperparameters."""

    name: str
    build: Callable
    summary: str
    hparams: dict[str, HParam]
    inputs: tuple[str, ...] = ("image",)
    description: str = ""
    plugin: str = ""  # the distribution (or plugin name) that registered it
    plugin_version: str = ""

    def defaults(self) -> dict[str, Any]:
        return {k: p.default for k, p in self.hparams.items()}


@dataclass
class DatasetSpec:
    """A dataset: how to load it and what it holds."""

    name: str
    summary: str
    classes: tuple[str, ...]
    image_shape: tuple[int, int, int]
    validation: int = 5000  # examples carved from the training set
    split_seed: int = 0
    kind: str = "image"
    # Either ``files`` (IDX files declared in registry.toml, loaded by the core) or
    # ``load`` (a plugin's loader function).
    files: dict[str, dict] = field(default_factory=dict)
    urls: tuple[str, ...] = ()
    system_dirs: tuple[str, ...] = ()
    load: Callable | None = None
    plugin: str = ""
    plugin_version: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)
