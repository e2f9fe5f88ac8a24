"""validate_against_schema and default_plan: their quick paths agree with the full rules.

Both run once per planned instance, so each has a quick path (nothing sorted
when a configuration conforms; a schema's attributes sorted by role once).
These tests hold the quick paths to the same answers as the rules written out.
"""

from __future__ import annotations

import itertools
from typing import Any

from kplan.provider_api import (
    UNKNOWN,
    Attribute,
    PlanRequest,
    ResourceSchema,
    default_plan,
    validate_against_schema,
)
from kplan.provider_api import _schema_problems as full_schema_problems
from kplan.values import Secret

SCHEMA = ResourceSchema(
    "t_thing",
    {
        "name": Attribute("string", required=True, force_new=True),
        "size": Attribute("number", default=1),
        "on": Attribute("bool"),
        "tags": Attribute("list"),
        "labels": Attribute("map"),
        "blob": Attribute("any"),
        "id": Attribute("string", computed=True),
        "port": Attribute("number", computed=True, optional=True),
        "token": Attribute("string", sensitive=True, connection=True),
        "template": Attribute("string", compared_via=("content",)),
        "content": Attribute("string", computed=True, optional=True),
    },
)

VALUES: dict[str, list[Any]] = {
    "name": ["a", None, UNKNOWN, Secret("s"), 3],
    "size": [2, 2.5, True, "2", None],
    "on": [True, "yes"],
    "tags": [["x"], ("x",), "x"],
    "labels": [{"k": "v"}, ["k"]],
    "blob": [object()],
    "id": ["set-by-hand"],
    "port": [80, "80"],
    "nope": [1],
}


def _configs() -> list[dict[str, Any]]:
    """Every value of "name" and "size" with each other attribute's values in turn."""
    out = []
    for name, size in itertools.product(VALUES["name"], VALUES["size"]):
        base = {"name": name, "size": size}
        out.append(dict(base))
        for attr, values in VALUES.items():
            if attr in ("name", "size"):
                continue
            out += [{**base, attr: v} for v in values]
    return out


def test_the_quick_answer_is_the_full_answer() -> None:
    configs = _configs()
    assert len(configs) > 100
    found = 0
    for config in configs:
        full = full_schema_problems(SCHEMA, config)
        assert validate_against_schema(SCHEMA, config) == full, config
        found += bool(full)
    assert 0 < found < len(configs)  # both answers were exercised


def test_problems_are_sorted_by_attribute_and_named() -> None:
    got = validate_against_schema(SCHEMA, {"size": "2", "id": "x", "nope": 1})
    assert [(d.code, d.attribute) for d in got] == [
        ("computed-attribute", ("id",)),
        ("unsupported-attribute", ("nope",)),
        ("attribute-type", ("size",)),
        ("missing-attribute", ("name",)),
    ]


def _full_default_plan(schema: ResourceSchema, req: PlanRequest) -> tuple[dict[str, Any], list]:
    """default_plan's documented rules, written out attribute by attribute."""
    planned: dict[str, Any] = {}
    for name, attr in schema.attributes.items():
        value = req.config.get(name)
        if value is None and not attr.computed:
            value = attr.default
        if not attr.computed or value is not None:
            planned[name] = value
    prior = req.prior
    configured = [
        n
        for n, a in schema.attributes.items()
        if not a.connection and (not a.computed or (a.optional and req.config.get(n) is not None))
    ]
    changed = prior is None or any(prior.get(n) != planned.get(n) for n in configured)
    for name, attr in schema.attributes.items():
        if attr.computed and name not in planned:
            planned[name] = prior.get(name) if (prior is not None and not changed) else UNKNOWN
    replace = []
    if prior is not None:
        replace = [
            (n,)
            for n, a in schema.attributes.items()
            if a.force_new and prior.get(n) != planned.get(n)
        ]
    return planned, replace


def test_default_plan_follows_its_rules() -> None:
    prior = {"name": "a", "size": 2, "id": "i-1", "port": 80, "token": "t0", "content": "c"}
    priors: list[dict[str, Any] | None] = [None, prior, {**prior, "name": "b"}]
    configs = [
        {"name": "a", "size": 2},
        {"name": "a", "size": 2, "token": "t1"},  # a connection attribute: no change
        {"name": "a", "size": 3},
        {"name": "a", "size": 2, "port": 80},
        {"name": "a", "size": 2, "port": 81},  # optional computed, set: compared
        {"name": "a", "size": 2, "template": "x"},
        {"name": "b"},
    ]
    kept = 0
    for before, config in itertools.product(priors, configs):
        resp = default_plan(SCHEMA, PlanRequest("t_thing", "t_thing.x", None, before, config))
        planned, replace = _full_default_plan(
            SCHEMA, PlanRequest("t_thing", "t_thing.x", None, before, config)
        )
        assert list(resp.planned.items()) == list(planned.items()), (before, config)
        assert list(resp.requires_replace) == replace, (before, config)
        kept += resp.planned.get("id") == "i-1"
    assert kept == 3  # kept where nothing compared changed: configs 0, 1 and 3, prior 2


def test_schema_roles_are_worked_out_once_and_not_compared() -> None:
    assert SCHEMA.sensitive_attributes() == ["token"]
    assert SCHEMA.connection_attributes() == frozenset({"token"})
    assert SCHEMA.input_attributes() == ("template",)
    same = ResourceSchema("t_thing", dict(SCHEMA.attributes))
    assert same == SCHEMA and repr(same) == repr(SCHEMA)
