"""Fuzzing the parsers a user's typing reaches: registry files and ``--set KEY=VALUE``.

Whatever the input, the registry reader returns a Catalogue or raises RegistryError, and the
``--set`` path raises UsageError (HParamError, UnknownNameError) or returns a checked value:
never a traceback. Valid values survive a round trip through their text form.
"""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zoo_core import data
from zoo_core.errors import HParamError, RegistryError, UsageError, ZooError
from zoo_core.catalogue.plugins import load
from zoo_core.catalogue import Zoo
from zoo_core.catalogue.registry import Catalogue, read_catalogue
from zoo_core.cli.common import parse_set_options
from zoo_core.settings import TRAINER_HPARAMS, HParam

SHIPPED = Path(__file__).resolve().parents[1] / "registry.toml"
SHIPPED_TEXT = SHIPPED.read_text()
SHIPPED_DOC = tomllib.loads(SHIPPED_TEXT)

FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


# ----------------------------------------------------------------- writing TOML

def toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_string(key)


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def to_toml(doc: dict) -> str:
    return "".join(f"{toml_key(k)} = {toml_value(v)}\n" for k, v in doc.items())


# ----------------------------------------------------------------- strategies

KEYS = ["schema", "datasets", "models", "plugin", "summary", "hparams", "reference", "classes",
        "image_shape", "validation", "split_seed", "urls", "system_dirs", "files", "file",
        "train_images", "train_labels", "test_images", "test_labels", "sha256", "md5_gz",
        "fashion", "mnist", "cnn", "rnn", "epochs", "lr", "dropout", "filters"]
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=8))
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=10**300, max_value=10**310),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["", "zoo-cnn", "http://mirror/", "ftp://x/", "~nobody/x", "a/b.gz", "..",
                     "0" * 64, "f" * 32, "constant", "1", "0.5"]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(keys, inner, max_size=4), max_leaves=16)
documents = st.dictionaries(keys, values, max_size=4)


@st.composite
def mutated_registry(draw) -> dict:
    """The shipped registry with one to three random edits deep inside it."""
    import copy

    doc = copy.deepcopy(SHIPPED_DOC)
    for _ in range(draw(st.integers(1, 3))):
        node = doc
        while True:  # walk down to a random table or array
            children = ([k for k, v in node.items() if isinstance(v, (dict, list))]
                        if isinstance(node, dict)
                        else [i for i, v in enumerate(node) if isinstance(v, (dict, list))])
            if not children or draw(st.booleans()):
                break
            node = node[draw(st.sampled_from(children))]
        slots = list(node) if isinstance(node, dict) else list(range(len(node)))
        op = draw(st.sampled_from(["delete", "replace", "add"] if slots else ["add"]))
        if op == "add":
            if isinstance(node, dict):
                node[draw(keys)] = draw(values)
            else:
                node.append(draw(values))
        else:
            slot = draw(st.sampled_from(slots))
            if op == "delete":
                del node[slot]
            else:
                node[slot] = draw(values)
    return doc


@st.composite
def mangled_text(draw) -> str:
    """The shipped registry.toml with its text cut, spliced or truncated."""
    text = SHIPPED_TEXT
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 80)))
        op = draw(st.sampled_from(["cut", "insert", "truncate", "swap"]))
        if op == "cut":
            text = text[:i] + text[j:]
        elif op == "insert":
            text = text[:i] + draw(st.one_of(st.text(max_size=10), st.sampled_from(
                ["[", "]", "=", '"', "\n", "[models.x]\n", "1e999", "[[", "{", "#"]))) + text[i:]
        elif op == "truncate":
            text = text[:i]
        elif text:
            lines = text.splitlines(keepends=True)
            a, b = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[a], lines[b] = lines[b], lines[a]
            text = "".join(lines)
    return text


# ----------------------------------------------------------------- the registry

@pytest.fixture(scope="module")
def plugin_set():
    return load()


