"""The executor on small modules with a fake provider (no hosts): order, bounds, failures.

Every ordering claim is checked with events and barriers, never with timing:
a wait that would only end because of a barrier between blocks carries a
generous timeout, and a test that reaches it fails (it does not pass slowly).
"""

from __future__ import annotations

import itertools
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from kplan.apply.executor import ApplyEvent, ApplyResult, apply_plan
from kplan.config.loader import load_module
from kplan.diagnostics import Diagnostic, KplanError
from kplan.graph.builder import build_graph
from kplan.plan.model import Plan
from kplan.plan.planner import PlanInputs, PlanOptions, make_plan
from kplan.plugins import ProviderRegistry
from kplan.provider_api import (
    ApplyRequest,
    ApplyResponse,
    Attribute,
    Provider,
    ProviderSchema,
    ReadRequest,
    ReadResponse,
    ResourceSchema,
)
from kplan.state.records import ResourceRecord
from kplan.transport.base import UNREACHABLE_CODE

# Long enough never to end a wait in a passing run; only a bug waits this long.
SAFETY = 20.0

HOSTS = """
hosts:
  a: {address: 10.0.0.1}
  b: {address: 10.0.0.2}
  c: {address: 10.0.0.3}
  d: {address: 10.0.0.4}
  e: {address: 10.0.0.5}
"""

Hook = Callable[[ApplyRequest], "Diagnostic | None"]


class FakeTasks(Provider):
    """``fake_task``: each apply calls the test's hook and counts the changes in flight."""

    name = "fake"

    def __init__(self, hook: Hook | None = None) -> None:
        self.hook = hook or (lambda req: None)
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.log: list[tuple[str, str]] = []  # ("start" | "end", address)

    def schema(self) -> ProviderSchema:
        attrs = {
            "input": Attribute("any", optional=True),
            "id": Attribute("string", computed=True),
        }
        return ProviderSchema({"fake_task": ResourceSchema("fake_task", attrs)})

    def read(self, req: ReadRequest) -> ReadResponse:
        return ReadResponse({i.address: i.state for i in req.instances})

    def apply(self, req: ApplyRequest) -> ApplyResponse:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.log.append(("start", req.address))
        try:
            error = self.hook(req)
        finally:
            with self.lock:
                self.in_flight -= 1
                self.log.append(("end", req.address))
        if error is not None:
            return ApplyResponse(None, [error])
        return ApplyResponse({**dict(req.planned or {}), "id": f"id-{req.address}"})

    def order(self, kind: str) -> list[str]:
        return [a for k, a in self.log if k == kind]


class MemoryRecorder:
    def __init__(self) -> None:
        self.rows: dict[str, ResourceRecord] = {}

    def put(self, record: ResourceRecord) -> None:
        self.rows[record.address] = record

    def delete(self, address: str) -> None:
        self.rows.pop(address, None)


def plan_and_apply(
    tmp_path: Path,
    yaml: str,
    provider: FakeTasks,
    parallelism: int = 10,
    records: dict[str, ResourceRecord] | None = None,
    recorder: MemoryRecorder | None = None,
) -> tuple[Plan, ApplyResult, list[ApplyEvent]]:
    (tmp_path / "main.kp.yaml").write_text(HOSTS + textwrap.dedent(yaml))
    cfg, diags = load_module(str(tmp_path))
    assert cfg is not None and not diags.has_errors, [str(d) for d in diags]
    cg, gdiags = build_graph(cfg)
    assert not gdiags.has_errors, [str(d) for d in gdiags]
    registry = ProviderRegistry([provider])
    inputs = PlanInputs(
        cg=cg,
        root_dir=str(tmp_path),
        variables={},
        records=dict(records or {}),
        outputs={},
        registry=registry,
        workspace="default",
        lineage="l",
        serial=1,
        input_checksum="x",
    )
    plan, pdiags = make_plan(inputs, PlanOptions(refresh=False))
    assert not pdiags.has_errors, [str(d) for d in pdiags]
    events: list[ApplyEvent] = []
    result = apply_plan(
        plan,
        cg=cg,
        variables={},
        records=dict(records or {}),
        registry=registry,
        recorder=recorder if recorder is not None else MemoryRecorder(),
        root_dir=str(tmp_path),
        parallelism=parallelism,
        notify=events.append,
    )
    return plan, result, events


