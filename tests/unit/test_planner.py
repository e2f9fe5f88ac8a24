"""The planner on small modules, with an in-memory state and a fake restartable type."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from kplan.config.loader import load_module
from kplan.config.model import Positions
from kplan.diagnostics import SourcePos
from kplan.graph.builder import build_graph
from kplan.graph.evaluate import Evaluator
from kplan.plan.model import Action, PlanMode
from kplan.plan.planfile import read_planfile, write_planfile
from kplan.plan.planner import PlanInputs, PlanOptions, make_plan
from kplan.plan.render_json import plan_to_json
from kplan.plugins import ProviderRegistry
from kplan.provider_api import (
    CREATE_BEFORE_DESTROY,
    DESTROY_BEFORE_CREATE,
    ApplyRequest,
    ApplyResponse,
    Attribute,
    PlanRequest,
    Provider,
    ProviderSchema,
    ReadRequest,
    ReadResponse,
    ResourceSchema,
    default_plan,
)
from kplan.state.records import ResourceRecord
from kplan.values import UNKNOWN

# An object behind an API: `auth` says how to reach it, and is no part of it.
REMOTE_ATTRS = {
    "name": Attribute("string", required=True),
    "auth": Attribute("map", optional=True, connection=True),
    "id": Attribute("string", computed=True),
}


class FakeContainers(Provider):
    """A restartable type whose objects live in a dict."""

    name = "fake"

    def schema(self) -> ProviderSchema:
        return ProviderSchema(
            {
                "fake_container": ResourceSchema(
                    "fake_container",
                    {
                        "image": Attribute("string", required=True, force_new=True),
                        "env": Attribute("map", optional=True),
                        "id": Attribute("string", computed=True),
                    },
                    restartable=True,
                    replace_order=CREATE_BEFORE_DESTROY,
                ),
                "fake_config": ResourceSchema(
                    "fake_config",
                    {
                        "text": Attribute("string", required=True),
                        "id": Attribute("string", computed=True),
                    },
                ),
                "fake_remote": ResourceSchema("fake_remote", REMOTE_ATTRS),
            }
        )

    def read(self, req: ReadRequest) -> ReadResponse:
        return ReadResponse({i.address: i.state for i in req.instances})

    def apply(self, req: ApplyRequest) -> ApplyResponse:
        raise AssertionError("the planner never applies")


def plan_of(
    tmp_path: Path,
    yaml: str,
    state: Mapping[str, dict[str, Any]] = (),
    outputs: Mapping[str, Any] = (),
    **opts: Any,
):
    (tmp_path / "main.kp.yaml").write_text(textwrap.dedent(yaml))
    cfg, diags = load_module(str(tmp_path))
    assert cfg is not None and not diags.has_errors, [str(d) for d in diags]
    cg, gdiags = build_graph(cfg)
    assert not gdiags.has_errors, [str(d) for d in gdiags]
    records = {
        a: ResourceRecord.from_addr(a, provider="fake", attributes=attrs)
        for a, attrs in dict(state).items()
    }
    inputs = PlanInputs(
        cg=cg,
        root_dir=str(tmp_path),
        variables={},
        records=records,
        outputs=dict(outputs),
        registry=ProviderRegistry([FakeContainers()]),
        workspace="default",
        lineage="l",
        serial=1,
        input_checksum="x",
    )
    plan, pdiags = make_plan(inputs, PlanOptions(refresh=False, **opts))
    return plan, pdiags


MODULE = """
resources:
  fake_config.conf:
    for_each: {a: one, b: two}
    text: "setting=${each.value}"
  fake_container.svc:
    for_each: {a: x, b: y}
    image: "img:1"
    env: {CONF: "${fake_config.conf[each.key].text}"}
    restart_on: ["fake_config.conf[each.key]"]
