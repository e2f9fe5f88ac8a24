"""The provider SDK's base class: routing, replace orders, batched reads, failures.

A tiny in-memory type (objects in a dict per host) stands in for a real one; the
real types are tested through their providers (test_providers_builtin,
test_docker_provider, test_host_provider).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping
from typing import Any

import pytest

from kplan.diagnostics import Diagnostic
from kplan.provider_api import (
    ApplyRequest,
    ApplyResponse,
    Attribute,
    ReadInstance,
    ReadRequest,
    ResourceSchema,
    ValidateRequest,
)
from kplan.provider_sdk import (
    CREATE_BEFORE_DESTROY,
    DESTROY_BEFORE_CREATE,
    Failed,
    ReplaceOrder,
    ResourceType,
    States,
    Target,
    TypeDispatcher,
    read_per_host,
    shared_read,
)
from kplan.provider_sdk._shared import current_snapshot, reading
from kplan.transport.base import HostUnreachable


class Objects(ResourceType[Target]):
    """Objects named ``name`` in a dict per host; records the order of steps."""

    hosted = True
    known_at_apply = ("name",)

    def __init__(self, order: ReplaceOrder) -> None:
        self.schema = ResourceSchema(
            "obj",
            {"name": Attribute("string", required=True, force_new=True)},
            replace_order=order,
        )
        self.world: dict[str, dict[str, str]] = {"h1": {}, "h2": {}}
        self.steps: list[str] = []
        self.fail: set[str] = set()
        self.read_threads: set[str] = set()

    def read_batch(
        self, host: str, instances: list[ReadInstance]
    ) -> tuple[States, list[Diagnostic]]:
        self.read_threads.add(threading.current_thread().name)
        if host == "down":
            raise HostUnreachable(host, "no route to host")
        if host == "bad":
            raise Failed(Diagnostic.error(f"host {host}: cannot list", code="list-failed"))
        objs = self.world[host]
        return {i.address: ({"name": i.state["name"]} if i.state["name"] in objs else None)
                for i in instances}, []  # fmt: skip

    def create_at(self, t: Target, planned: Mapping[str, Any]) -> ApplyResponse:
        self.steps.append(f"create {planned['name']}")
        if "create" in self.fail:
            raise Failed(Diagnostic.error("create failed", code="create-failed"))
        assert t.host is not None
        self.world[t.host][planned["name"]] = "x"
        return ApplyResponse(dict(planned))

    def delete_at(self, t: Target, prior: Mapping[str, Any]) -> ApplyResponse:
        self.steps.append(f"delete {prior['name']}")
        if "delete" in self.fail:
            raise Failed(Diagnostic.error("delete failed", code="delete-failed"))
        assert t.host is not None
        self.world[t.host].pop(prior["name"], None)
        return ApplyResponse(None)


class P(TypeDispatcher):
    name = "p"


def replace(t: Objects) -> ApplyResponse:
    t.world["h1"]["old"] = "x"
    req = ApplyRequest("obj", "obj.a", "h1", "replace", {"name": "old"}, {"name": "new"})
    return P([t]).apply(req)


@pytest.mark.parametrize(
    ("order", "steps"),
    [
        (CREATE_BEFORE_DESTROY, ["create new", "delete old"]),
        (DESTROY_BEFORE_CREATE, ["delete old", "create new"]),
    ],
)
def test_replace_follows_the_declared_order(order: ReplaceOrder, steps: list[str]) -> None:
    t = Objects(order)
    resp = replace(t)
    assert t.steps == steps
    assert resp.new_state == {"name": "new"} and not resp.diagnostics
    assert t.world["h1"] == {"new": "x"}


def test_create_first_a_failed_create_leaves_the_old_object() -> None:
    t = Objects(CREATE_BEFORE_DESTROY)
    t.fail = {"create"}
    resp = replace(t)
    assert t.steps == ["create new"]
    assert resp.new_state == {"name": "old"}
    assert [d.code for d in resp.diagnostics] == ["create-failed"]


def test_create_first_a_failed_delete_keeps_the_new_state() -> None:
    t = Objects(CREATE_BEFORE_DESTROY)
    t.fail = {"delete"}
    resp = replace(t)
    assert resp.new_state == {"name": "new"}
    assert [d.code for d in resp.diagnostics] == ["delete-failed"]


def test_destroy_first_a_failed_create_records_no_object() -> None:
    t = Objects(DESTROY_BEFORE_CREATE)
    t.fail = {"create"}
    resp = replace(t)
    assert t.steps == ["delete old", "create new"]
    assert resp.new_state is None  # the old one is gone: state must not claim it
    assert [d.code for d in resp.diagnostics] == ["create-failed"]


def test_destroy_first_a_failed_delete_changes_nothing() -> None:
    t = Objects(DESTROY_BEFORE_CREATE)
    t.fail = {"delete"}
    resp = replace(t)
    assert t.steps == ["delete old"]
    assert resp.new_state == {"name": "old"}


def test_apply_refuses_a_hosted_instance_without_host_and_unknown_values() -> None:
    from kplan.values import UNKNOWN

    p = P([Objects(DESTROY_BEFORE_CREATE)])
    out = p.apply(ApplyRequest("obj", "obj.a", None, "create", None, {"name": "x"}))
    assert [d.code for d in out.diagnostics] == ["missing-host"]
    out = p.apply(ApplyRequest("obj", "obj.a", "h1", "create", None, {"name": UNKNOWN}))
    assert out.new_state is None and "needs known values" in out.diagnostics[0].summary
    out = p.apply(ApplyRequest("obj", "obj.a", "h1", "restart", {"name": "x"}, {"name": "x"}))
    assert [d.code for d in out.diagnostics] == ["unsupported-action"]


def test_read_is_one_batch_per_host_and_a_failing_host_keeps_to_itself() -> None:
    t = Objects(DESTROY_BEFORE_CREATE)
    t.world["h1"]["a"] = "x"
    t.world.update(down={}, bad={})
    insts = [
        ReadInstance("obj.a", "h1", {"name": "a"}),
        ReadInstance("obj.b", "h2", {"name": "b"}),
        ReadInstance("obj.c", "down", {"name": "c"}),
        ReadInstance("obj.d", "bad", {"name": "d"}),
        ReadInstance("obj.e", None, {"name": "e"}),
    ]
    resp = P([t]).read(ReadRequest("obj", insts))
    assert resp.states == {"obj.a": {"name": "a"}, "obj.b": None}
    codes = sorted(d.code for d in resp.diagnostics)
    assert codes == ["host-unreachable", "list-failed", "missing-host"]
    assert len(t.read_threads) >= 1


def test_the_dispatcher_answers_an_unknown_type_with_a_diagnostic() -> None:
    p = P([Objects(DESTROY_BEFORE_CREATE)])
    (d,) = p.validate(ValidateRequest("nope", {})).diagnostics
    assert d.code == "unsupported-resource-type" and "it serves: obj" in d.detail
    (d,) = p.validate(ValidateRequest("obj", {})).diagnostics
    assert d.code == "missing-attribute" and d.attribute == ("name",)
    assert p.schema().resources["obj"].replace_order == DESTROY_BEFORE_CREATE


# ---- shared_read ----------------------------------------------------------------------


def test_a_refresh_fetches_a_shared_key_once_across_types_and_threads() -> None:
    calls: list[str] = []
    gate = threading.Event()

    def fetch() -> str:
        calls.append("fetch")
        gate.wait(5)
        return f"answer {len(calls)}"

    answers: list[str] = []

    def reader() -> None:
        with reading("refresh-1"):
            answers.append(shared_read(("svc", "h1"), fetch))

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join()
    assert calls == ["fetch"] and answers == ["answer 1"] * 4
    with reading("refresh-1"):
        assert shared_read(("svc", "h2"), fetch) == "answer 2"  # another key
        assert shared_read(("svc", "h1"), fetch) == "answer 1"
    with reading("refresh-2"):  # the next refresh looks again
        assert shared_read(("svc", "h1"), fetch) == "answer 3"
    assert shared_read(("svc", "h1"), fetch) == "answer 4"  # no refresh: nothing shared
    assert shared_read(("svc", "h1"), fetch) == "answer 5"


def test_a_failed_shared_fetch_is_each_readers_own() -> None:
    calls: list[str] = []

    def failing(who: str) -> str:
        calls.append(who)
        raise Failed(Diagnostic.error(f"broker down ({who})"))

    with reading("refresh-1"):
        for who in ("rabbitmq_user", "rabbitmq_vhost"):
            with pytest.raises(Failed) as err:
                shared_read("key", functools.partial(failing, who))
            assert who in err.value.diagnostics[0].summary
        assert shared_read("key", lambda: "up again") == "up again"
    assert calls == ["rabbitmq_user", "rabbitmq_vhost"]


def test_hosts_read_in_parallel_see_the_refresh() -> None:
    seen: dict[str, str | None] = {}

    def one(host: str, instances: list[ReadInstance]) -> tuple[States, list[Diagnostic]]:
        seen[host] = current_snapshot()
        return {}, []

    instances = [ReadInstance(f"t.x[{h}]", h, {}) for h in ("h1", "h2", "h3")]
    with reading("refresh-7"):
        read_per_host("t", instances, one)
    assert seen == {"h1": "refresh-7", "h2": "refresh-7", "h3": "refresh-7"}
