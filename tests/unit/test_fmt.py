"""`kplan fmt`: canonical layout, comments and quotes kept, idempotent, errors placed."""

from __future__ import annotations

from pathlib import Path

import pytest

from kplan.config.fmt import FormatError, format_paths, format_source

FIXTURES = Path(__file__).parents[1] / "fixtures" / "loader"

MESSY = """\
# header comment, kept at the top

---
resources:   # the resources
    local_file.conf:
        path: "/etc/kolla/keystone.conf"   # quoted stays quoted
        mode: '0640'
        groups:
        - control
        - compute
        content: |
            [DEFAULT]
            debug = false

# about the variables
variables:
    release: {type: string, default: zed}
    ports:
        type: list(number)

kplan:
    required_version: ">=0.1"
custom_extension: 1
"""

CANONICAL = """\
# header comment, kept at the top

---
kplan:
  required_version: ">=0.1"

# about the variables
variables:
  release: {type: string, default: zed}
  ports:
    type: list(number)

resources:   # the resources
  local_file.conf:
    path: "/etc/kolla/keystone.conf"       # quoted stays quoted
    mode: '0640'
    groups:
      - control
      - compute
    content: |
      [DEFAULT]
      debug = false

custom_extension: 1
"""


def test_canonical_layout() -> None:
    assert format_source(MESSY) == CANONICAL


def test_idempotent() -> None:
    assert format_source(CANONICAL) == CANONICAL
    once = format_source(MESSY)
    assert format_source(once) == once


@pytest.mark.parametrize("path", sorted(FIXTURES.rglob("*.kp.yaml")), ids=lambda p: p.name)
def test_fixtures_are_stable_after_one_pass(path: Path) -> None:
    once = format_source(path.read_text())
    assert format_source(once) == once


@pytest.mark.parametrize(
    "text", ["", "# only a comment\n", "[1, 2]\n", "{b: 1, a: 2}\n", "plain\n"]
)
def test_files_that_are_not_block_mappings_are_left_alone(text: str) -> None:
    assert format_source(text) == text


def test_key_order_inside_sections_is_kept() -> None:
    text = "variables:\n  zeta: {}\n  alpha: {}\nlocals:\n    b: 1\n    a: 2\n"
    assert format_source(text) == "variables:\n  zeta: {}\n  alpha: {}\nlocals:\n  b: 1\n  a: 2\n"


def test_syntax_error_is_a_diagnostic() -> None:
    with pytest.raises(FormatError) as err:
        format_source("variables:\n  a: [1, 2\n", "x.kp.yaml")
    assert str(err.value.diagnostic.pos) == "x.kp.yaml:3:1"
    assert err.value.diagnostic.code == "yaml-syntax"


def test_format_paths_check_writes_nothing(tmp_path: Path) -> None:
    messy = tmp_path / "a.kp.yaml"
    messy.write_text(MESSY)
    clean = tmp_path / "b.kp.yaml"
    clean.write_text(CANONICAL)
    (tmp_path / "notes.yaml").write_text("x:    1\n")
    changed, diags = format_paths([str(tmp_path)], check=True)
    assert changed == [str(messy)] and not diags.items
    assert messy.read_text() == MESSY

    changed, diags = format_paths([str(tmp_path)], check=False)
    assert changed == [str(messy)] and not diags.items
    assert messy.read_text() == CANONICAL
    assert (tmp_path / "notes.yaml").read_text() == "x:    1\n"  # not a *.kp.yaml file
    assert format_paths([str(tmp_path)], check=True) == ([], format_paths([], check=True)[1])


def test_format_paths_leaves_a_broken_file_untouched(tmp_path: Path) -> None:
    bad = tmp_path / "bad.kp.yaml"
    bad.write_text("a:\n  - [x\n")
    changed, diags = format_paths([str(bad), str(tmp_path / "missing.kp.yaml")], check=False)
    assert changed == []
    assert [d.code for d in diags] == ["file-not-found", "yaml-syntax"]
    assert str(diags.items[1].pos).startswith(f"{bad}:3:")
    assert bad.read_text() == "a:\n  - [x\n"


def test_a_null_is_spelled_null() -> None:
    text = "variables:\n  registry:\n    type: string\n    default: null\n"
    assert format_source(text) == text
    assert format_source(text.replace("default: null", "default: ~")) == text
    assert format_source(text.replace("default: null", "default:")) == text
