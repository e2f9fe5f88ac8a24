from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kplan.addrs import (
    ROOT,
    AddressError,
    ModuleAddr,
    ResourceAddr,
    ResourceConfigAddr,
    Target,
    parse,
    parse_module,
    parse_resource,
)

names = st.from_regex(r"[a-z_][a-z0-9_-]{0,8}", fullmatch=True)
keys = st.none() | st.integers(min_value=0, max_value=10_000) | st.text(max_size=12)


@given(st.lists(st.tuples(names, keys), max_size=3), names, names, keys)
def test_resource_address_round_trips(steps, type_, name, key) -> None:
    module = ModuleAddr()
    for n, k in steps:
        module = module.child(n, k)
    addr = ResourceAddr(module, type_, name, key)
    text = str(addr)
    assert parse_resource(text) == addr
    assert str(parse_resource(text)) == text


def test_parse_kinds() -> None:
    assert isinstance(parse("module.a"), ModuleAddr)
    assert isinstance(parse("local_file.x"), ResourceConfigAddr)
    assert parse('module.a["k"].local_file.x[0]') == ResourceAddr(
        ModuleAddr().child("a", "k"), "local_file", "x", 0
    )


@pytest.mark.parametrize("bad", ["", "local_file", "a.b.c", 'x.y["k"', "module.", "x.y[1]z"])
def test_invalid_addresses_are_rejected_with_a_reason(bad: str) -> None:
    with pytest.raises(AddressError):
        parse(bad)


def test_target_prefixes() -> None:
    inst = parse_resource('module.a["k"].local_file.x[0]')
    assert Target.parse("module.a").matches(inst)
    assert Target.parse('module.a["k"]').matches(inst)
    assert not Target.parse('module.a["j"]').matches(inst)
    assert Target.parse('module.a["k"].local_file.x').matches(inst)
    assert not Target.parse("local_file.x").matches(inst)
    assert Target.parse('module.a["k"].local_file.x[0]').matches(inst)


def test_equal_addresses_hash_alike_and_find_each_other() -> None:
    # ModuleAddr and ResourceAddr keep their hash once made: equal ones, made apart
    # (one hashed before, one after its text was asked for), are still one dict key.
    one = parse_module('module.a["x"].module.b')
    two = ROOT.child("a", "x").child("b")
    str(two)
    assert one == two and hash(one) == hash(two)
    assert {one: 1}[two] == 1 and {ROOT: 0}[ModuleAddr()] == 0
    block = ResourceConfigAddr(one, "t", "n")
    assert {block: 1}[ResourceConfigAddr(two, "t", "n")] == 1
    assert {block.instance("k"): 1}[two.resource("t", "n", "k")] == 1
    assert one != ROOT.child("a", "y").child("b")