def error(summary: str = "boom", code: str = "") -> Diagnostic:
    return Diagnostic.error(summary, code=code)


def done(result: ApplyResult) -> set[str]:
    return {c.address for c in result.done}


TWO_BLOCKS = """
resources:
  fake_task.first:
    for_each: {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6}
  fake_task.second:
    for_each: {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6}
"""


@pytest.mark.parametrize("n", [1, 3])
def test_parallelism_bounds_the_changes_in_flight_in_total(tmp_path: Path, n: int) -> None:
    # The first n changes meet at a barrier: it only opens if n run at once.
    meet = threading.Barrier(n, timeout=SAFETY)
    calls = iter(range(1000))
    lock = threading.Lock()

    extra = threading.Event()

    def hook(req: ApplyRequest) -> None:
        with lock:
            i = next(calls)
        if i < n:
            meet.wait()
            # Hold the n places a moment: a change started meanwhile is one too many
            # (the window only helps catch a bug; a correct run passes whatever the timing).
            extra.wait(0.2)
        else:
            extra.set()

    fake = FakeTasks(hook)
    _, result, _ = plan_and_apply(tmp_path, TWO_BLOCKS, fake, parallelism=n)
    assert result.ok and len(result.done) == 12
    assert fake.max_in_flight == n


def test_no_barrier_between_blocks(tmp_path: Path) -> None:
    # second["b"] needs only first["b"]: it must finish while first["a"] is still busy.
    second_b_done = threading.Event()

    def hook(req: ApplyRequest) -> None:
        if req.address == 'fake_task.first["a"]':
            assert second_b_done.wait(SAFETY), "second[b] waited for first[a]"
        if req.address == 'fake_task.second["b"]':
            second_b_done.set()

    fake = FakeTasks(hook)
    yaml = """
    resources:
      fake_task.first:
        for_each: {a: 1, b: 2}
        host: ${each.key}
      fake_task.second:
        for_each: {a: 1, b: 2}
        host: ${each.key}
        input: ${fake_task.first[each.key].id}
    """
    plan, result, _ = plan_and_apply(tmp_path, yaml, fake, parallelism=4)
    assert result.ok, result.failed
    ends = fake.order("end")
    assert ends.index('fake_task.second["b"]') < ends.index('fake_task.first["a"]')
    # Still in dependency order per instance, with the value now known.
    assert ends.index('fake_task.first["a"]') < ends.index('fake_task.second["a"]')
    second_a = next(c for c in result.done if c.address == 'fake_task.second["a"]')
    assert second_a.after is not None and second_a.after["input"] == 'id-fake_task.first["a"]'
    assert {str(d) for d in second_a.depends_on} == {'fake_task.first["a"]'}
    assert not plan.rolls


def test_a_failure_starts_nothing_new_and_lets_work_in_flight_finish(tmp_path: Path) -> None:
    b_started = threading.Event()
    a_failed = threading.Event()

    def hook(req: ApplyRequest) -> Diagnostic | None:
        if req.address == 'fake_task.x["a"]':
            assert b_started.wait(SAFETY)
            return error()
        if req.address == 'fake_task.x["b"]':
            b_started.set()
            assert a_failed.wait(SAFETY)  # still in flight when a fails
        return None

    def notify(e: ApplyEvent) -> None:
        if e.kind == "error":
            a_failed.set()

    fake = FakeTasks(hook)
    yaml = """
    resources:
      fake_task.x:
        for_each: {a: 1, b: 2, c: 3, d: 4}
      fake_task.y:
        input: ${fake_task.x["b"].id}
    """
    # With 2 places, c and d wait for a or b to finish: after a fails, they never start.
    (tmp_path / "main.kp.yaml").write_text(HOSTS + textwrap.dedent(yaml))
    _, result, events = _apply_with(tmp_path, fake, 2, notify)
    assert set(result.failed) == {'fake_task.x["a"]'}
    assert done(result) == {'fake_task.x["b"]'}
    assert result.not_started == [
        'fake_task.x["c"]',
        'fake_task.x["d"]',
        "fake_task.y",
    ]
    assert set(fake.order("start")) == {'fake_task.x["a"]', 'fake_task.x["b"]'}
    assert [e.kind for e in events if e.address == 'fake_task.x["a"]'] == ["start", "error"]


