"""Refresh: every resource type read at once, all reads of one refresh named alike."""

from __future__ import annotations

import threading

from kplan.plan.model import Action
from kplan.plan.refresh import refresh
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
from kplan.values import Secret

TYPES = ("svc_a", "svc_b", "svc_c")


class Services(Provider):
    """Three types whose reads each wait until all three have started."""

    name = "svc"

    def __init__(self) -> None:
        self.all_started = threading.Barrier(len(TYPES), timeout=10)
        self.snapshots: list[str | None] = []

    def schema(self) -> ProviderSchema:
        attrs = {"name": Attribute("string", required=True)}
        return ProviderSchema({t: ResourceSchema(t, attrs) for t in TYPES})

    def read(self, req: ReadRequest) -> ReadResponse:
        self.snapshots.append(req.snapshot)
        self.all_started.wait()
        return ReadResponse({i.address: i.state for i in req.instances})

    def apply(self, req: ApplyRequest) -> ApplyResponse:
        raise AssertionError("a refresh never applies")


def test_a_refresh_reads_every_type_at_once() -> None:
    """-parallelism bounds changes; a refresh is one batched read per type (a slow one,
    a broker's CLI, must not wait for a place behind the others)."""
    svc = Services()
    registry = ProviderRegistry([svc])
    records = {
        f"{t}.x": ResourceRecord.from_addr(f"{t}.x", provider="svc", attributes={"name": t})
        for t in TYPES
    }
    out, drift, diags = refresh(records, registry)
    assert not diags.has_errors, [str(d) for d in diags]
    assert out == records and drift == []
    first = set(svc.snapshots)
    assert len(svc.snapshots) == 3 and len(first) == 1 and None not in first
    svc.snapshots.clear()
    refresh(records, registry)
    assert len(set(svc.snapshots)) == 1 and set(svc.snapshots) != first  # a new name


class Reads(Provider):
    """One type whose read answers from a table: address -> the state it finds."""

    name = "svc"

    def __init__(self, found: dict[str, dict[str, object] | None]) -> None:
        self.found = found

    def schema(self) -> ProviderSchema:
        attrs = {
            "name": Attribute("string", required=True),
            "password": Attribute("string", sensitive=True),
            "id": Attribute("string", computed=True),
        }
        return ProviderSchema({"svc_a": ResourceSchema("svc_a", attrs)})

    def read(self, req: ReadRequest) -> ReadResponse:
        return ReadResponse({i.address: self.found.get(i.address, i.state) for i in req.instances})

    def apply(self, req: ApplyRequest) -> ApplyResponse:
        raise AssertionError("a refresh never applies")


def test_drift_is_what_differs_and_secrets_stay_secret() -> None:
    def rec(addr: str, **attrs: object) -> ResourceRecord:
        return ResourceRecord.from_addr(addr, provider="svc", attributes=attrs)

    records = {
        r.address: r
        for r in (
            rec("svc_a.same", name="a", password=Secret("pw"), id="1"),  # read back as is
            rec("svc_a.revealed", name="b", password=Secret("pw"), id="2"),  # plain, same
            rec("svc_a.rotated", name="c", password=Secret("old"), id="3"),
            rec('svc_a.gone["k"]', name="d", id="4"),
            rec("svc_a.renumbered", name="e", id="5"),
        )
    }
    found: dict[str, dict[str, object] | None] = {
        "svc_a.revealed": {"name": "b", "password": "pw", "id": "2"},
        "svc_a.rotated": {"name": "c", "password": "new", "id": "3"},
        'svc_a.gone["k"]': None,
        "svc_a.renumbered": {"name": "e", "id": "6"},
    }
    out, drift, diags = refresh(records, ProviderRegistry([Reads(found)]))
    assert not diags.has_errors, [str(d) for d in diags]
    assert out["svc_a.same"] is records["svc_a.same"]
    assert out["svc_a.revealed"] is records["svc_a.revealed"]  # a Secret read back plain
    assert 'svc_a.gone["k"]' not in out
    assert out["svc_a.rotated"].attributes["password"] == Secret("new")
    by_addr = {str(c.addr): c for c in drift}
    assert sorted(by_addr) == ['svc_a.gone["k"]', "svc_a.renumbered", "svc_a.rotated"]
    gone = by_addr['svc_a.gone["k"]']
    assert gone.action is Action.DELETE and gone.addr.key == "k"
    assert [r.message for r in by_addr["svc_a.rotated"].reasons] == [
        "password changed outside kplan"
    ]
    assert by_addr["svc_a.renumbered"].action is Action.UPDATE
    assert by_addr["svc_a.renumbered"].reasons == ()  # a computed value: no reason of its own
    assert "new" not in repr(by_addr["svc_a.rotated"].after)