"""

APPLIED = {
    'fake_config.conf["a"]': {"text": "setting=old", "id": "c1"},
    'fake_config.conf["b"]': {"text": "setting=two", "id": "c2"},
    'fake_container.svc["a"]': {"image": "img:1", "env": {"CONF": "setting=one"}, "id": "s1"},
    'fake_container.svc["b"]': {"image": "img:1", "env": {"CONF": "setting=two"}, "id": "s2"},
}


def actions(plan) -> dict[str, Action]:
    return {c.address: c.action for c in plan.changes if c.action is not Action.NOOP}


def test_only_the_container_whose_config_changed_restarts(tmp_path: Path) -> None:
    plan, diags = plan_of(tmp_path, MODULE, APPLIED)
    assert not diags.has_errors
    assert actions(plan) == {
        'fake_config.conf["a"]': Action.UPDATE,
        'fake_container.svc["a"]': Action.RESTART,
    }
    restart = next(c for c in plan.changes if c.address == 'fake_container.svc["a"]')
    assert [r.message for r in restart.reasons] == ['restart: fake_config.conf["a"] changed']
    assert plan.summary().restart == 1


def test_force_new_attribute_replaces_and_says_why(tmp_path: Path) -> None:
    state = dict(APPLIED)
    state['fake_config.conf["a"]'] = {"text": "setting=one", "id": "c1"}
    state['fake_container.svc["b"]'] = {
        "image": "img:0",
        "env": {"CONF": "setting=two"},
        "id": "s2",
    }
    plan, _ = plan_of(tmp_path, MODULE, state)
    assert actions(plan) == {'fake_container.svc["b"]': Action.REPLACE}
    change = next(c for c in plan.changes if c.action is Action.REPLACE)
    assert [r.message for r in change.reasons] == ["image forces replacement"]


def test_ignore_changes_and_replace_request(tmp_path: Path) -> None:
    module = MODULE.replace(
        '    restart_on: ["fake_config.conf[each.key]"]', "    ignore_changes: [env]"
    )
    state = dict(APPLIED)
    state['fake_config.conf["a"]'] = {"text": "setting=one", "id": "c1"}
    state['fake_container.svc["a"]'] = {"image": "img:1", "env": {"CONF": "drifted"}, "id": "s1"}
    plan, _ = plan_of(tmp_path, module, state)
    assert actions(plan) == {}
    plan, _ = plan_of(tmp_path, module, state, replace=('fake_container.svc["b"]',))
    assert actions(plan) == {'fake_container.svc["b"]': Action.REPLACE}


def test_orphans_are_deleted_and_prevent_destroy_refuses(tmp_path: Path) -> None:
    state = dict(APPLIED)
    state['fake_config.conf["gone"]'] = {"text": "x", "id": "c9"}
    plan, _ = plan_of(tmp_path, MODULE, state)
    assert actions(plan)['fake_config.conf["gone"]'] is Action.DELETE
    guarded = MODULE.replace('    image: "img:1"', '    image: "img:2"\n    prevent_destroy: true')
    _, diags = plan_of(tmp_path, guarded, APPLIED)
    assert diags.has_errors
    assert "prevent_destroy" in str(diags.errors[0])


def test_targets_include_dependencies_and_excludes_propagate(tmp_path: Path) -> None:
    plan, _ = plan_of(tmp_path, MODULE, {}, targets=('fake_container.svc["b"]',))
    assert actions(plan) == {
        'fake_config.conf["a"]': Action.CREATE,
        'fake_config.conf["b"]': Action.CREATE,
        'fake_container.svc["b"]': Action.CREATE,
    }
    plan, _ = plan_of(tmp_path, MODULE, {}, excludes=("fake_config.conf",))
    assert actions(plan) == {}


def test_destroy_plan_of_one_instance_takes_its_dependents(tmp_path: Path) -> None:
    state = {a: attrs for a, attrs in APPLIED.items()}
    (tmp_path / "main.kp.yaml").write_text(textwrap.dedent(MODULE))
    cfg, _ = load_module(str(tmp_path))
    assert cfg is not None
    records = {
        a: ResourceRecord.from_addr(
            a,
            provider="fake",
            attributes=v,
            dependencies=(a.replace("fake_container.svc", "fake_config.conf"),)
            if a.startswith("fake_container")
            else (),
        )
        for a, v in state.items()
    }
    cg, _ = build_graph(cfg)
    inputs = PlanInputs(
        cg,
        str(tmp_path),
        {},
        records,
        {},
        ProviderRegistry([FakeContainers()]),
        "default",
        "l",
        1,
        "x",
    )
    plan, _ = make_plan(
        inputs,
        PlanOptions(mode=PlanMode.DESTROY, refresh=False, targets=('fake_config.conf["a"]',)),
    )
    assert actions(plan) == {
        'fake_config.conf["a"]': Action.DELETE,
        'fake_container.svc["a"]': Action.DELETE,
    }


def test_destroy_with_exclude_keeps_it_and_what_it_depends_on(tmp_path: Path) -> None:
    module = MODULE + '  fake_config.guarded: {text: "g", prevent_destroy: true}\n'
    state = {**APPLIED, "fake_config.guarded": {"text": "g", "id": "g1"}}
    plan, diags = plan_of(tmp_path, module, state, mode=PlanMode.DESTROY)
    assert "prevent_destroy" in str(diags.errors[0])  # its hint: change the plan (-exclude)
    (tmp_path / "main.kp.yaml").write_text(textwrap.dedent(module))
    cfg, _ = load_module(str(tmp_path))
    assert cfg is not None
    cg, _ = build_graph(cfg)
    records = {
        a: ResourceRecord.from_addr(
            a,
            provider="fake",
            attributes=v,
            dependencies=(a.replace("fake_container.svc", "fake_config.conf"),)
            if a.startswith("fake_container")
            else (),
        )
        for a, v in state.items()
    }
    inputs = PlanInputs(
        cg, str(tmp_path), {}, records, {}, ProviderRegistry([FakeContainers()]), "default", "l",
        1, "x",
    )  # fmt: skip
    excludes = ("fake_config.guarded", 'fake_container.svc["a"]')
    plan, diags = make_plan(
        inputs, PlanOptions(mode=PlanMode.DESTROY, refresh=False, excludes=excludes)
    )
    assert not diags.has_errors, [str(d) for d in diags]
    # svc["a"] stays, and so does the config it reads; svc["b"] and its config go.
    assert actions(plan) == {
        'fake_config.conf["b"]': Action.DELETE,
        'fake_container.svc["b"]': Action.DELETE,
    }


def test_targeted_destroy_deletes_only_the_outputs_that_read_what_it_destroys(
    tmp_path: Path,
) -> None:
    module = MODULE + textwrap.dedent("""
        fake_config.other: {text: "x"}
    outputs:
      conf_a: ${fake_config.conf["a"].text}
      via_local: ${local.svc}
      other: ${fake_config.other.id}
      constant: "c"
    locals:
      svc: ${fake_container.svc["b"].id}
    """).replace("\n    fake_config.other", "\n  fake_config.other", 1)
    state = {**APPLIED, "fake_config.other": {"text": "x", "id": "o1"}}
    recorded = {"conf_a": "setting=old", "via_local": "s2", "other": "o1", "constant": "c"}

    def deleted(**opts: Any) -> list[str]:
        plan, diags = plan_of(tmp_path, module, state, recorded, mode=PlanMode.DESTROY, **opts)
        assert not diags.has_errors, [str(d) for d in diags]
        assert all(o.action is Action.DELETE for o in plan.outputs)
        return [o.name for o in plan.outputs]

    assert deleted() == ["conf_a", "constant", "other", "via_local"]
    assert deleted(targets=("fake_container.svc",)) == ["via_local"]
    assert deleted(targets=("fake_config.other",)) == ["other"]
    assert deleted(targets=('fake_config.conf["a"]',)) == ["conf_a"]


def test_references_are_remembered_per_value_not_per_reused_id(tmp_path: Path) -> None:
    # The evaluator remembers each raw value's references. A value made for the
    # call (dict(res.config)) is freed afterwards, and the next one may get its id:
    # keyed by id alone, that one got the first one's references, and an instance
    # recorded the wrong dependencies (destroy -exclude then deleted what it needs).
    (tmp_path / "main.kp.yaml").write_text("locals: {a: 1, b: 2}\n")
    cfg, _ = load_module(str(tmp_path))
    assert cfg is not None
    cg, _ = build_graph(cfg)
    ev = Evaluator(cg, {}, None, root_dir=str(tmp_path))  # type: ignore[arg-type]
    positions = Positions(SourcePos("f", 1, 1), {})
    for name in "abcdefgh":
        refs = ev._refs_of({"x": f"${{local.{name}}}"}, positions)
        assert [str(r) for r in refs] == [f"local.{name}"]


def test_cycle_is_an_error_that_prints_the_cycle(tmp_path: Path) -> None:
    (tmp_path / "main.kp.yaml").write_text(
        textwrap.dedent("""
        locals:
          a: ${local.b}
          b: ${local.a}
    """)
    )
    cfg, _ = load_module(str(tmp_path))
    assert cfg is not None
    _, diags = build_graph(cfg)
    (err,) = diags.errors
    assert err.summary == "dependency cycle"
    assert (
        "local.a → local.b → local.a" in err.detail or "local.b → local.a → local.b" in err.detail
    )
    assert err.pos is not None and err.pos.line in (3, 4)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ('locals:\n  a: "x ${local.a}"\n', "local.a @ 2:9"),
        ("resources:\n  null_resource.n:\n    count: 2\n"
         '    triggers: {x: "${null_resource.n[0].id}"}\n', "null_resource.n @ 4:19"),
        ("resources:\n  null_resource.n:\n    restart_on: [null_resource.n]\n",
         "null_resource.n @ 3:18"),
        ("resources:\n  null_resource.n:\n    depends_on: [null_resource.n]\n",
         "null_resource.n @ 2:3"),
    ],
    ids=["local", "attribute", "trigger", "depends_on"],
)  # fmt: skip
def test_a_block_that_refers_to_itself_is_an_error(tmp_path: Path, body: str, where: str) -> None:
    # A self-edge used to be dropped silently: a local read as "not declared", a
    # resource as having no instances, and depends_on / restart_on on itself passed.
    (tmp_path / "main.kp.yaml").write_text(body)
    cfg, _ = load_module(str(tmp_path))
    assert cfg is not None
    _, diags = build_graph(cfg)
    (err,) = diags.errors
    assert err.code == "self-reference" and err.pos is not None
    assert f"{err.summary} @ {err.pos.line}:{err.pos.col}" == where.replace(
        " @", " refers to itself @"
    )


def test_undeclared_reference_names_file_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "main.kp.yaml").write_text("resources:\n  fake_config.c:\n    text: ${var.nope}\n")
    cfg, _ = load_module(str(tmp_path))
    assert cfg is not None
    _, diags = build_graph(cfg)
    (err,) = diags.errors
    assert 'undeclared variable "nope"' in err.summary
    assert err.pos is not None and err.pos.line == 3


def test_unknown_resource_type_is_a_clear_error(tmp_path: Path) -> None:
    _, diags = plan_of(tmp_path, "resources:\n  nosuch_thing.x:\n    a: 1\n")
    assert 'unknown resource type "nosuch_thing"' in str(diags.errors[0])
    assert diags.errors[0].pos is not None


def test_an_evaluation_error_is_a_diagnostic_with_its_position(tmp_path: Path) -> None:
    _, diags = plan_of(tmp_path, "resources:\n  fake_config.c:\n    text: ${1 // 0}\n")
    (err,) = diags.errors
    assert err.pos is not None and err.pos.line == 3
    assert "zero" in str(err).lower()


HOSTS_MODULE = """
hosts:
  h1: {address: 10.231.0.11, connection: local}
  h2: {address: 10.231.0.12, connection: local}
