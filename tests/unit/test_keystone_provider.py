"""The keystone provider through the provider API, against a fake Keystone on 127.0.0.1."""

from __future__ import annotations

import logging
import socket
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from kplan.config.loader import load_module
from kplan.diagnostics import Diagnostic
from kplan.graph.builder import build_graph
from kplan.plan.model import Action
from kplan.plan.planner import PlanInputs, PlanOptions, make_plan
from kplan.plugins import ProviderRegistry
from kplan.provider_api import (
    ApplyRequest,
    PlanRequest,
    ReadInstance,
    ReadRequest,
    ReadResponse,
    ValidateRequest,
)
from kplan.state.records import ResourceRecord
from kplan.values import Secret, reveal
from kplan_providers.keystone import KeystoneProvider
from kplan_providers.keystone._client import MAX_IN_FLIGHT
from kplan_providers.keystone.identity import PASSWORD_REFUSED
from tests.unit.keystone_fake import Db, fake_keystone

ADMIN_PW = "admin-secret-pw"
USER_PW = "demo-user-secret-1"


@pytest.fixture
def ks() -> Iterator[tuple[str, Db]]:
    with fake_keystone() as found:
        yield found


def auth(url: str, password: str = ADMIN_PW) -> dict[str, Any]:
    return {
        "auth_url": url,
        "username": "admin",
        "password": Secret(password),
        "project_name": "admin",
        "user_domain_name": "Default",
        "project_domain_name": "Default",
    }


def errors(diags: Any) -> list[str]:
    return [str(d) for d in diags if d.is_error]


def create(p: KeystoneProvider, type_: str, config: Mapping[str, Any], name: str = "x") -> Any:
    address = f"{type_}.{name}"
    plan = p.plan(PlanRequest(type_, address, None, None, dict(config)))
    assert not errors(plan.diagnostics)
    out = p.apply(ApplyRequest(type_, address, None, "create", None, plan.planned))
    assert not errors(out.diagnostics), errors(out.diagnostics)
    assert out.new_state is not None
    return dict(out.new_state)


def update(p: KeystoneProvider, type_: str, prior: Mapping[str, Any], config: Any) -> Any:
    address = f"{type_}.x"
    plan = p.plan(PlanRequest(type_, address, None, prior, dict(config)))
    out = p.apply(ApplyRequest(type_, address, None, "update", prior, plan.planned))
    assert not errors(out.diagnostics), errors(out.diagnostics)
    return dict(out.new_state or {})


def delete(p: KeystoneProvider, type_: str, prior: Mapping[str, Any]) -> list[Diagnostic]:
    out = p.apply(ApplyRequest(type_, f"{type_}.x", None, "delete", prior, None))
    assert out.new_state is None
    return list(out.diagnostics)


def read(p: KeystoneProvider, type_: str, *states: Mapping[str, Any]) -> ReadResponse:
    insts = [ReadInstance(f"{type_}.i{n}", None, s) for n, s in enumerate(states)]
    return p.read(ReadRequest(type_, insts))


def one(resp: ReadResponse) -> Any:
    assert not errors(resp.diagnostics), errors(resp.diagnostics)
    (state,) = resp.states.values()
    return state


# ---- create, read, update, delete of each type --------------------------------------


def test_project_create_read_update_delete(ks: tuple[str, Db]) -> None:
    url, db = ks
    p = KeystoneProvider()
    state = create(p, "keystone_project", {"name": "demo", "auth": auth(url)})
    live = db.objects["projects"][state["id"]]
    assert live["name"] == "demo" and live["domain_id"] == "default" and live["enabled"]
    assert state["domain"] == "default" and state["domain_id"] == "default"
    assert one(read(p, "keystone_project", state)) == state

    cfg = {"name": "demo", "description": "the demo", "enabled": False, "auth": auth(url)}
    new = update(p, "keystone_project", state, cfg)
    assert new["id"] == state["id"]
    assert db.objects["projects"][state["id"]]["description"] == "the demo"
    assert db.objects["projects"][state["id"]]["enabled"] is False
    assert one(read(p, "keystone_project", new)) == new

    assert not errors(delete(p, "keystone_project", new))
    assert state["id"] not in db.objects["projects"]
    assert one(read(p, "keystone_project", new)) is None
    assert not errors(delete(p, "keystone_project", new))  # already gone: no error


