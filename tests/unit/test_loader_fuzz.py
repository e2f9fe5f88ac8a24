"""Fuzzing the loader: whatever the files hold, load_module returns, it never raises."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kplan.config.fmt import FormatError, format_source
from kplan.config.loader import SECTIONS, load_module
from kplan.config.yamlpos import parse_yaml

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEYS = st.sampled_from(
    [
        *SECTIONS,
        "type",
        "default",
        "address",
        "source",
        "value",
        "for_each",
        "count",
        "depends_on",
        "lifecycle",
        "restart_on",
        "rolling",
        "validation",
        "condition",
        "error_message",
        "groups",
        "inputs",
        "connection",
        "port",
        "local_file.x",
        "a.b",
        "x",
        "kplan/x",
        "required_version",
        "backend",
        "sensitive",
        "prevent_destroy",
    ]
) | st.text(max_size=8)

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["string", "list(number)", "object({a=string})", "../x", "${var.x}", ">=0"])
)

YAMLISH: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=30,
)


def load_text(files: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        cfg, diags = load_module(tmp, catalog_dir=tmp)
        assert cfg is not None or diags.has_errors
        assert all(d.code != "internal-error" for d in diags), [str(d) for d in diags]


@SETTINGS
@given(st.dictionaries(st.sampled_from(SECTIONS), YAMLISH, max_size=8))
def test_structured_modules(doc: dict[str, Any]) -> None:
    load_text({"main.kp.yaml": yaml.safe_dump(doc).encode()})


@SETTINGS
@given(YAMLISH, YAMLISH)
def test_any_yaml_in_two_files(a: Any, b: Any) -> None:
    load_text({"a.kp.yaml": yaml.safe_dump(a).encode(), "b.kp.yaml": yaml.safe_dump(b).encode()})


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    load_text({"main.kp.yaml": data})


YAML_CHARS = st.sampled_from(list("abc:-[]{}&*!|>'\"#?,%@`\n\t ${}<=.0123")) | st.characters()


@SETTINGS
@given(st.text(YAML_CHARS, max_size=200))
@example("\ud800")  # a lone surrogate once crashed the C parser's encoder
def test_random_yamlish_text(text: str) -> None:
    load_text({"main.kp.yaml": text.encode("utf-8", "surrogatepass")})
    doc, diags = parse_yaml(text, "f")
    assert doc.data is None or not diags.has_errors


@SETTINGS
@given(st.dictionaries(st.sampled_from(SECTIONS), YAMLISH, max_size=5))
def test_fmt_is_idempotent_and_keeps_the_data(doc: dict[str, Any]) -> None:
    text = yaml.safe_dump(doc, sort_keys=False)
    try:
        once = format_source(text)
    except FormatError:
        return
    assert format_source(once) == once
    assert yaml.safe_load(once) == yaml.safe_load(text)