resources:
  fake_config.conf:
    for_each: ${hosts}
    host: ${each.key}
    text: "listen ${host[each.key].address}"
  fake_config.peers:
    for_each: ${hosts}
    host: ${each.key}
    text: "peer ${fake_config.conf['h2' if each.key == 'h1' else 'h1'].id}"
"""


def test_host_target_reads_only_that_hosts_rows_and_others_lazily(tmp_path: Path) -> None:
    (tmp_path / "main.kp.yaml").write_text(textwrap.dedent(HOSTS_MODULE))
    cfg, _ = load_module(str(tmp_path))
    assert cfg is not None
    cg, _ = build_graph(cfg)
    state = {
        'fake_config.conf["h1"]': {"text": "listen 10.231.0.11", "id": "c1"},
        'fake_config.conf["h2"]': {"text": "listen OLD", "id": "c2"},
        'fake_config.peers["h1"]': {"text": "peer c2", "id": "p1"},
        'fake_config.peers["h2"]': {"text": "peer c1", "id": "p2"},
    }
    records = {
        a: ResourceRecord.from_addr(a, provider="fake", attributes=v, host=a[-4:-2])
        for a, v in state.items()
    }
    asked: list[object] = []

    def load(blocks: object, hosts: set[str] | None) -> dict[str, ResourceRecord]:
        asked.append(hosts)
        return {a: r for a, r in records.items() if hosts is None or r.host in hosts}

    fetched: list[str] = []

    def get(address: str) -> ResourceRecord | None:
        fetched.append(address)
        return records.get(address)

    inputs = PlanInputs(
        cg,
        str(tmp_path),
        {},
        load,
        {},
        ProviderRegistry([FakeContainers()]),
        "default",
        "l",
        1,
        "x",
        get_record=get,
    )
    plan, diags = make_plan(inputs, PlanOptions(refresh=False, targets=("host:h1",)))
    assert not diags.has_errors, [str(d) for d in diags]
    assert asked == [{"h1"}]
    # h2's config changed, but it is not targeted; h1's peer reads h2's recorded id.
    assert actions(plan) == {}
    assert fetched == ['fake_config.conf["h2"]']
    plan, _ = make_plan(inputs, PlanOptions(refresh=False, targets=("host:h2",)))
    assert actions(plan) == {'fake_config.conf["h2"]': Action.UPDATE}


NODE_ROOT = """
hosts:
  h1: {address: 10.231.0.11, connection: local}
  h2: {address: 10.231.0.12, connection: local}
  h3: {address: 10.231.0.13, connection: local}