def test_role_create_read_rename_delete(ks: tuple[str, Db]) -> None:
    url, db = ks
    p = KeystoneProvider()
    state = create(p, "keystone_role", {"name": "member", "auth": auth(url)})
    assert db.objects["roles"][state["id"]]["name"] == "member"
    assert one(read(p, "keystone_role", state)) == state
    new = update(p, "keystone_role", state, {"name": "reader", "auth": auth(url)})
    assert db.objects["roles"][state["id"]]["name"] == "reader"
    delete(p, "keystone_role", new)
    assert db.objects["roles"] == {}


def test_user_create_read_update_delete(ks: tuple[str, Db]) -> None:
    url, db = ks
    p = KeystoneProvider()
    project = create(p, "keystone_project", {"name": "service", "auth": auth(url)})
    cfg = {
        "name": "glance",
        "password": Secret(USER_PW),
        "default_project": "service",
        "auth": auth(url),
    }
    state = create(p, "keystone_user", cfg)
    assert db.passwords[state["id"]] == USER_PW
    assert db.objects["users"][state["id"]]["default_project_id"] == project["id"]
    assert state["default_project_id"] == project["id"]
    assert isinstance(state["password"], Secret)
    assert one(read(p, "keystone_user", state)) == state

    new = update(p, "keystone_user", state, {**cfg, "password": Secret("rotated-pw-2")})
    assert db.passwords[state["id"]] == "rotated-pw-2"
    patches = [b for b in db.bodies if '"password"' in b]
    new2 = update(
        p, "keystone_user", new, {**cfg, "password": Secret("rotated-pw-2"), "enabled": False}
    )
    assert db.objects["users"][state["id"]]["enabled"] is False
    assert [b for b in db.bodies if '"password"' in b] == patches  # unchanged: not sent again
    delete(p, "keystone_user", new2)
    assert state["id"] not in db.objects["users"]


def test_role_assignment_grant_read_revoke(ks: tuple[str, Db]) -> None:
    url, db = ks
    p = KeystoneProvider()
    a = auth(url)
    project = create(p, "keystone_project", {"name": "service", "auth": a})
    user = create(p, "keystone_user", {"name": "nova", "password": Secret(USER_PW), "auth": a})
    role = create(p, "keystone_role", {"name": "admin2", "auth": a})
    cfg = {"user": "nova", "project": "service", "role": "admin2", "auth": a}
    state = create(p, "keystone_role_assignment", cfg)
    assert (project["id"], user["id"], role["id"]) in db.assignments
    assert state["id"] == f"{project['id']}:{user['id']}:{role['id']}"
    assert one(read(p, "keystone_role_assignment", state)) == state

    db.assignments.clear()  # revoked by hand
    assert one(read(p, "keystone_role_assignment", state)) is None
    assert create(p, "keystone_role_assignment", cfg) == state
    delete(p, "keystone_role_assignment", state)
    assert db.assignments == set()
    assert not errors(delete(p, "keystone_role_assignment", state))


