"""Refresh: read what recorded resources look like now, in batches.

One ``read`` call per resource type covers every recorded instance of that
type (the provider batches per host inside), every type at once: a type's read
is one request per host however many instances it has, and ``-parallelism``
bounds changes, not reads. Bounding types too kept a slow read (a broker's
CLI, an Erlang VM per call) waiting for a place behind ten quick ones. All the
reads of one refresh carry one name (``ReadRequest.snapshot``), under which a
provider may share what they fetch (:func:`kplan.provider_sdk.shared_read`).

What changed outside kplan is returned as drift — changes from the recorded
to the real state — and the refreshed records keep the recorded secrecy: a
value that was a Secret in state stays one after the read.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from kplan.addrs import parse_resource
from kplan.diagnostics import Diagnostic, Diagnostics, KplanError
from kplan.plan.model import Action, Reason, ResourceChange
from kplan.plugins import ProviderRegistry
from kplan.provider_api import Provider, ReadInstance, ReadRequest, ReadResponse
from kplan.state.records import ResourceRecord
from kplan.transport.base import UNREACHABLE_CODE
from kplan.values import mark_paths, secret_paths

__all__ = ["refresh"]


def refresh(
    records: Mapping[str, ResourceRecord], registry: ProviderRegistry
) -> tuple[dict[str, ResourceRecord], list[ResourceChange], Diagnostics]:
    """Return (records as they are now — gone ones removed —, drift, diagnostics)."""
    diags = Diagnostics()
    by_type: dict[str, list[ResourceRecord]] = defaultdict(list)
    for rec in records.values():
        by_type[rec.type].append(rec)
    jobs = []
    computed: dict[str, set[str]] = {}
    snapshot = uuid.uuid4().hex  # one name for every read of this refresh
    for type_name in sorted(by_type):
        try:
            provider, schema = registry.get(type_name)
            computed[type_name] = {
                n for n, a in schema.attributes.items() if a.computed and not a.optional
            }
        except KplanError as exc:
            diags.extend(exc.diagnostics)
            continue
        req = ReadRequest(
            type_name,
            [ReadInstance(r.address, r.host, r.attributes) for r in by_type[type_name]],
            snapshot,
        )
        jobs.append((provider, req))
    with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
        responses = list(pool.map(lambda j: _read(*j), jobs))
    out = dict(records)
    drift: list[ResourceChange] = []
    seen: set[str] = set()
    for (_, req), resp in zip(jobs, responses, strict=True):
        diags.extend(_once_per_host(resp.diagnostics, seen))
        for inst in req.instances:
            rec = records[inst.address]
            _apply_read(rec, resp, out, drift, computed[req.type_name])
    return out, drift, diags


def _once_per_host(diagnostics: Sequence[Diagnostic], seen: set[str]) -> list[Diagnostic]:
    """An unreachable host is said once, however many types and instances it holds,
    with the way to plan the other hosts meanwhile."""
    out = []
    for d in diagnostics:
        if d.code == UNREACHABLE_CODE:
            if d.summary in seen:
                continue
            seen.add(d.summary)
            host = d.summary.removeprefix("host ").split(":", 1)[0]
            hint = f"To plan the other hosts meanwhile: kplan plan -exclude host:{host}"
            detail = f"{d.detail}\n{hint}" if d.detail else hint
            d = Diagnostic(d.severity, d.summary, detail, d.pos, d.code, d.attribute)
        out.append(d)
    return out


def _read(provider: Provider, req: ReadRequest) -> ReadResponse:
    # The registry's guard turns an exception into an error diagnostic (states: {}).
    return provider.read(req)


def _apply_read(
    rec: ResourceRecord,
    resp: ReadResponse,
    out: dict[str, ResourceRecord],
    drift: list[ResourceChange],
    computed: set[str],
) -> None:
    if rec.address not in resp.states:
        return  # the provider could not tell: keep what state says
    now = resp.states[rec.address]
    if now is not None and now == rec.attributes:
        return  # as recorded, secrets included (a Secret equals only a Secret): the usual case
    if now is None:
        del out[rec.address]
        drift.append(
            ResourceChange(
                parse_resource(rec.address),
                rec.provider,
                Action.DELETE,
                rec.attributes,
                None,
                (Reason("drift", "deleted outside kplan"),),
                host=rec.host,
            )
        )
        return
    current = mark_paths(dict(now), secret_paths(rec.attributes))
    if current == rec.attributes:
        return
    out[rec.address] = replace(rec, attributes=current)
    changed = sorted(
        k for k in set(current) | set(rec.attributes) if current.get(k) != rec.attributes.get(k)
    )
    # Computed attributes (a digest, an id) follow the others: not reasons of their own.
    reasons = tuple(
        Reason("drift", f"{k} changed outside kplan", (k,)) for k in changed if k not in computed
    )
    drift.append(
        ResourceChange(
            parse_resource(rec.address),
            rec.provider,
            Action.UPDATE,
            rec.attributes,
            current,
            reasons,
            host=rec.host,
        )
    )