variables:
  port: {type: number, default: 7}
modules:
  node:
    source: ./node
    for_each: ${hosts}
    hosts: ${[each.key]}
    inputs: {port: "${var.port}"}
"""

NODE = """
variables:
  port: {type: number}
resources:
  fake_config.conf:
    host: ${hosts[0]}
    text: "port ${var.port}"
  fake_container.svc:
    host: ${hosts[0]}
    image: "img:1"
    env: {CONF: "${fake_config.conf.text}"}
    restart_on: [fake_config.conf]
"""


def _row_loader(
    state: dict[str, dict[str, Any]], asked: list[tuple[object, ...]]
) -> Callable[..., dict[str, ResourceRecord]]:
    """A RecordLoader over ``state`` answering as StateStore.resources does, noting each ask."""
    records = {
        a: ResourceRecord.from_addr(a, provider="fake", attributes=v) for a, v in state.items()
    }

    def load(
        blocks: set[tuple[str, ...]] | None,
        hosts: set[str] | None,
        modules: dict[str, set[tuple[str, ...]] | None] | None = None,
    ) -> dict[str, ResourceRecord]:
        asked.append((blocks, hosts, modules))
        return {
            a: r
            for a, r in records.items()
            if blocks is None
            or (r.type, r.name) in blocks
            or any(
                (r.module == m or r.module.startswith(m + "."))
                and (wanted is None or (r.type, r.name) in wanted)
                for m, wanted in (modules or {}).items()
            )
        }

    return load


def test_a_module_instance_target_reads_and_plans_only_that_instance(tmp_path: Path) -> None:
    (tmp_path / "main.kp.yaml").write_text(textwrap.dedent(NODE_ROOT))
    (tmp_path / "node").mkdir()
    (tmp_path / "node" / "main.kp.yaml").write_text(textwrap.dedent(NODE))
    cfg, diags = load_module(str(tmp_path))
    assert cfg is not None and not diags.has_errors, [str(d) for d in diags]
    cg, _ = build_graph(cfg)
    state: dict[str, dict[str, Any]] = {}
    for h in ("h1", "h2", "h3"):  # every host's config is out of date
        m = f'module.node["{h}"]'
        state[f"{m}.fake_config.conf"] = {"text": "port 6", "id": f"c-{h}"}
        state[f"{m}.fake_container.svc"] = {"image": "img:1", "env": {"CONF": "port 6"}}
    state['module.node["h1"].fake_config.gone'] = {"text": "removed", "id": "g"}
    asked: list[tuple[object, ...]] = []
    load = _row_loader(state, asked)

    planned: list[str] = []

    class Counting(FakeContainers):
        def plan(self, req: PlanRequest):  # type: ignore[no-untyped-def]
            planned.append(req.address)
            return super().plan(req)

    inputs = PlanInputs(
        cg, str(tmp_path), {}, load, {}, ProviderRegistry([Counting()]), "default", "l", 1, "x"
    )
    plan, diags = make_plan(inputs, PlanOptions(refresh=False, targets=('module.node["h1"]',)))
    assert not diags.has_errors, [str(d) for d in diags]
    # Only h1's rows were read, and only h1's instances planned: not h2's and h3's too.
    assert asked == [(set(), None, {'module.node["h1"]': None})]
    assert sorted(planned) == [
        'module.node["h1"].fake_config.conf',
        'module.node["h1"].fake_container.svc',
    ]
    assert actions(plan) == {
        'module.node["h1"].fake_config.conf': Action.UPDATE,
        'module.node["h1"].fake_config.gone': Action.DELETE,  # only the state knows it
        'module.node["h1"].fake_container.svc': Action.UPDATE,
    }
    # Two instances of the call: both, and no other.
    asked.clear()
    targets = ('module.node["h1"]', 'module.node["h3"].fake_container.svc')
    plan, _ = make_plan(inputs, PlanOptions(refresh=False, targets=targets))
    conf, svc = ("fake_config", "conf"), ("fake_container", "svc")
    assert asked == [(set(), None, {'module.node["h1"]': None, 'module.node["h3"]': {conf, svc}})]
    assert 'module.node["h3"].fake_container.svc' in actions(plan)
    assert not any("h2" in a for a in actions(plan))
    # A resource target in an instance reads (and so refreshes) what it needs there,
    # not its siblings: not the container, for its config.
    asked.clear()
    target = 'module.node["h1"].fake_config.conf'
    plan, _ = make_plan(inputs, PlanOptions(refresh=False, targets=(target,)))
    assert asked == [(set(), None, {'module.node["h1"]': {conf}})]
    assert actions(plan) == {target: Action.UPDATE}
    # One only the state knows is read, to be deleted.
    asked.clear()
    gone = 'module.node["h1"].fake_config.gone'
    plan, _ = make_plan(inputs, PlanOptions(refresh=False, targets=(gone,)))
    assert asked[0] == (set(), None, {'module.node["h1"]': {("fake_config", "gone")}})
    assert actions(plan) == {gone: Action.DELETE}
    # A target of every instance (module.node) is no focus: every row is read.
    asked.clear()
    make_plan(inputs, PlanOptions(refresh=False, targets=("module.node",)))
    assert asked == [(None, None, None)]


NESTED_ROOT = """
hosts:
  h1: {address: 10.231.0.11, connection: local}
  h2: {address: 10.231.0.12, connection: local}
