"""Saved plans (``kplan plan -out FILE``).

A plan file is JSON: the changes with their before/after values, the
variable values, and what the plan was computed from — the state's lineage
and serial and a checksum of the inputs — so that ``kplan apply FILE`` can
refuse a stale plan. Secrets are sealed with the state key (as in the state
itself); a plan file holds no secret in plaintext. A checksum of the body
detects a damaged or edited file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any, Final

from kplan.addrs import parse_resource
from kplan.diagnostics import Diagnostic, KplanError
from kplan.fileio import write_atomic
from kplan.plan.model import Action, OutputChange, Plan, PlanMode, Reason, ResourceChange, Roll
from kplan.provider_api import DESTROY_BEFORE_CREATE
from kplan.state.codec import decode_value, encode_value
from kplan.state.crypto import SecretBox
from kplan.values import UNKNOWN, Unknown

__all__ = ["read_planfile", "write_planfile"]

FORMAT: Final = "kplan-planfile/1"
_UNKNOWN_KEY: Final = "__kplan_unknown__"


def _swap(value: Any, fn: Callable[[Any], Any | None]) -> Any:
    out = fn(value)
    if out is not None:
        return out
    if isinstance(value, dict):
        return {k: _swap(v, fn) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_swap(v, fn) for v in value]
    return value


def _to_json(value: Any) -> Any:
    return _swap(value, lambda v: {_UNKNOWN_KEY: True} if isinstance(v, Unknown) else None)


def _from_json(value: Any) -> Any:
    return _swap(value, lambda v: UNKNOWN if isinstance(v, dict) and _UNKNOWN_KEY in v else None)


def _change(c: ResourceChange) -> dict[str, Any]:
    return {
        "address": c.address,
        "provider": c.provider,
        "action": c.action.value,
        "before": _to_json(c.before),
        "after": _to_json(c.after),
        "reasons": [
            {"kind": r.kind, "message": r.message, "path": list(r.path)} for r in c.reasons
        ],
        "depends_on": [str(d) for d in c.depends_on],
        "host": c.host,
        "replace_paths": [list(p) for p in c.replace_paths],
        "inputs": list(c.inputs),
        "replace_order": c.replace_order,
    }


def _unchange(d: Mapping[str, Any]) -> ResourceChange:
    return ResourceChange(
        parse_resource(d["address"]),
        d["provider"],
        Action(d["action"]),
        _from_json(d["before"]),
        _from_json(d["after"]),
        tuple(Reason(r["kind"], r["message"], tuple(r["path"])) for r in d["reasons"]),
        tuple(parse_resource(a) for a in d["depends_on"]),
        d["host"],
        tuple(tuple(p) for p in d["replace_paths"]),
        inputs=tuple(d.get("inputs", ())),
        # Absent in plan files written before replace orders were recorded.
        replace_order=d.get("replace_order", DESTROY_BEFORE_CREATE),
    )


def write_planfile(path: str, plan: Plan, box: SecretBox) -> None:
    body = {
        "format": FORMAT,
        "kplan_version": plan.kplan_version,
        "workspace": plan.workspace,
        "lineage": plan.lineage,
        "serial": plan.serial,
        "input_checksum": plan.input_checksum,
        "mode": plan.mode.value,
        "targets": list(plan.targets),
        "excludes": list(plan.excludes),
        "variables": _to_json(dict(plan.variables)),
        "changes": [_change(c) for c in plan.changes if c.action.is_change],
        "drift": [_change(c) for c in plan.drift],
        "rolls": [
            {
                "resource": r.resource,
                "serial": r.serial,
                "batches": [[str(a) for a in b] for b in r.batches],
            }
            for r in plan.rolls
        ],
        "outputs": [
            {
                "name": o.name,
                "action": o.action.value,
                "before": _to_json(o.before),
                "after": _to_json(o.after),
                "sensitive": o.sensitive,
            }
            for o in plan.outputs
        ],
    }
    text, _ = encode_value(body, box, _aad(plan.lineage))
    checksum = hashlib.sha256(text.encode()).hexdigest()
    data = json.dumps({"checksum": checksum, "body": text}) + "\n"
    write_atomic(path, data.encode(), prefix=".kplan-plan-")


def read_planfile(path: str, box: SecretBox, lineage: str) -> Plan:
    def bad(why: str) -> KplanError:
        return KplanError(
            Diagnostic.error(f"{path} is not a usable kplan plan file", why, code="bad-planfile")
        )

    try:
        with open(path, encoding="utf-8") as f:
            outer = json.load(f)
        text = outer["body"]
        checksum = outer["checksum"]
    except FileNotFoundError:
        raise bad("the file does not exist") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise bad(f"it cannot be read as a plan ({exc})") from None
    if hashlib.sha256(text.encode()).hexdigest() != checksum:
        raise bad("its checksum does not match: the file was damaged or edited")
    head = json.loads(text)
    if head.get("format") != FORMAT:
        raise bad(f"unsupported format {head.get('format')!r} (this kplan reads {FORMAT})")
    if head.get("lineage") != lineage:
        raise KplanError(
            Diagnostic.error(
                "the saved plan is for a different state",
                f"plan lineage {head.get('lineage')}, state lineage {lineage}. "
                "Run kplan plan again against this state.",
                code="stale-plan",
            )
        )
    body = decode_value(text, box, _aad(lineage))
    return Plan(
        changes=tuple(_unchange(c) for c in body["changes"]),
        outputs=tuple(
            OutputChange(
                o["name"],
                Action(o["action"]),
                _from_json(o["before"]),
                _from_json(o["after"]),
                o["sensitive"],
            )
            for o in body["outputs"]
        ),
        drift=tuple(_unchange(c) for c in body["drift"]),
        mode=PlanMode(body["mode"]),
        workspace=body["workspace"],
        lineage=body["lineage"],
        serial=body["serial"],
        input_checksum=body["input_checksum"],
        variables=_from_json(body["variables"]),
        targets=tuple(body["targets"]),
        excludes=tuple(body["excludes"]),
        kplan_version=body["kplan_version"],
        rolls=tuple(
            Roll(
                r["resource"],
                r["serial"],
                tuple(tuple(map(parse_resource, b)) for b in r["batches"]),
            )
            for r in body.get("rolls", ())
        ),
    )


def _aad(lineage: str) -> bytes:
    return f"kplan-planfile:{lineage}".encode()