@pytest.fixture(scope="module")
def registry_file(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "registry.toml"


def read_or_refuse(path: Path, text: str, plugin_set) -> Catalogue | None:
    """read_catalogue(path), which must return a Catalogue or raise RegistryError; then the
    settings and data lookups built on what it returned may raise only ZooError."""
    path.write_text(text, encoding="utf-8")
    try:
        catalogue = read_catalogue(path)
    except RegistryError as e:
        assert "\n" not in str(e) and str(path) in str(e)
        return None
    assert all(spec.name == name for name, spec in catalogue.datasets.items())
    assert all(model.name == name for name, model in catalogue.models.items())
    zoo = Zoo(catalogue, plugin_set)
    zoo.rows()
    for model in catalogue.models:
        for dataset in catalogue.datasets:
            try:
                zoo.resolve(model, dataset)
            except ZooError as e:
                assert "\n" not in str(e)
    for spec in catalogue.datasets.values():
        data.search_dirs(spec)
    return catalogue


def test_the_toml_writer_is_faithful():
    assert tomllib.loads(to_toml(SHIPPED_DOC)) == SHIPPED_DOC


@FUZZ
@given(documents)
def test_any_toml_document_is_a_catalogue_or_a_registry_error(registry_file, plugin_set, doc):
    text = to_toml(doc)
    tomllib.loads(text)  # valid TOML: what is fuzzed is the reader's checks, not TOML syntax
    read_or_refuse(registry_file, text, plugin_set)


@FUZZ
@given(mutated_registry())
def test_any_edit_of_the_shipped_registry_is_a_catalogue_or_a_registry_error(
        registry_file, plugin_set, doc):
    read_or_refuse(registry_file, to_toml(doc), plugin_set)


@FUZZ
@given(mangled_text())
def test_any_mangling_of_the_registry_text_is_a_catalogue_or_a_registry_error(
        registry_file, plugin_set, text):
    read_or_refuse(registry_file, text, plugin_set)


@pytest.mark.parametrize("text", [
    "a = " + "[" * 5000,                      # nested beyond the parser's recursion limit
    "schema = " + "9" * 5000,                 # an integer too long for int()
    "schema = true",                          # true == 1 in Python
    "schema = 1.0",
    '[datasets."a\\nb"]',                     # a name that would break the line
    '[datasets."../up"]',                     # a name that would escape the cache folder
])
def test_pathological_registries_are_registry_errors(registry_file, plugin_set, text):
    assert read_or_refuse(registry_file, text, plugin_set) is None


@pytest.mark.parametrize("edit, message", [
    (("urls", [1]), "urls must be http://, https:// or file:// base URLs, got 1"),
    (("urls", ["mirror.example.org/mnist"]), "urls must be http://, https:// or file://"),
    (("urls", ["http://[mirror/"]), "urls must be http://, https:// or file://"),
    (("system_dirs", [3]), "system_dirs must be a list of folder paths"),
    (("split_seed", -1), "split_seed must be 0 or more"),
    (("files.train_images.file", "../../etc/passwd"), "needs file = \"NAME\", a plain file name"),
    (("files.train_images.sha256", "abc"), "sha256 must be 64 hex digits, got 'abc'"),
    (("files.train_images.md5_gz", 5), "md5_gz must be 32 hex digits, got 5"),
])
def test_dataset_fields_are_checked_before_they_are_used(registry_file, edit, message):
    import copy

    doc = copy.deepcopy(SHIPPED_DOC)
    *parents, last = edit[0].split(".")
    node = doc["datasets"]["fashion"]
    for key in parents:
        node = node[key]
    node[last] = edit[1]
    registry_file.write_text(to_toml(doc))
    with pytest.raises(RegistryError, match=re.escape(message)):
        read_catalogue(registry_file)


# ----------------------------------------------------------------- --set KEY=VALUE

DECLARED = {
    "flag": HParam(False),
    "count": HParam(5, min=1, max=100),
    "any_int": HParam(0),
    "rate": HParam(0.5, min=0.0, max=1.0),
    "any_float": HParam(1.5),
    "mode": HParam("a", choices=("a", "b", "c d")),
    "name": HParam("free text"),
    **TRAINER_HPARAMS,
}
texts = st.one_of(
    st.text(),
    st.from_regex(r"\s*[-+]?[0-9_]{0,30}(\.[0-9]*)?([eE][-+]?[0-9]{1,4})?\s*", fullmatch=True),
    st.integers().map(str),
    st.floats().map(repr),
    st.sampled_from(["nan", "-inf", "1e400", "True", "yes", "OFF", "0x10", "1_000", "9" * 5000,
                     "", " ", "\x00", "１２"]),
)


@FUZZ
@given(st.lists(st.text(), max_size=5))
def test_set_options_parse_or_refuse(items):
    try:
        parsed = parse_set_options(items)
    except UsageError as e:
        assert "expected KEY=VALUE" in str(e) and "\n" not in str(e)
        return
    assert all(k and k == k.strip() for k in parsed)
    assert set(parsed) == {item.partition("=")[0].strip() for item in items}


@FUZZ
@given(st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True), st.text(), max_size=5))
def test_set_options_round_trip(pairs):
    assert parse_set_options([f"{k}={v}" for k, v in pairs.items()]) == pairs


@FUZZ
@given(st.sampled_from(sorted(DECLARED)), texts)
def test_any_text_is_a_checked_value_or_an_hparam_error(name, text):
    param = DECLARED[name]
    try:
        value = param.parse(name, text)
    except HParamError as e:
        assert str(e).startswith(name) and "\n" not in str(e) and len(str(e)) < 300
        return
    assert type(value) is param.type
    assert param.check(name, value) == value


@FUZZ
@given(st.data())
def test_valid_values_round_trip_through_text(data):
    name = data.draw(st.sampled_from(sorted(DECLARED)))
    param = DECLARED[name]
    if param.choices:
        value = data.draw(st.sampled_from(param.choices))
    elif param.type is bool:
        value = data.draw(st.booleans())
    elif param.type is int:
        value = data.draw(st.integers(  # every int setting fits in 64 bits
            min_value=-(2**63 - 1) if param.min is None else math.ceil(param.min),
            max_value=2**63 - 1 if param.max is None else math.floor(param.max)))
    elif param.type is float:
        value = data.draw(st.floats(min_value=param.min, max_value=param.max,
                                    allow_nan=False, allow_infinity=False))
    else:
        value = data.draw(st.text())
    text = {bool: lambda v: data.draw(st.sampled_from([str(v), str(v).lower(), str(int(v))])),
            float: repr}.get(param.type, str)(value)
    assert param.parse(name, text) == value


@FUZZ
@given(st.sampled_from(sorted(DECLARED)), st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**308, max_value=10**400),
    st.floats(), st.text(), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(), st.text(), max_size=1)))
def test_any_typed_value_is_checked_or_an_hparam_error(name, value):
    param = DECLARED[name]
    try:
        checked = param.check(name, value)
    except HParamError as e:
        assert "\n" not in str(e) and len(str(e)) < 300
        return
    assert type(checked) is param.type


@FUZZ
@given(st.dictionaries(st.one_of(st.sampled_from(sorted(DECLARED) + ["dense", "dropout", "filters"]),
                                 st.text(max_size=8)), texts, max_size=4))
def test_resolving_any_set_options_is_settings_or_a_usage_error(the_zoo, raw):
    try:
        resolved = the_zoo.resolve("cnn", "fashion", raw_overrides=raw)
    except UsageError as e:
        assert "\n" not in str(e)
        return
    for key in raw:
        assert resolved.sources[key] == "command line"