resources:
  fake_config.shared:
    text: "shared"
modules:
  host:
    source: ./host
    for_each: ${hosts}
    hosts: ${[each.key]}
    inputs: {shared: "${fake_config.shared.text}"}
"""

NESTED_HOST = """
variables:
  shared: {type: string}
resources:
  fake_config.base:
    host: ${hosts[0]}
    text: "base ${var.shared}"
modules:
  svc:
    source: ./svc
    for_each: {a: 1, b: 2}
    hosts: ${hosts}
    inputs: {base: "${fake_config.base.text}", name: "${each.key}"}
"""

NESTED_SVC = """
variables:
  base: {type: string}
  name: {type: string}
resources:
  fake_config.conf:
    host: ${hosts[0]}
    text: "${var.base} ${var.name}"
"""


def test_a_nested_module_target_reads_only_the_instances_on_its_way(tmp_path: Path) -> None:
    (tmp_path / "main.kp.yaml").write_text(textwrap.dedent(NESTED_ROOT))
    (tmp_path / "host" / "svc").mkdir(parents=True)
    (tmp_path / "host" / "main.kp.yaml").write_text(textwrap.dedent(NESTED_HOST))
    (tmp_path / "host" / "svc" / "main.kp.yaml").write_text(textwrap.dedent(NESTED_SVC))
    cfg, diags = load_module(str(tmp_path))
    assert cfg is not None and not diags.has_errors, [str(d) for d in diags]
    cg, _ = build_graph(cfg)
    state: dict[str, dict[str, Any]] = {"fake_config.shared": {"text": "shared", "id": "s"}}
    for h in ("h1", "h2"):  # converged
        m = f'module.host["{h}"]'
        state[f"{m}.fake_config.base"] = {"text": "base shared", "id": f"b-{h}"}
        for k in ("a", "b"):
            state[f'{m}.module.svc["{k}"].fake_config.conf'] = {"text": f"base shared {k}"}
    asked: list[tuple[object, ...]] = []
    load = _row_loader(state, asked)

    inputs = PlanInputs(
        cg,
        str(tmp_path),
        {},
        load,
        {},
        ProviderRegistry([FakeContainers()]),
        "default",
        "l",
        1,
        "x",
    )
    conf, base = ("fake_config", "conf"), ("fake_config", "base")
    target = 'module.host["h1"].module.svc["a"].fake_config.conf'
    plan, diags = make_plan(inputs, PlanOptions(refresh=False, targets=(target,)))
    assert not diags.has_errors, [str(d) for d in diags]
    # What it depends on on the way is read in h1's instance alone, the root's at
    # the root: not base and conf of every host, to be refreshed.
    focused = {'module.host["h1"].module.svc["a"]': {conf}, 'module.host["h1"]': {base}}
    assert asked[0] == (set(), None, {**focused, "": {("fake_config", "shared")}})
    assert actions(plan) == {}
    # Targets through different instances of the way are no focus: each call
    # would be evaluated whole, so nothing may be left unread (or it would be
    # planned as new).
    asked.clear()
    other = 'module.host["h2"].fake_config.base'
    plan, diags = make_plan(inputs, PlanOptions(refresh=False, targets=(target, other)))
    assert not diags.has_errors, [str(d) for d in diags]
    assert asked[0][2] is None
    assert actions(plan) == {}


class _Box:
    """A stand-in SecretBox for the plan file: no secrets in these plans."""

    def encrypt(self, plaintext: bytes, aad: bytes) -> str:
        return plaintext.decode()

    def decrypt(self, token: str, aad: bytes) -> bytes:
        return token.encode()


def test_a_replace_carries_the_order_its_type_declares(tmp_path: Path) -> None:
    state = dict(APPLIED)
    state['fake_config.conf["a"]'] = {"text": "setting=one", "id": "c1"}
    state['fake_container.svc["b"]'] = {"image": "img:0", "env": {"CONF": "setting=two"}}
    (tmp_path / "m").mkdir()
    plan, _ = plan_of(tmp_path / "m", MODULE, state, replace=('fake_config.conf["b"]',))
    by_addr = {c.address: c for c in plan.changes if c.action is Action.REPLACE}
    assert by_addr['fake_container.svc["b"]'].replace_order == CREATE_BEFORE_DESTROY
    assert by_addr['fake_config.conf["b"]'].replace_order == DESTROY_BEFORE_CREATE

    doc = plan_to_json(plan)
    acts = {rc["address"]: rc["change"]["actions"] for rc in doc["resource_changes"]}
    assert acts['fake_container.svc["b"]'] == ["create", "delete"]  # Terraform's c-b-d
    assert acts['fake_config.conf["b"]'] == ["delete", "create"]

    saved = tmp_path / "tfplan"
    write_planfile(str(saved), plan, _Box())
    again = read_planfile(str(saved), _Box(), plan.lineage)
    saved_orders = {c.address: c.replace_order for c in again.changes}
    assert saved_orders == {c.address: c.replace_order for c in plan.changes if c.action.is_change}


REMOTE = """
variables:
  password: {type: string, default: "new-admin-pw"}
  description: {type: string, default: "one"}