def _apply_with(
    tmp_path: Path, fake: FakeTasks, parallelism: int, notify: Callable[[ApplyEvent], None]
) -> tuple[Plan, ApplyResult, list[ApplyEvent]]:
    events: list[ApplyEvent] = []

    def both(e: ApplyEvent) -> None:
        events.append(e)
        notify(e)

    cfg, _ = load_module(str(tmp_path))
    assert cfg is not None
    cg, _ = build_graph(cfg)
    registry = ProviderRegistry([fake])
    inputs = PlanInputs(
        cg=cg,
        root_dir=str(tmp_path),
        variables={},
        records={},
        outputs={},
        registry=registry,
        workspace="default",
        lineage="l",
        serial=1,
        input_checksum="x",
    )
    plan, _ = make_plan(inputs, PlanOptions(refresh=False))
    result = apply_plan(
        plan,
        cg=cg,
        variables={},
        records={},
        registry=registry,
        recorder=MemoryRecorder(),
        root_dir=str(tmp_path),
        parallelism=parallelism,
        notify=both,
    )
    return plan, result, events


def test_a_down_hosts_dependents_wait_and_other_hosts_go_on(tmp_path: Path) -> None:
    def hook(req: ApplyRequest) -> Diagnostic | None:
        if req.address == 'fake_task.x["a"]':
            return error("host a is unreachable", code=UNREACHABLE_CODE)
        return None

    fake = FakeTasks(hook)
    yaml = """
    resources:
      fake_task.x:
        for_each: {a: 1, b: 2}
        host: ${each.key}
      fake_task.y:
        for_each: {a: 1, b: 2}
        host: ${each.key}
        input: ${fake_task.x[each.key].id}
      fake_task.z:
        host: b
        input: ${fake_task.y["a"].id}
    """
    _, result, _ = plan_and_apply(tmp_path, yaml, fake, parallelism=4)
    assert set(result.failed) == {'fake_task.x["a"]'}
    assert done(result) == {'fake_task.x["b"]', 'fake_task.y["b"]'}
    # y["a"] is on the down host; z is on host b but needs y["a"].
    assert result.not_started == ['fake_task.y["a"]', "fake_task.z"]
    assert 'fake_task.y["a"]' not in fake.order("start")


ROLLING = """
resources:
  fake_task.svc:
    for_each: {a: 1, b: 2, c: 3, d: 4, e: 5}
    host: ${each.key}
    input: 2
    rolling: {serial: 2}
  fake_task.other:
    for_each: {a: 1, b: 2}
    input: 2
"""


def deployed(tmp_path: Path, yaml: str) -> dict[str, ResourceRecord]:
    """The records of YAML applied with input 1 (creates: they do not roll)."""
    recorder = MemoryRecorder()
    plan, result, _ = plan_and_apply(
        tmp_path, yaml.replace("input: 2", "input: 1"), FakeTasks(), recorder=recorder
    )
    assert result.ok and plan.rolls == ()
    return recorder.rows


def roll(
    tmp_path: Path, yaml: str, fake: FakeTasks, parallelism: int = 10
) -> tuple[Plan, ApplyResult, list[ApplyEvent]]:
    """YAML's input 1 -> 2 on a deployed configuration: every instance an update."""
    records = deployed(tmp_path, yaml)
    return plan_and_apply(tmp_path, yaml, fake, parallelism, records=records)


