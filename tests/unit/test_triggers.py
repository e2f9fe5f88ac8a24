"""restart_on / replace_on entries: one parser (TriggerRef), and the loader, the graph
builder and the planner agree on what it accepts."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from kplan.addrs import AddressError, TriggerRef
from kplan.config.loader import load_module
from kplan.graph.builder import build_graph
from kplan.plan.planner import PlanInputs, PlanOptions, make_plan
from kplan.plugins import ProviderRegistry
from kplan.state.records import ResourceRecord
from tests.unit.test_planner import FakeContainers

# (entry, the TriggerRef it parses to, or None when it is refused)
CASES: list[tuple[str, TriggerRef | None]] = [
    ("fake_config.conf", TriggerRef("fake_config", "conf")),
    ("fake_config.conf[each.key]", TriggerRef("fake_config", "conf", "each.key")),
    ('fake_config.conf["a"]', TriggerRef("fake_config", "conf", '"a"')),
    ("fake_config.conf[0]", TriggerRef("fake_config", "conf", "0")),
    ("fake_config.conf.text", TriggerRef("fake_config", "conf", None, "text")),
    ("fake_config.conf[each.key].text", TriggerRef("fake_config", "conf", "each.key", "text")),
    ('fake_config.conf["x]y"].text', TriggerRef("fake_config", "conf", '"x]y"', "text")),
    ('fake_config.conf[local.k["a"]]', TriggerRef("fake_config", "conf", 'local.k["a"]')),
    ("${ fake_config.conf }", TriggerRef("fake_config", "conf")),
    ("  fake_config.conf  ", TriggerRef("fake_config", "conf")),
    ("fake_config.my-conf", TriggerRef("fake_config", "my-conf")),
    ("module.db.fake_config.conf", None),
    ('module.db["a"].fake_config.conf', None),
    ("module.db", None),
    ("var.x", None),
    ("each.key", None),
    ("fake_config", None),
    ("fake_config.", None),
    ("fake_config.conf.text.more", None),
    ("fake_config.conf[", None),
    ("fake_config.conf[]", None),
    ("fake_config.conf[0]text", None),
    ("Fake.conf", None),
    ("", None),
]


@pytest.mark.parametrize(("text", "want"), CASES, ids=[c[0] or "empty" for c in CASES])
def test_parse(text: str, want: TriggerRef | None) -> None:
    if want is None:
        with pytest.raises(AddressError):
            TriggerRef.parse(text)
        return
    got = TriggerRef.parse(text)
    assert got == want
    assert TriggerRef.parse(str(got)) == got  # str() round-trips
    assert str(TriggerRef.parse(str(got))) == str(got)


def test_a_module_entry_is_refused_with_the_reason() -> None:
    with pytest.raises(AddressError, match=r"inside a module.*same module"):
        TriggerRef.parse("module.db.docker_container.x")


def test_trigger_refs_are_immutable() -> None:
    t = TriggerRef.parse("a.b")
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.name = "c"  # type: ignore[misc]


MODULE = """
resources:
  fake_config.conf:
    for_each: {a: one}
    text: "setting=${each.value}"
  fake_container.svc:
    for_each: {a: x}
    image: "img:1"
    replace_on: [ENTRY]
"""

STATE = {
    'fake_config.conf["a"]': {"text": "setting=old", "id": "c1"},
    'fake_container.svc["a"]': {"image": "img:1", "env": None, "id": "s1"},
}


def _loader_accepts(tmp_path: Path, text: str) -> bool:
    (tmp_path / "main.kp.yaml").write_text(
        textwrap.dedent(MODULE).replace("[ENTRY]", "[" + repr(text) + "]")
    )
    _, diags = load_module(str(tmp_path))
    codes = {d.code for d in diags.errors}
    assert codes <= {"invalid-trigger"}, [str(d) for d in diags]
    return not codes


def _with_entry(tmp_path: Path, text: str):  # a configuration built past the loader
    (tmp_path / "main.kp.yaml").write_text(
        textwrap.dedent(MODULE).replace("[ENTRY]", "[fake_config.conf]")
    )
    cfg, diags = load_module(str(tmp_path))
    assert cfg is not None and not diags.has_errors
    key = ("fake_container", "svc")
    res = cfg.resources[key]
    lifecycle = dataclasses.replace(res.lifecycle, replace_on=(text,))
    cfg.resources[key] = dataclasses.replace(res, lifecycle=lifecycle)  # type: ignore[index]
    return cfg


def _graph_accepts(tmp_path: Path, text: str) -> bool:
    _, diags = build_graph(_with_entry(tmp_path, text))
    codes = {d.code for d in diags.errors}
    assert codes <= {"invalid-trigger"}, [str(d) for d in diags]
    return not codes


def _planner_accepts(tmp_path: Path, text: str) -> bool:
    cg, _ = build_graph(_with_entry(tmp_path, text))  # graph diagnostics ignored
    records = {
        a: ResourceRecord.from_addr(a, provider="fake", attributes=v) for a, v in STATE.items()
    }
    inputs = PlanInputs(
        cg=cg,
        root_dir=str(tmp_path),
        variables={},
        records=records,
        outputs={},
        registry=ProviderRegistry([FakeContainers()]),
        workspace="default",
        lineage="l",
        serial=1,
        input_checksum="x",
    )
    _, diags = make_plan(inputs, PlanOptions(refresh=False))
    codes = {d.code for d in diags.errors}
    assert codes <= {"invalid-trigger"}, [str(d) for d in diags]
    return not codes


AGREE = [
    (text, want is not None)
    for text, want in CASES
    # Entries naming another block or a KEY the module cannot evaluate: the
    # grammar is what is compared here, not the references.
    if text.strip()
    and (want is None or (want.block == "fake_config.conf" and want.key != 'local.k["a"]'))
]


@pytest.mark.parametrize(("text", "accepted"), AGREE, ids=[a[0] for a in AGREE])
def test_loader_graph_and_planner_agree(tmp_path: Path, text: str, accepted: bool) -> None:
    got = {
        "loader": _loader_accepts(tmp_path, text),
        "graph": _graph_accepts(tmp_path, text),
        "planner": _planner_accepts(tmp_path, text),
    }
    assert got == {"loader": accepted, "graph": accepted, "planner": accepted}


def test_every_rejection_names_the_entry_and_the_accepted_forms(tmp_path: Path) -> None:
    (tmp_path / "main.kp.yaml").write_text(
        textwrap.dedent(MODULE).replace("[ENTRY]", "[module.db.fake_config.conf]")
    )
    _, diags = load_module(str(tmp_path))
    (d,) = diags.errors
    assert str(d.pos) == f"{tmp_path}/main.kp.yaml:9:18"
    assert d.summary == (
        'resources.fake_container.svc.replace_on[0]: invalid trigger "module.db.fake_config.conf"'
    )
    assert TriggerRef.FORMS in d.detail and "inside a module" in d.detail