resources:
  fake_remote.project:
    name: "${var.description}"
    auth: {url: "http://new:5000", password: "${var.password}"}
"""
REMOTE_STATE = {
    "fake_remote.project": {
        "name": "one",
        "auth": {"url": "http://old:5000", "password": "old-admin-pw"},
        "id": "p1",
    }
}


def test_a_connection_attribute_changed_alone_is_no_change(tmp_path: Path) -> None:
    plan, diags = plan_of(tmp_path, REMOTE, REMOTE_STATE)
    assert not diags.has_errors
    assert actions(plan) == {}
    assert [c.action for c in plan.changes] == [Action.NOOP]


def test_a_connection_attribute_is_never_a_reason(tmp_path: Path) -> None:
    renamed = REMOTE.replace('default: "one"', 'default: "two"')
    plan, _ = plan_of(tmp_path, renamed, REMOTE_STATE)
    (change,) = plan.changes
    assert change.action is Action.UPDATE
    assert [r.message for r in change.reasons] == ["name changed"]
    # The new way to reach it is what the update records.
    assert change.after is not None and change.after["auth"]["url"] == "http://new:5000"


def test_default_plan_keeps_computed_values_when_only_the_connection_changed() -> None:
    schema = ResourceSchema("fake_remote", REMOTE_ATTRS)
    prior = REMOTE_STATE["fake_remote.project"]
    config = {"name": "one", "auth": {"url": "http://new:5000"}}
    resp = default_plan(
        schema, PlanRequest("fake_remote", "fake_remote.project", None, prior, config)
    )
    assert resp.planned["id"] == "p1"
    assert resp.planned["auth"] == {"url": "http://new:5000"}
    renamed = {**config, "name": "two"}
    resp = default_plan(
        schema, PlanRequest("fake_remote", "fake_remote.project", None, prior, renamed)
    )
    assert resp.planned["id"] is UNKNOWN


def test_an_output_depends_on_what_its_depends_on_names(tmp_path: Path) -> None:
    # The API's URL is known before its container runs; a caller that uses the
    # URL must still wait for the container (and a target takes it along).
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "main.kp.yaml").write_text(
        textwrap.dedent(
            """
            resources:
              fake_container.api: {image: "api:1"}
              fake_config.unrelated: {text: "x"}
            outputs:
              url:
                value: http://vip:5000
                depends_on: [fake_container.api]
              plain_url:
                value: http://vip:5000
            """
        )
    )
    module = """
    modules:
      api: {source: ./api}
    resources:
      fake_config.client: {text: "${module.api.url}"}
      fake_config.plain: {text: "${module.api.plain_url}"}
    """
    plan, _ = plan_of(tmp_path, module, {}, targets=("fake_config.client",))
    assert actions(plan) == {
        "fake_config.client": Action.CREATE,
        "module.api.fake_container.api": Action.CREATE,
    }
    plan, _ = plan_of(tmp_path, module, {}, targets=("fake_config.plain",))
    assert actions(plan) == {"fake_config.plain": Action.CREATE}


def test_an_output_depends_on_that_names_nothing_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "main.kp.yaml").write_text(
        "outputs:\n  url:\n    value: x\n    depends_on: [fake_container.nope]\n"
    )
    cfg, diags = load_module(str(tmp_path))
    assert cfg is not None and not diags.has_errors
    _, gdiags = build_graph(cfg)
    assert [str(d).split(": ", 1)[0] for d in gdiags] == [f"{tmp_path}/main.kp.yaml:4:18"]
    assert "fake_container.nope" in str(gdiags), [str(d) for d in gdiags]