def batches_of(plan: Plan) -> list[list[str]]:
    (roll,) = plan.rolls
    return [[str(a) for a in batch] for batch in roll.batches]


def pairs_meet() -> Callable[[str], None]:
    """Batches [a, b] and [c, d] each meet at a barrier: proof that a batch runs together."""
    meet = {k: threading.Barrier(2, timeout=SAFETY) for k in ("ab", "cd")}

    def wait(address: str) -> None:
        for keys, barrier in meet.items():
            if any(address == f'fake_task.svc["{k}"]' for k in keys):
                barrier.wait()

    return wait


def test_rolling_changes_batch_after_batch_in_key_order(tmp_path: Path) -> None:
    meet = pairs_meet()
    fake = FakeTasks(lambda req: meet(req.address))
    plan, result, _ = roll(tmp_path, ROLLING, fake)
    assert result.ok
    batches = batches_of(plan)
    assert batches == [
        ['fake_task.svc["a"]', 'fake_task.svc["b"]'],
        ['fake_task.svc["c"]', 'fake_task.svc["d"]'],
        ['fake_task.svc["e"]'],
    ]
    log = [(k, a) for k, a in fake.log if a.startswith("fake_task.svc")]
    for earlier, later in itertools.pairwise(batches):
        last_end = max(log.index(("end", a)) for a in earlier)
        first_start = min(log.index(("start", a)) for a in later)
        assert last_end < first_start


def test_a_failed_batch_stops_the_roll(tmp_path: Path) -> None:
    meet = pairs_meet()

    def hook(req: ApplyRequest) -> Diagnostic | None:
        meet(req.address)  # d is in flight when c fails
        return error("health gate failed") if req.address == 'fake_task.svc["c"]' else None

    fake = FakeTasks(hook)
    _, result, _ = roll(tmp_path, ROLLING, fake)
    assert set(result.failed) == {'fake_task.svc["c"]'}
    assert {'fake_task.svc["a"]', 'fake_task.svc["b"]', 'fake_task.svc["d"]'} <= done(result)
    assert 'fake_task.svc["e"]' in result.not_started
    assert 'fake_task.svc["e"]' not in fake.order("start")


def test_a_roll_stops_at_a_down_host_while_other_blocks_go_on(tmp_path: Path) -> None:
    def hook(req: ApplyRequest) -> Diagnostic | None:
        if req.address == 'fake_task.svc["a"]':
            return error("unreachable", code=UNREACHABLE_CODE)
        return None

    fake = FakeTasks(hook)
    _, result, _ = roll(tmp_path, ROLLING, fake)
    assert done(result) == {
        'fake_task.svc["b"]',
        'fake_task.other["a"]',
        'fake_task.other["b"]',
    }
    assert result.not_started == [f'fake_task.svc["{k}"]' for k in "cde"]


def test_rolling_percent_and_serial_one(tmp_path: Path) -> None:
    yaml = ROLLING.replace("{serial: 2}", '"40%"')
    plan, result, _ = roll(tmp_path, yaml, FakeTasks())
    assert result.ok
    assert [len(b) for b in batches_of(plan)] == [2, 2, 1]
    assert plan.rolls[0].serial == "40%"
    fake = FakeTasks()
    plan, result, _ = roll(tmp_path, ROLLING.replace("{serial: 2}", "1"), fake)
    assert [len(b) for b in batches_of(plan)] == [1] * 5
    svc = [(k, a) for k, a in fake.log if "svc" in a]
    assert svc == [(k, f'fake_task.svc["{x}"]') for x in "abcde" for k in ("start", "end")]