def test_service_and_endpoint_create_read_update_delete(ks: tuple[str, Db]) -> None:
    url, db = ks
    p = KeystoneProvider()
    svc_cfg = {"name": "glance", "type": "image", "auth": auth(url)}
    svc = create(p, "keystone_service", svc_cfg)
    assert one(read(p, "keystone_service", svc)) == svc
    svc = update(p, "keystone_service", svc, {**svc_cfg, "description": "Images"})
    assert db.objects["services"][svc["id"]]["description"] == "Images"

    cfg = {
        "service": "image",  # by type: no service is named "image"
        "interface": "internal",
        "url": "http://10.0.0.1:9292",
        "region": "RegionTwo",
        "auth": auth(url),
    }
    ep = create(p, "keystone_endpoint", cfg)
    live = db.objects["endpoints"][ep["id"]]
    assert live["service_id"] == svc["id"] == ep["service_id"]
    assert live["region_id"] == "RegionTwo" and "RegionTwo" in db.regions
    assert one(read(p, "keystone_endpoint", ep)) == ep

    ep2 = update(p, "keystone_endpoint", ep, {**cfg, "url": "http://10.0.0.2:9292"})
    assert db.objects["endpoints"][ep["id"]]["url"] == "http://10.0.0.2:9292"
    delete(p, "keystone_endpoint", ep2)
    delete(p, "keystone_service", svc)
    assert db.objects["endpoints"] == {} and db.objects["services"] == {}


# ---- idempotence --------------------------------------------------------------------


def test_create_adopts_what_a_previous_apply_made(ks: tuple[str, Db]) -> None:
    url, db = ks
    p = KeystoneProvider()
    made = db.add("projects", name="demo", domain_id="default", enabled=True, description="old")
    state = create(p, "keystone_project", {"name": "demo", "description": "new", "auth": auth(url)})
    assert state["id"] == made["id"] and len(db.objects["projects"]) == 2  # admin's and demo
    assert made["description"] == "new"

    user = db.add("users", name="cinder", domain_id="default", enabled=True)
    db.passwords[user["id"]] = "whatever-it-was"
    cfg = {"name": "cinder", "password": Secret(USER_PW), "auth": auth(url)}
    assert create(p, "keystone_user", cfg)["id"] == user["id"]
    assert db.passwords[user["id"]] == USER_PW  # its password cannot be read: set

    role = db.add("roles", name="member")
    assert create(p, "keystone_role", {"name": "member", "auth": auth(url)})["id"] == role["id"]

    svc = db.add("services", name="nova", type="compute", enabled=True, description="")
    svc_state = create(
        p, "keystone_service", {"name": "nova", "type": "compute", "auth": auth(url)}
    )
    assert svc_state["id"] == svc["id"]
    ep = db.add(
        "endpoints", service_id=svc["id"], interface="public", region_id="RegionOne", url="http://a"
    )
    cfg = {"service": "nova", "interface": "public", "url": "http://b", "auth": auth(url)}
    assert create(p, "keystone_endpoint", cfg)["id"] == ep["id"]
    assert ep["url"] == "http://b" and len(db.objects["endpoints"]) == 1


def test_a_second_apply_changes_nothing(ks: tuple[str, Db]) -> None:
    url, _ = ks
    p = KeystoneProvider()
    a = auth(url)
    configs = {
        "keystone_project": {"name": "demo", "auth": a},
        "keystone_role": {"name": "member", "auth": a},
        "keystone_user": {"name": "demo", "password": Secret(USER_PW), "auth": a},
        "keystone_role_assignment": {
            "user": "demo",
            "project": "demo",
            "role": "member",
            "auth": a,
        },
        "keystone_service": {"name": "glance", "type": "image", "auth": a},
        "keystone_endpoint": {
            "service": "glance",
            "interface": "public",
            "url": "http://g",
            "auth": a,
        },
    }
    for type_, cfg in configs.items():
        state = create(p, type_, cfg)
        refreshed = one(read(p, type_, state))
        assert refreshed == state, type_
        again = p.plan(PlanRequest(type_, f"{type_}.x", None, refreshed, cfg))
        assert dict(again.planned) == refreshed and not again.reasons, type_


# ---- drift ----------------------------------------------------------------------------


