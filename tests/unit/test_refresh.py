"""Refresh: every resource type read at once, all reads of one refresh named alike."""

from __future__ import annotations

import threading

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