def test_values_known_after_apply_reach_users_through_locals_modules_and_count(
    tmp_path: Path,
) -> None:
    (tmp_path / "child").mkdir()
    (tmp_path / "child" / "main.kp.yaml").write_text(
        textwrap.dedent(
            """
            variables:
              seed: {type: string}
            resources:
              fake_task.inner:
                count: 2
                input: "${var.seed}-${count.index}"
            outputs:
              second: {value: "${fake_task.inner[1].id}"}
            """
        )
    )
    yaml = """
    locals:
      joined: '${fake_task.one.id}+${fake_task.many["b"].id}'
    modules:
      child:
        source: ./child
        inputs: {seed: "${local.joined}"}
    resources:
      fake_task.one: {}
      fake_task.many:
        for_each: {a: 1, b: 2}
        input: ${fake_task.one.id}
      fake_task.last:
        input: ${module.child.second}
    outputs:
      final: {value: "${fake_task.last.input}"}
    """
    _, result, _ = plan_and_apply(tmp_path, yaml, FakeTasks(), parallelism=3)
    assert result.ok, result.failed
    after = {c.address: dict(c.after or {}) for c in result.done}
    assert after['fake_task.many["a"]']["input"] == "id-fake_task.one"
    seed = 'id-fake_task.one+id-fake_task.many["b"]'
    assert after["module.child.fake_task.inner[1]"]["input"] == f"{seed}-1"
    assert after["fake_task.last"]["input"] == "id-module.child.fake_task.inner[1]"
    assert result.outputs["final"][0] == "id-module.child.fake_task.inner[1]"


def test_ctrl_c_while_a_change_is_in_flight_starts_nothing_new(tmp_path: Path) -> None:
    """A real SIGINT while the first of a chain runs: the apply raises, the change in
    flight finishes, and nothing after it starts — not even after apply_plan returns."""
    import os
    import signal

    started: list[str] = []

    def hook(req: ApplyRequest) -> Diagnostic | None:
        started.append(req.address)
        if req.address == 'fake_task.x["a"]':
            # The walk is over by now (for_each lookups wait per key): the main thread
            # waits in the scheduler's join when Ctrl-C reaches it, x still in flight.
            threading.Event().wait(0.3)
            os.kill(os.getpid(), signal.SIGINT)
            threading.Event().wait(0.3)
        return None

    provider = FakeTasks(hook)
    chain = """
    resources:
      fake_task.x:
        for_each: {a: 1}
      fake_task.y:
        for_each: {a: 1}
        input: ${fake_task.x[each.key].id}
      fake_task.z:
        for_each: {a: 1}
        input: ${fake_task.y[each.key].id}
    """
    # Python's own Ctrl-C handler, whatever this process inherited: a test run started
    # in the background by a non-interactive shell has SIGINT ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            plan_and_apply(tmp_path, chain, provider, parallelism=2)
    finally:
        signal.signal(signal.SIGINT, previous)
    # apply_plan has returned; its threads are joined: nothing can start any more.
    assert started == ['fake_task.x["a"]']
    assert provider.order("end") == ['fake_task.x["a"]']


class LockedStateRecorder(MemoryRecorder):
    """A state that refuses one address's write (a locked database, a full disk)."""

    def put(self, record: ResourceRecord) -> None:
        if record.address == 'fake_task.svc["b"]':
            raise KplanError(Diagnostic.error("the state database is locked"))
        super().put(record)


def test_a_change_the_state_cannot_record_fails_by_name_and_stops_the_apply(
    tmp_path: Path,
) -> None:
    yaml = """
    resources:
      fake_task.svc:
        for_each: {a: 1, b: 2}
        input: 2
      fake_task.after:
        input: ${fake_task.svc["b"].input}
    """
    recorder = LockedStateRecorder()
    # b is done on its host but not recorded.
    _, result, events = plan_and_apply(tmp_path, yaml, FakeTasks(), 1, recorder=recorder)
    assert not result.ok
    assert {a: [str(d) for d in ds] for a, ds in result.failed.items()} == {
        'fake_task.svc["b"]': [
            'fake_task.svc["b"]: applied, but the state could not record it: the state '
            "database is locked. Run `kplan plan` to see what the state is missing."
        ]
    }
    assert ("error", 'fake_task.svc["b"]') in [(e.kind, e.address) for e in events]
    assert "fake_task.after" not in {e.address for e in events}  # nothing after it started
    assert 'fake_task.svc["b"]' not in recorder.rows