def test_drift_deleted_url_changed_password_refused(ks: tuple[str, Db]) -> None:
    url, db = ks
    p = KeystoneProvider()
    project = create(p, "keystone_project", {"name": "gone", "auth": auth(url)})
    del db.objects["projects"][project["id"]]
    assert one(read(p, "keystone_project", project)) is None

    create(p, "keystone_service", {"name": "glance", "type": "image", "auth": auth(url)})
    ep_cfg = {"service": "glance", "interface": "public", "url": "http://g:9292", "auth": auth(url)}
    ep = create(p, "keystone_endpoint", ep_cfg)
    db.objects["endpoints"][ep["id"]]["url"] = "http://elsewhere:1"
    assert one(read(p, "keystone_endpoint", ep)) == {**ep, "url": "http://elsewhere:1"}

    user = create(p, "keystone_user", {"name": "u", "password": Secret(USER_PW), "auth": auth(url)})
    assert one(read(p, "keystone_user", user))["password"] == user["password"]
    db.passwords[user["id"]] = "changed-by-hand"
    drifted = one(read(p, "keystone_user", user))
    assert isinstance(drifted["password"], Secret)
    assert drifted["password"] != user["password"]
    assert drifted["password"].reveal() == PASSWORD_REFUSED
    assert {k: v for k, v in drifted.items() if k != "password"} == {
        k: v for k, v in user.items() if k != "password"
    }


def test_the_users_passwords_are_checked_together(ks: tuple[str, Db]) -> None:
    """A token request per user costs keystone a password hash: a cloud's service users
    are checked at once (as many as the client sends one keystone), not one by one."""
    url, db = ks
    p = KeystoneProvider()
    users = [
        create(
            p,
            "keystone_user",
            {"name": f"svc{n}", "password": Secret(USER_PW), "auth": auth(url)},
            f"u{n}",
        )
        for n in range(8)
    ]
    db.passwords[users[5]["id"]] = "changed-by-hand"
    db.token_seconds, db.tokens_peak = 0.2, 0
    resp = read(p, "keystone_user", *users)
    assert not errors(resp.diagnostics)
    assert db.tokens_peak == MAX_IN_FLIGHT
    refused = [
        n for n, s in enumerate(resp.states.values()) if s["password"] != users[n]["password"]
    ]
    assert refused == [5]


# ---- cost of a refresh --------------------------------------------------------------


def test_refresh_costs_the_same_for_1_and_20_endpoints(ks: tuple[str, Db]) -> None:
    url, db = ks
    svc = db.add("services", name="glance", type="image", enabled=True, description="")
    states = []
    for n in range(20):
        ep = db.add(
            "endpoints",
            service_id=svc["id"],
            interface="public",
            region_id=f"R{n}",
            url=f"http://g{n}",
        )
        cfg = {"service": "glance", "interface": "public", "url": ep["url"], "region": f"R{n}"}
        states.append({**cfg, "auth": auth(url), "id": ep["id"], "service_id": svc["id"]})
    costs = []
    for batch in (states[:1], states):
        before = len(db.calls)
        resp = read(KeystoneProvider(), "keystone_endpoint", *batch)
        assert not errors(resp.diagnostics)
        assert all(resp.states[f"keystone_endpoint.i{n}"] == s for n, s in enumerate(batch))
        costs.append(db.calls[before:])
    assert costs[0] == costs[1] == [("POST", "/v3/auth/tokens"), ("GET", "/v3/endpoints")]


def test_one_token_serves_every_type_of_a_run(ks: tuple[str, Db]) -> None:
    url, db = ks
    p = KeystoneProvider()
    project = create(p, "keystone_project", {"name": "a", "auth": auth(url)})
    role = create(p, "keystone_role", {"name": "r", "auth": auth(url)})
    before = len(db.calls)
    read(p, "keystone_project", project)
    read(p, "keystone_role", role)
    assert db.calls[before:] == [("GET", "/v3/projects"), ("GET", "/v3/roles")]


# ---- failures, and secrets in them ---------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unreachable keystone fails at once (not after the minute a starting one gets)."""
    monkeypatch.setattr("kplan_providers.keystone._client.UNAVAILABLE_FOR", 0.0)


def test_keystone_behind_a_balancer_is_waited_for_while_it_answers_503(ks: tuple[str, Db]) -> None:
    import kplan_providers.keystone._client as client

    url, _ = ks
    calls = {"n": 0}
    real = client.ksa_session.Session.request

    def flaky(self: Any, url: str, method: str, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise client.ksa_exc.ServiceUnavailable("balancer has no server up")
        return real(self, url, method, **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr(client.ksa_session.Session, "request", flaky)
    try:
        state = create(KeystoneProvider(), "keystone_role", {"name": "waited", "auth": auth(url)})
    finally:
        mp.undo()
    assert state["name"] == "waited" and calls["n"] > 2


def _failing_first(
    monkeypatch: pytest.MonkeyPatch, first: Any, calls: list[str], method: str = "POST"
) -> None:
    """Session.request fails its first METHOD call to the API with FIRST (an exception,
    or a status to answer); ``calls`` records the methods of the API calls (not the login)."""
    import requests

    import kplan_providers.keystone._client as client

    real = client.ksa_session.Session.request

    def request(self: Any, url: str, method_: str, **kw: Any) -> Any:
        if kw.get("authenticated", True) and "/auth/tokens" not in url:
            calls.append(method_)
            if method_ == method and calls.count(method) == 1:
                if isinstance(first, int):
                    resp = requests.Response()
                    resp.status_code, resp._content = first, b""
                    return resp
                raise first
        return real(self, url, method_, **kw)

    monkeypatch.setattr(client.ksa_session.Session, "request", request)


@pytest.mark.parametrize(
    ("first", "retried"),
    [
        # keystoneauth's words for a read timeout and for a dropped answer: the
        # POST may have been done, so it is not sent again (it would make two).
        ("ConnectTimeout:Request to http://vip:5000/v3/roles timed out", False),
        ("ConnectFailure:Unable to establish connection: Connection aborted.", False),
        (504, False),
        (502, False),
        # Never reached keystone: sent again.
        (
            "ConnectFailure:Unable to establish connection: Failed to establish a new connection",
            True,
        ),
        ("ServiceUnavailable:no server available", True),
        (503, True),
    ],
)
def test_a_create_is_sent_again_only_when_it_surely_never_arrived(
    ks: tuple[str, Db], monkeypatch: pytest.MonkeyPatch, first: Any, retried: bool
) -> None:
    import kplan_providers.keystone._client as client

    url, _ = ks
    if isinstance(first, str):
        name, words = first.split(":", 1)
        first = getattr(client.ksa_exc, name)(words)
    calls: list[str] = []
    _failing_first(monkeypatch, first, calls)
    p = KeystoneProvider()
    config = {"name": "r", "auth": auth(url)}
    plan = p.plan(PlanRequest("keystone_role", "keystone_role.r", None, None, config))
    create_ = ApplyRequest("keystone_role", "keystone_role.r", None, "create", None, plan.planned)
    out = p.apply(create_)
    if retried:
        assert not errors(out.diagnostics)
        assert out.new_state is not None and out.new_state["name"] == "r"
        assert calls.count("POST") == 2
    else:
        assert out.new_state is None and errors(out.diagnostics)
        assert calls.count("POST") == 1


def test_a_read_is_sent_again_after_a_timeout(
    ks: tuple[str, Db], monkeypatch: pytest.MonkeyPatch
) -> None:
    import kplan_providers.keystone._client as client

    url, _ = ks
    state = create(KeystoneProvider(), "keystone_role", {"name": "again", "auth": auth(url)})
    calls: list[str] = []
    timeout = client.ksa_exc.ConnectTimeout("Request timed out")
    _failing_first(monkeypatch, timeout, calls, method="GET")
    assert one(read(KeystoneProvider(), "keystone_role", state))["name"] == "again"
    assert calls[:2] == ["GET", "GET"]


@pytest.mark.usefixtures("no_wait")
def test_keystone_unreachable_is_a_diagnostic_naming_url_and_resource() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v3"
    p = KeystoneProvider()
    state = {"name": "demo", "auth": auth(url), "id": "p1", "domain": "default"}
    resp = read(p, "keystone_project", state)
    assert resp.states == {}  # state keeps what it recorded
    (d,) = resp.diagnostics
    assert d.is_error and d.code == "keystone-unreachable"
    assert url in d.summary and "keystone_project.i0" in d.summary
    plan = p.plan(PlanRequest("keystone_project", "keystone_project.demo", None, None, state))
    out = p.apply(
        ApplyRequest(
            "keystone_project", "keystone_project.demo", None, "create", None, plan.planned
        )
    )
    assert out.new_state is None
    (d,) = out.diagnostics
    assert d.code == "keystone-unreachable" and "keystone_project.demo" in d.summary
    assert url in d.summary


@pytest.mark.usefixtures("no_wait")
def test_no_secret_in_any_diagnostic_or_log(
    ks: tuple[str, Db], caplog: pytest.LogCaptureFixture
) -> None:
    url, db = ks
    caplog.set_level(logging.DEBUG)
    p = KeystoneProvider()
    diags: list[Diagnostic] = []
    wrong = "wrong-admin-password-9"
    diags += read(
        p, "keystone_role", {"name": "r", "auth": auth(url, wrong), "id": "r1"}
    ).diagnostics
    user_cfg = {"name": "u", "password": Secret(USER_PW), "auth": auth(url)}
    user = create(p, "keystone_user", user_cfg)
    db.passwords[user["id"]] = "hand-set-password-7"
    read(p, "keystone_user", user)
    # A failing API call whose request carries the user's password.
    user_cfg = {**user_cfg, "default_project": "no-such-project"}
    plan = p.plan(PlanRequest("keystone_user", "keystone_user.v", None, None, user_cfg))
    diags += p.apply(
        ApplyRequest("keystone_user", "keystone_user.v", None, "create", None, plan.planned)
    ).diagnostics
    closed = f"http://127.0.0.1:{_closed_port()}"
    diags += read(p, "keystone_role", {"name": "r", "auth": auth(closed), "id": "r1"}).diagnostics
    bad_auth = {**auth(url), "colour": "blue"}
    bad_auth.pop("username")
    diags += p.validate(
        ValidateRequest("keystone_role", {"name": "r", "auth": bad_auth})
    ).diagnostics
    assert {d.code for d in diags} == {
        "keystone-auth",
        "keystone-not-found",
        "keystone-unreachable",
        "invalid-auth",
    }
    text = "\n".join(f"{d.summary}\n{d.detail}" for d in diags) + caplog.text
    assert "keystoneauth" in caplog.text  # keystoneauth1 did log its requests
    for secret in (ADMIN_PW, wrong, USER_PW, "hand-set-password-7"):
        assert secret not in text


def test_validate_checks_auth_and_interface() -> None:
    p = KeystoneProvider()
    cfg = {"service": "x", "interface": "private", "url": "http://x", "auth": {"auth_url": "u"}}
    diags = p.validate(ValidateRequest("keystone_endpoint", cfg)).diagnostics
    assert {(d.code, d.attribute) for d in diags} == {
        ("invalid-interface", ("interface",)),
        ("invalid-auth", ("auth",)),
    }


# ---- through the planner: auth is how, not what --------------------------------------

MODULE = """
variables:
  auth_url: {type: string}
  admin_password: {type: string, sensitive: true}
resources:
  keystone_project.demo:
    name: demo
    auth:
      auth_url: ${var.auth_url}
      username: admin
      password: ${var.admin_password}
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
"""


def plan_of(tmp_path: Path, variables: dict[str, Any], state: Mapping[str, Any]) -> Any:
    (tmp_path / "main.kp.yaml").write_text(textwrap.dedent(MODULE))
    cfg, diags = load_module(str(tmp_path))
    assert cfg is not None and not diags.has_errors, [str(d) for d in diags]
    cg, _ = build_graph(cfg)
    rec = ResourceRecord.from_addr("keystone_project.demo", provider="keystone", attributes=state)
    inputs = PlanInputs(
        cg=cg,
        root_dir=str(tmp_path),
        variables=variables,
        records={"keystone_project.demo": rec},
        outputs={},
        registry=ProviderRegistry([KeystoneProvider()]),
        workspace="default",
        lineage="l",
        serial=1,
        input_checksum="x",
    )
    return make_plan(inputs, PlanOptions())


def test_an_auth_change_alone_is_no_change(ks: tuple[str, Db], tmp_path: Path) -> None:
    url, _ = ks
    p = KeystoneProvider()
    state = create(p, "keystone_project", {"name": "demo", "auth": auth(url)})
    base = url.removesuffix("/v3")
    plan, diags = plan_of(tmp_path, {"auth_url": base + "/", "admin_password": ADMIN_PW}, state)
    assert not diags.has_errors, [str(d) for d in diags]
    (change,) = plan.changes
    assert change.action is Action.NOOP


def test_a_rotated_admin_password_is_recorded_not_a_project_change(
    ks: tuple[str, Db], tmp_path: Path
) -> None:
    url, db = ks
    p = KeystoneProvider()
    state = create(p, "keystone_project", {"name": "demo", "auth": auth(url)})
    admin = db.find("users", name="admin")
    assert admin is not None
    db.passwords[admin["id"]] = "rotated-admin-pw"
    plan, diags = plan_of(tmp_path, {"auth_url": url, "admin_password": "rotated-admin-pw"}, state)
    assert not diags.has_errors
    assert [d.code for d in diags if not d.is_error] == ["keystone-auth"]
    (change,) = plan.changes
    assert change.action is Action.UPDATE
    assert [r.message for r in change.reasons] == [
        "keystone refused the recorded auth at refresh: recording the new one"
    ]
    assert {k: v for k, v in change.after.items() if k != "auth"} == {
        k: v for k, v in state.items() if k != "auth"
    }
    assert reveal(change.after["auth"]["password"]) == "rotated-admin-pw"
    assert "rotated-admin-pw" not in str(change.after)


def test_no_more_than_a_few_calls_are_in_flight_to_one_keystone(
    ks: tuple[str, Db], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A one-worker keystone queues what it cannot serve, and the queue's wait
    # counts against the call's timeout: the client keeps the queue short.
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    import kplan_providers.keystone._client as client

    url, _ = ks
    real = client.ksa_session.Session.request
    lock = threading.Lock()
    now = {"in": 0, "most": 0}

    def request(self: Any, url_: str, method: str, **kw: Any) -> Any:
        if "/auth/tokens" in url_:  # the login, made inside an API call's request
            return real(self, url_, method, **kw)
        with lock:
            now["in"] += 1
            now["most"] = max(now["most"], now["in"])
        try:
            time.sleep(0.05)
            return real(self, url_, method, **kw)
        finally:
            with lock:
                now["in"] -= 1

    monkeypatch.setattr(client.ksa_session.Session, "request", request)
    logins = [client.Client(client.Auth.parse(auth(url))) for _ in range(3)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda n: logins[n % 3].call("GET", "/roles", "test"), range(24)))
    assert {status for status, _ in answers} == {200}
    assert client.MAX_IN_FLIGHT == 4 and 1 < now["most"] <= 4  # 12 threads asked at once
