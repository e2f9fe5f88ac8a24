"""Unit tests of the docker provider through the provider protocol, against a fake Docker API.

The fake (:class:`FakeAPI`) keeps containers, images and volumes in memory and
counts calls, so the tests can pin the round trips a refresh costs. The
capability on a real dockerd is shown in
tests/integration/test_docker_provider.py.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

import docker.errors
import paramiko
import pytest
import requests

from kplan.provider_api import (
    ApplyRequest,
    ConfigureRequest,
    HostInfo,
    PlanRequest,
    ReadInstance,
    ReadRequest,
    ValidateRequest,
)
from kplan.transport.base import UNREACHABLE_CODE, CommandResult, Connection, HostUnreachable
from kplan.values import UNKNOWN, Secret
from kplan_providers.docker import DockerProvider
from kplan_providers.docker._spec import spec_hash
from kplan_providers.docker.container import SPEC_KEYS

IMAGE = "reg:5000/kplan/base"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def _api_error(status: int, explanation: str) -> docker.errors.APIError:
    resp = requests.Response()
    resp.status_code = status
    return docker.errors.APIError(f"{status} error", response=resp, explanation=explanation)


def _not_found(what: str) -> docker.errors.NotFound:
    resp = requests.Response()
    resp.status_code = 404
    return docker.errors.NotFound(f"404 {what}", response=resp, explanation=f"No such {what}")


class FakeAPI:
    """What kplan uses of docker.APIClient, in memory."""

    ids = itertools.count(1)

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.containers_: dict[str, dict[str, Any]] = {}
        self.images_: dict[str, dict[str, Any]] = {}  # by id
        self.volumes_: dict[str, dict[str, Any]] = {}
        self.registry: dict[str, str] = {}  # "name:tag" → digest
        self.health = "healthy"
        self.exit_code = 0
        # What kplan's own run of the health test gives (None: still running).
        self.probe_exit: int | None = 1
        self.execs: list[tuple[str, list[str], dict[str, Any]]] = []
        self.logs_text = b""
        self.stderr_text = b""
        # (call, name or id) of what changes containers, in order.
        self.log: list[tuple[str, str]] = []

    def _count(self, name: str) -> None:
        self.calls[name] += 1

    # -- containers
    def containers(self, all: bool = False, filters: Any = None) -> list[dict[str, Any]]:
        self._count("containers")
        out = []
        for c in self.containers_.values():
            label = (filters or {}).get("label")
            if label:
                k, _, v = label.partition("=")
                if c["Labels"].get(k) != v:
                    continue
            name = (filters or {}).get("name")
            if name and not re.search(name, c["Names"][0]):  # dockerd: a regular expression
                continue
            out.append({k: c[k] for k in ("Id", "Names", "Image", "Labels", "State", "Status")})
        return out

    def create_host_config(self, **kw: Any) -> dict[str, Any]:
        return kw

    def create_container(self, image: str, name: str, labels: Any, **kw: Any) -> dict[str, Any]:
        self._count("create_container")
        self.log.append(("create_container", name))
        if any(f"/{name}" in c["Names"] for c in self.containers_.values()):
            raise _api_error(409, f'Conflict. The container name "/{name}" is already in use')
        for cap in (kw.get("host_config") or {}).get("cap_add") or []:
            if not str(cap).isupper():
                raise _api_error(500, f'invalid CapAdd: unknown capability: "{cap}"')
        if not any(
            image in (i["Id"], *i["RepoDigests"], *i["RepoTags"]) for i in self.images_.values()
        ):
            raise docker.errors.ImageNotFound("404", explanation=f"No such image: {image}")
        cid = f"c{next(self.ids):063d}"
        self.containers_[cid] = {
            "Id": cid,
            "Names": [f"/{name}"],
            "Image": image,
            "Labels": dict(labels),
            "State": "created",
            "Status": "Created",
            "kw": kw,
        }
        return {"Id": cid}

    def _get(self, cid: str) -> dict[str, Any]:
        if cid not in self.containers_:
            raise _not_found("container")
        return self.containers_[cid]

    def start(self, cid: str) -> None:
        self._count("start")
        c = self._get(cid)
        c["State"] = "running"
        c["StartedAt"] = str(self.calls["start"])

    def stop(self, cid: str, timeout: int | None = None) -> None:
        self._count("stop")
        self.log.append(("stop", cid))
        self._get(cid)["State"] = "exited"

    def rename(self, cid: str, name: str) -> None:
        self._count("rename")
        self.log.append(("rename", name))
        if any(f"/{name}" in c["Names"] for c in self.containers_.values()):
            raise _api_error(409, f'Conflict. The container name "/{name}" is already in use')
        self._get(cid)["Names"] = [f"/{name}"]

    def restart(self, cid: str, timeout: int = 10) -> None:
        self._count("restart")
        self.start(cid)

    def remove_container(self, cid: str, v: bool = False, force: bool = False) -> None:
        self._count("remove_container")
        self.log.append(("remove_container", cid))
        self._get(cid)
        del self.containers_[cid]

    def exec_create(self, cid: str, cmd: list[str], **kw: Any) -> dict[str, str]:
        self._count("exec_create")
        if self._get(cid)["State"] != "running":
            raise _api_error(409, f"container {cid} is not running")
        self.execs.append((cid, cmd, kw))
        return {"Id": f"e{len(self.execs)}"}

    def exec_start(self, exec_id: str, detach: bool = False) -> bytes:
        assert detach, "a health probe must never block the wait"
        return b""

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        return {"Running": self.probe_exit is None, "ExitCode": self.probe_exit}

    def inspect_container(self, cid: str) -> dict[str, Any]:
        self._count("inspect_container")
        c = self._get(cid)
        state: dict[str, Any] = {
            "Status": c["State"],
            "Running": c["State"] == "running",
            "StartedAt": c.get("StartedAt"),
            "ExitCode": self.exit_code,
        }
        if c["kw"].get("healthcheck"):
            state["Health"] = {
                "Status": self.health,
                "Log": [{"ExitCode": 1, "Output": "not yet"}],
            }
        return {"Id": cid, "State": state, "RestartCount": 0}

    def logs(self, cid: str, **kw: Any) -> bytes:
        # Each stream on its own, as the provider reads them.
        return self.logs_text if kw.get("stdout") else self.stderr_text

    def wait(self, cid: str, timeout: float | None = None) -> dict[str, Any]:
        self._count("wait")
        return {"StatusCode": self.exit_code}

    # -- images
    def images(self) -> list[dict[str, Any]]:
        self._count("images")
        return list(self.images_.values())

    def pull(self, name: str, tag: str, **kw: Any) -> list[dict[str, Any]]:
        self._count("pull")
        self.last_auth = kw.get("auth_config")
        digest = tag if tag.startswith("sha256:") else self.registry.get(f"{name}:{tag}")
        if digest is None:
            return [{"error": f"manifest for {name}:{tag} not found"}]
        iid = "sha256:" + digest[-8:] * 8
        refs = [] if tag.startswith("sha256:") else [f"{name}:{tag}"]
        for other in self.images_.values():  # the tag moves
            other["RepoTags"] = [t for t in other["RepoTags"] if t not in refs]
        img = self.images_.setdefault(iid, {"Id": iid, "RepoTags": [], "RepoDigests": []})
        img["RepoTags"] += refs
        img["RepoDigests"] = [f"{name}@{digest}"]
        return [{"status": "Pulled"}]

    def inspect_image(self, ref: str) -> dict[str, Any]:
        for img in self.images_.values():
            if ref in (img["Id"], *img["RepoTags"], *img["RepoDigests"]):
                return img
        raise _not_found("image")

    def inspect_distribution(self, ref: str, auth_config: Any = None) -> dict[str, Any]:
        self._count("inspect_distribution")
        return {"Descriptor": {"digest": self.registry[ref]}}

    def remove_image(self, ref: str) -> None:
        self._count("remove_image")
        img = self.inspect_image(ref)
        del self.images_[img["Id"]]

    # -- volumes
    def volumes(self, filters: Any = None) -> dict[str, Any]:
        self._count("volumes")
        return {"Volumes": list(self.volumes_.values())}

    def inspect_volume(self, name: str) -> dict[str, Any]:
        if name not in self.volumes_:
            raise _not_found("volume")
        return self.volumes_[name]

    def create_volume(self, name: str, **kw: Any) -> dict[str, Any]:
        self._count("create_volume")
        v = {"Name": name, "Labels": kw["labels"], "Mountpoint": f"/var/lib/docker/volumes/{name}"}
        self.volumes_[name] = v
        return v

    def remove_volume(self, name: str) -> None:
        self.inspect_volume(name)
        del self.volumes_[name]


class FakeConnection(Connection):
    def __init__(self, host: str, api: FakeAPI | None, down: bool = False) -> None:
        self.host, self.api, self.down = host, api, down

    def run(self, command: Any, **kw: Any) -> CommandResult:  # pragma: no cover
        raise NotImplementedError

    def read_file(self, path: str) -> bytes | None:  # pragma: no cover
        raise NotImplementedError

    def write_file(self, path: str, data: bytes, **kw: Any) -> None:  # pragma: no cover
        raise NotImplementedError

    def docker(self) -> Any:
        if self.down:
            raise HostUnreachable(self.host, "cannot connect to 10.0.0.9:22: timed out")
        return self.api

    def close(self) -> None:
        pass


class World:
    """A provider configured with fake hosts."""

    def __init__(self, *hosts: str, down: tuple[str, ...] = ()) -> None:
        self.apis = {h: FakeAPI() for h in hosts}
        self.connects: Counter[str] = Counter()
        conns = {h: FakeConnection(h, self.apis[h], h in down) for h in hosts}
        self.provider = DockerProvider()

        def connect(h: str) -> Connection:
            self.connects[h] += 1
            return conns[h]

        infos = {h: HostInfo(h, f"10.0.0.{i}", "ssh") for i, h in enumerate(hosts)}
        self.provider.configure(ConfigureRequest(infos, connect))

    def plan(self, type_: str, addr: str, host: str, prior: Any, config: Mapping[str, Any]) -> Any:
        resp = self.provider.plan(PlanRequest(type_, addr, host, prior, config))
        assert not [d for d in resp.diagnostics if d.is_error], resp.diagnostics
        return resp

    def apply(self, type_: str, addr: str, host: str, action: str, prior: Any, planned: Any) -> Any:
        req = ApplyRequest(type_, addr, host, action, prior, planned)  # type: ignore[arg-type]
        return self.provider.apply(req)

    def converge(self, type_: str, addr: str, host: str, config: Mapping[str, Any]) -> Any:
        planned = self.plan(type_, addr, host, None, config).planned
        resp = self.apply(type_, addr, host, "create", None, planned)
        assert not resp.diagnostics, resp.diagnostics
        return resp.new_state

    def read(self, type_: str, *insts: tuple[str, str, Mapping[str, Any]]) -> Any:
        req = ReadRequest(type_, [ReadInstance(a, h, s) for a, h, s in insts])
        return self.provider.read(req)


def container_config(name: str = "web", **kw: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": f"{IMAGE}@{DIGEST_A}",
        "command": ["sleep", "infinity"],
        "healthcheck": {"test": "test -e /tmp/ok", "interval": "1s", "retries": 3},
        "health_timeout": 2,
        **kw,
    }


@pytest.fixture
def world() -> World:
    w = World("node1", "node2", "node3")
    for api in w.apis.values():
        api.registry[f"{IMAGE}:bookworm"] = DIGEST_A
        api.pull(IMAGE, "bookworm")
        api.calls.clear()
    return w


# ---- validate ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "attribute", "code"),
    [
        ({"binds": ["etc/kolla:/etc/kolla"]}, "binds", "invalid-mount"),
        ({"binds": ["/etc/kolla"]}, "binds", "invalid-mount"),
        ({"volumes": ["/srv:/data"]}, "volumes", "invalid-mount"),
        ({"binds": ["/srv:/data:rx"]}, "binds", "invalid-mount"),
        ({"restart_policy": "sometimes"}, "restart_policy", "invalid-restart-policy"),
        ({"healthcheck": {"interval": "1s"}}, "healthcheck", "invalid-healthcheck"),
        ({"healthcheck": {"test": "true", "interval": "soon"}}, "healthcheck", "invalid-duration"),
        ({"healthcheck": {"test": "true", "every": 1}}, "healthcheck", "invalid-healthcheck"),
        ({"labels": {"kplan.address": "x"}}, "labels", "reserved-label"),
        ({"ulimits": {"nofile": "lots"}}, "ulimits", "invalid-ulimit"),
        ({"name": "-bad name"}, "name", "invalid-name"),
        ({"health_timeout": 0}, "health_timeout", "invalid-timeout"),
        ({"command": {"a": 1}}, "command", "attribute-type"),
    ],
)
def test_container_validate_names_the_attribute(
    config: dict[str, Any], attribute: str, code: str
) -> None:
    full = {**container_config(), **config}
    diags = DockerProvider().validate(ValidateRequest("docker_container", full)).diagnostics
    assert [(d.attribute[0], d.code) for d in diags] == [(attribute, code)], diags


def test_valid_configs_pass_and_unknown_values_pass() -> None:
    p = DockerProvider()
    ok = container_config(
        binds=["/etc/kolla/keystone:/var/lib/kolla/config_files:ro"],
        volumes=["kolla_logs:/var/log/kolla"],
        ulimits={"nofile": 65536, "nproc": "1024:2048", "core": {"soft": 0, "hard": 0}},
        restart_policy="on-failure:3",
        environment={"PASSWORD": Secret("x"), "LATER": UNKNOWN},
        image=UNKNOWN,
    )
    assert p.validate(ValidateRequest("docker_container", ok)).diagnostics == []
    img = {"name": IMAGE, "tag": "bookworm", "registry_auth": {"username": "u", "password": "p"}}
    assert p.validate(ValidateRequest("docker_image", img)).diagnostics == []
    bad = {"name": f"{IMAGE}:bookworm", "digest": "sha256:xyz"}
    codes = {d.code for d in p.validate(ValidateRequest("docker_image", bad)).diagnostics}
    assert codes == {"invalid-image-name", "invalid-digest"}
    job = {"image": IMAGE, "command": "true", "triggers": {"v": 1}}
    assert p.validate(ValidateRequest("docker_job", job)).diagnostics == []


# ---- container: create, read, drift -------------------------------------------------


def test_create_labels_and_waits_healthy(world: World) -> None:
    state = world.converge("docker_container", "docker_container.web", "node1", container_config())
    api = world.apis["node1"]
    (c,) = api.containers_.values()
    assert c["Labels"]["kplan.managed"] == "true"
    assert c["Labels"]["kplan.address"] == "docker_container.web"
    assert c["Labels"]["kplan.spec"] == state["spec_hash"]
    assert c["kw"]["healthcheck"]["test"] == ["CMD-SHELL", "test -e /tmp/ok"]
    assert c["kw"]["healthcheck"]["interval"] == 1_000_000_000
    assert c["kw"]["host_config"]["network_mode"] == "host"
    assert state["container_id"] == c["Id"] and state["running"] is True
    assert api.calls["inspect_container"] >= 1


def test_read_is_one_list_per_host_whatever_the_count(world: World) -> None:
    insts = []
    for host in ("node1", "node2", "node3"):
        for i in range(10):
            addr = f'docker_container.svc["{host}-{i}"]'
            state = world.converge("docker_container", addr, host, container_config(f"svc{i}"))
            insts.append((addr, host, state))
    for api in world.apis.values():
        api.calls.clear()
    resp = world.read("docker_container", *insts)
    assert resp.diagnostics == []
    assert len(resp.states) == 30
    assert all(s == dict(st) for (a, _, st), s in zip(insts, resp.states.values(), strict=True))
    assert [api.calls for api in world.apis.values()] == [Counter(containers=1)] * 3


def test_stopped_outside_kplan_plans_a_start(world: World) -> None:
    config = container_config()
    state = world.converge("docker_container", "docker_container.web", "node1", config)
    world.apis["node1"].stop(state["container_id"])
    now = world.read("docker_container", ("docker_container.web", "node1", state))
    refreshed = now.states["docker_container.web"]
    assert refreshed["running"] is False
    resp = world.plan("docker_container", "docker_container.web", "node1", refreshed, config)
    assert resp.planned["running"] is True and not resp.requires_replace
    assert resp.planned["container_id"] == state["container_id"]
    upd = world.apply(
        "docker_container", "docker_container.web", "node1", "update", refreshed, resp.planned
    )
    assert not upd.diagnostics
    assert world.apis["node1"].containers_[state["container_id"]]["State"] == "running"
    assert upd.new_state["running"] is True


def test_removed_outside_kplan_reads_as_gone(world: World) -> None:
    state = world.converge("docker_container", "docker_container.web", "node1", container_config())
    world.apis["node1"].remove_container(state["container_id"])
    now = world.read("docker_container", ("docker_container.web", "node1", state))
    assert now.states == {"docker_container.web": None}


def test_spec_label_changed_outside_kplan_forces_replace(world: World) -> None:
    config = container_config()
    state = world.converge("docker_container", "docker_container.web", "node1", config)
    world.apis["node1"].containers_[state["container_id"]]["Labels"]["kplan.spec"] = "f" * 64
    now = world.read("docker_container", ("docker_container.web", "node1", state))
    refreshed = now.states["docker_container.web"]
    assert refreshed["spec_hash"] == "f" * 64
    resp = world.plan("docker_container", "docker_container.web", "node1", refreshed, config)
    assert ("spec_hash",) in resp.requires_replace
    assert resp.planned["spec_hash"] == state["spec_hash"]


def test_config_change_replaces_and_keeps_name(world: World) -> None:
    config = container_config()
    state = world.converge("docker_container", "docker_container.web", "node1", config)
    new = {**config, "environment": {"DEBUG": "1"}}
    resp = world.plan("docker_container", "docker_container.web", "node1", state, new)
    assert resp.requires_replace == [("environment",)]
    assert resp.planned["container_id"] is UNKNOWN
    out = world.apply(
        "docker_container", "docker_container.web", "node1", "replace", state, resp.planned
    )
    assert not out.diagnostics
    (c,) = world.apis["node1"].containers_.values()
    assert c["Id"] == out.new_state["container_id"] != state["container_id"]
    assert c["kw"]["environment"] == {"DEBUG": "1"}


def _replace(world: World, config: Mapping[str, Any], **change: Any) -> tuple[Any, Any]:
    """Converge ``config`` as docker_container.web on node1, then apply a replace to ``change``."""
    state = world.converge("docker_container", "docker_container.web", "node1", config)
    resp = world.plan(
        "docker_container", "docker_container.web", "node1", state, {**config, **change}
    )
    assert resp.requires_replace
    world.apis["node1"].log.clear()
    out = world.apply(
        "docker_container", "docker_container.web", "node1", "replace", state, resp.planned
    )
    return state, out


def _names(api: FakeAPI) -> dict[str, str]:
    return {c["Names"][0]: c["State"] for c in api.containers_.values()}


def test_replace_creates_the_new_container_before_removing_the_old(world: World) -> None:
    api = world.apis["node1"]
    state, out = _replace(world, container_config(), environment={"DEBUG": "1"})
    assert not out.diagnostics, out.diagnostics
    new_id = out.new_state["container_id"]
    assert api.log == [
        ("create_container", "web.kplan-new"),
        ("stop", state["container_id"]),
        ("remove_container", state["container_id"]),
        ("rename", "web"),
    ]
    assert _names(api) == {"/web": "running"}
    (c,) = api.containers_.values()
    assert c["Id"] == new_id and c["Labels"]["kplan.address"] == "docker_container.web"
    # Renamed into place, it reads as the address's container.
    read = world.read("docker_container", ("docker_container.web", "node1", out.new_state))
    assert read.states == {"docker_container.web": out.new_state}


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"cap_add": ["NET_ADMIN", "bogus"]}, 'unknown capability: "bogus"'),
        ({"image": f"{IMAGE}:nope"}, "docker_image"),
    ],
)
def test_a_replace_whose_create_fails_keeps_the_old_container_running(
    world: World, change: dict[str, Any], detail: str
) -> None:
    api = world.apis["node1"]
    state, out = _replace(world, container_config(), **change)
    (d,) = out.diagnostics
    assert d.code == "docker-api" and 'creating container "web"' in d.summary
    assert detail in d.detail
    assert 'the old container "web" is left as it was and keeps running' in d.detail
    assert out.new_state == state
    assert _names(api) == {"/web": "running"}
    assert api.containers_[state["container_id"]]["State"] == "running"
    assert ("stop", state["container_id"]) not in api.log


def test_a_replace_that_dies_before_the_rename_is_recovered(world: World) -> None:
    """The session drops after the old container went: the staged one is not taken for it."""
    api = world.apis["node1"]

    def dropped(cid: str, name: str) -> None:
        raise requests.exceptions.ConnectionError("Connection aborted.")

    api.rename = dropped  # type: ignore[method-assign]
    config = container_config()
    state, out = _replace(world, config, environment={"DEBUG": "1"})
    (d,) = out.diagnostics
    assert d.code == UNREACHABLE_CODE
    assert 'left, not started, as "web.kplan-new"' in d.detail
    assert _names(api) == {"/web.kplan-new": "created"}
    # The refresh does not take the unfinished replacement for the container.
    read = world.read("docker_container", ("docker_container.web", "node1", state))
    assert read.states == {"docker_container.web": None}
    # The next apply creates it, clearing the leftover.
    del api.rename
    new = world.converge("docker_container", "docker_container.web", "node1", config)
    assert _names(api) == {"/web": "running"}
    assert set(api.containers_) == {new["container_id"]}


def test_a_replace_that_dies_before_the_old_is_removed_is_retried(world: World) -> None:
    api = world.apis["node1"]
    real_stop, real_remove = api.stop, api.remove_container

    def dropped(*a: Any, **kw: Any) -> None:
        raise requests.exceptions.ConnectionError("Connection aborted.")

    api.stop = dropped  # type: ignore[method-assign]
    api.remove_container = dropped  # type: ignore[method-assign]
    config = container_config()
    state, out = _replace(world, config, environment={"DEBUG": "1"})
    assert [d.code for d in out.diagnostics] == [UNREACHABLE_CODE]
    assert out.new_state == state
    # Both exist now, with the same kplan.address: the refresh still finds the old one.
    assert _names(api) == {"/web": "running", "/web.kplan-new": "created"}
    stale = {**state, "container_id": "gone"}
    for recorded in (state, stale):
        read = world.read("docker_container", ("docker_container.web", "node1", recorded))
        assert read.states["docker_container.web"]["container_id"] == state["container_id"]
    # The retry removes the leftover, and replaces.
    api.stop, api.remove_container = real_stop, real_remove  # type: ignore[method-assign]
    planned = world.plan(
        "docker_container",
        "docker_container.web",
        "node1",
        state,
        {**config, "environment": {"DEBUG": "1"}},
    ).planned
    again = world.apply(
        "docker_container", "docker_container.web", "node1", "replace", state, planned
    )
    assert not again.diagnostics, again.diagnostics
    assert _names(api) == {"/web": "running"}
    assert set(api.containers_) == {again.new_state["container_id"]}


def test_a_replace_refuses_a_foreign_container_under_the_temporary_name(world: World) -> None:
    api = world.apis["node1"]
    api.create_container(f"{IMAGE}@{DIGEST_A}", name="web.kplan-new", labels={})
    state, out = _replace(world, container_config(), environment={"DEBUG": "1"})
    (d,) = out.diagnostics
    assert d.code == "container-exists" and '"web.kplan-new"' in d.summary
    assert api.containers_[state["container_id"]]["State"] == "running"


def test_a_replace_to_a_new_name_removes_the_old_one(world: World) -> None:
    api = world.apis["node1"]
    _, out = _replace(world, container_config(), name="web2")
    assert not out.diagnostics, out.diagnostics
    assert _names(api) == {"/web2": "running"}


def test_nothing_changed_plans_the_same_state(world: World) -> None:
    config = container_config()
    state = world.converge("docker_container", "docker_container.web", "node1", config)
    resp = world.plan("docker_container", "docker_container.web", "node1", state, config)
    assert resp.requires_replace == [] and dict(resp.planned) == state


def test_restart_restarts_and_waits(world: World) -> None:
    config = container_config()
    state = world.converge("docker_container", "docker_container.web", "node1", config)
    out = world.apply("docker_container", "docker_container.web", "node1", "restart", state, state)
    assert not out.diagnostics and world.apis["node1"].calls["restart"] == 1


def test_unhealthy_times_out_with_logs_and_health_output(world: World) -> None:
    api = world.apis["node1"]
    api.health = "starting"
    api.logs_text = b"line one\nkeystone: database not ready\n"
    planned = world.plan(
        "docker_container",
        "docker_container.web",
        "node1",
        None,
        container_config(health_timeout=1),
    ).planned
    out = world.apply("docker_container", "docker_container.web", "node1", "create", None, planned)
    (d,) = out.diagnostics
    assert out.new_state is None
    assert d.code == "container-unhealthy" and "was not healthy after 1 s" in d.summary
    assert "database not ready" in d.detail and "not yet" in d.detail
    # The next create takes the leftover's name back.
    api.health = "healthy"
    again = world.apply(
        "docker_container", "docker_container.web", "node1", "create", None, planned
    )
    assert not again.diagnostics and len(api.containers_) == 1


def create_while_starting(world: World, probe_exit: int | None, **config: Any) -> Any:
    """Create docker_container.web on node1 while Docker still says "starting";
    kplan's own runs of the health test exit ``probe_exit`` (None: they hang)."""
    api = world.apis["node1"]
    api.health = "starting"
    api.probe_exit = probe_exit
    planned = world.plan(
        "docker_container", "docker_container.web", "node1", None, container_config(**config)
    ).planned
    return world.apply("docker_container", "docker_container.web", "node1", "create", None, planned)


def test_a_passing_health_test_run_by_kplan_counts_before_dockers_first_check(
    world: World,
) -> None:
    # Docker runs its first check only after a whole interval (30 s here): kplan
    # runs the test itself meanwhile, as Docker 25's start_interval would.
    health = {"test": "test -e /tmp/ok", "interval": "30s", "timeout": "5s", "retries": 3}
    out = create_while_starting(world, 0, healthcheck=health, health_timeout=5)
    assert not out.diagnostics
    api = world.apis["node1"]
    ((cid, argv, kw),) = api.execs
    assert cid in api.containers_ and argv == ["/bin/sh", "-c", "test -e /tmp/ok"]
    assert kw == {"stdout": False, "stderr": False}


def test_with_a_short_interval_dockers_own_verdict_is_awaited(world: World) -> None:
    # Docker checks within the interval anyway; `docker ps` then agrees with kplan.
    out = create_while_starting(world, 0)
    assert [d.code for d in out.diagnostics] == ["container-unhealthy"]
    assert world.apis["node1"].execs == []


def test_a_health_test_that_hangs_does_not_stop_the_timeout(world: World) -> None:
    health = {"test": ["CMD", "probe", "--fast"], "timeout": "1s"}
    out = create_while_starting(world, None, healthcheck=health, health_timeout=2)  # runs hang
    (d,) = out.diagnostics
    assert d.code == "container-unhealthy" and "was not healthy after 2 s" in d.summary
    # The hung run was given up after its timeout and the test run again.
    execs = world.apis["node1"].execs
    assert [argv for _, argv, _ in execs][:2] == [["probe", "--fast"]] * 2
    assert "kplan's runs of the health test: " in d.detail and "none finished" in d.detail


def test_a_failing_health_test_run_by_kplan_is_reported(world: World) -> None:
    health = {"test": "test -e /tmp/ok", "interval": "0s"}  # 0: Docker's default, 30 s
    out = create_while_starting(world, 3, healthcheck=health, health_timeout=2)
    (d,) = out.diagnostics
    assert d.code == "container-unhealthy"
    assert "the last exited 3" in d.detail and "Docker's health checks:" in d.detail


def test_foreign_container_with_the_name_is_refused(world: World) -> None:
    api = world.apis["node1"]
    api.create_container(f"{IMAGE}@{DIGEST_A}", name="web", labels={})
    planned = world.plan(
        "docker_container", "docker_container.web", "node1", None, container_config()
    ).planned
    out = world.apply("docker_container", "docker_container.web", "node1", "create", None, planned)
    (d,) = out.diagnostics
    assert d.code == "container-exists" and "does not manage it" in d.detail


def test_missing_image_says_how_to_pull_it(world: World) -> None:
    config = container_config(image=f"{IMAGE}:nope")
    planned = world.plan("docker_container", "docker_container.web", "node1", None, config).planned
    out = world.apply("docker_container", "docker_container.web", "node1", "create", None, planned)
    (d,) = out.diagnostics
    assert d.code == "docker-api" and d.attribute == ("image",)
    assert "docker_image" in d.detail


def test_delete_stops_and_removes(world: World) -> None:
    state = world.converge("docker_container", "docker_container.web", "node1", container_config())
    out = world.apply("docker_container", "docker_container.web", "node1", "delete", state, None)
    assert out.new_state is None and not out.diagnostics
    assert world.apis["node1"].containers_ == {}
    again = world.apply("docker_container", "docker_container.web", "node1", "delete", state, None)
    assert not again.diagnostics


def test_secret_environment_stays_secret(world: World) -> None:
    config = container_config(environment={"DB_PASSWORD": Secret("hunter2"), "MODE": "x"})
    resp = world.plan("docker_container", "docker_container.web", "node1", None, config)
    assert isinstance(resp.planned["spec_hash"], Secret)
    assert "hunter2" not in repr(resp.planned)
    state = world.converge("docker_container", "docker_container.web", "node1", config)
    assert isinstance(state["environment"]["DB_PASSWORD"], Secret)
    assert "hunter2" not in repr(state)
    (c,) = world.apis["node1"].containers_.values()
    assert c["kw"]["environment"]["DB_PASSWORD"] == "hunter2"  # revealed to Docker only
    other = {**resp.planned, "environment": {"DB_PASSWORD": "other", "MODE": "x"}}
    assert resp.planned["spec_hash"].reveal() != spec_hash(other, SPEC_KEYS)


# ---- hosts ------------------------------------------------------------------------


def test_unreachable_host_fails_only_its_instances() -> None:
    w = World("node1", "node2", down=("node2",))
    w.apis["node1"].registry[f"{IMAGE}:bookworm"] = DIGEST_A
    w.apis["node1"].pull(IMAGE, "bookworm")
    state = w.converge("docker_container", "docker_container.a", "node1", container_config())
    resp = w.read(
        "docker_container",
        ("docker_container.a", "node1", state),
        ("docker_container.b", "node2", {**state, "name": "b"}),
    )
    assert list(resp.states) == ["docker_container.a"]  # b: state keeps what it recorded
    (d,) = resp.diagnostics
    assert d.code == UNREACHABLE_CODE and "node2" in d.summary
    out = w.apply("docker_container", "docker_container.b", "node2", "delete", state, None)
    assert [x.code for x in out.diagnostics] == [UNREACHABLE_CODE]
    assert out.new_state == state


def test_lost_session_mid_call_is_unreachable(world: World) -> None:
    def broken(**kw: Any) -> Any:
        raise requests.exceptions.ConnectionError("Connection aborted.")

    world.apis["node1"].containers = broken  # type: ignore[method-assign]
    resp = world.read("docker_container", ("docker_container.a", "node1", container_config()))
    assert [d.code for d in resp.diagnostics] == [UNREACHABLE_CODE]


@pytest.mark.parametrize(
    "exc", [paramiko.SSHException("SSH session not active"), EOFError(), OSError("Socket closed")]
)
def test_a_dropped_ssh_session_is_unreachable(world: World, exc: Exception) -> None:
    def broken(**kw: Any) -> Any:
        raise exc

    world.apis["node1"].containers = broken  # type: ignore[method-assign]
    resp = world.read("docker_container", ("docker_container.a", "node1", container_config()))
    (d,) = resp.diagnostics
    assert d.code == UNREACHABLE_CODE and d.summary.startswith("host node1:")


def test_sshd_refusing_another_session_says_max_sessions(world: World) -> None:
    def refused(**kw: Any) -> Any:
        raise paramiko.ChannelException(1, "Administratively prohibited")

    world.apis["node1"].containers = refused  # type: ignore[method-assign]
    resp = world.read("docker_container", ("docker_container.a", "node1", container_config()))
    (d,) = resp.diagnostics
    assert d.code == "ssh-session-refused" and d.code != UNREACHABLE_CODE
    assert d.summary.startswith("host node1: sshd refused another SSH session (MaxSessions); ")
    assert "Administratively prohibited" in d.detail and "MaxSessions" in d.detail


def test_no_host_is_refused(world: World) -> None:
    out = world.apply("docker_container", "docker_container.a", None, "create", None, {})  # type: ignore[arg-type]
    assert [d.code for d in out.diagnostics] == ["missing-host"]
    resp = world.read("docker_volume", ("docker_volume.v", None, {"name": "v"}))  # type: ignore[arg-type]
    assert [d.code for d in resp.diagnostics] == ["missing-host"] and resp.states == {}


def test_unconfigured_provider_says_so() -> None:
    out = DockerProvider().apply(
        ApplyRequest("docker_volume", "docker_volume.v", "node1", "create", None, {"name": "v"})
    )
    assert [d.code for d in out.diagnostics] == ["provider-not-configured"]


# ---- image ------------------------------------------------------------------------


def test_image_pull_records_digests_and_a_moved_tag_plans_an_update(world: World) -> None:
    api = world.apis["node2"]
    api.images_.clear()
    config = {"name": IMAGE, "tag": "bookworm"}
    state = world.converge("docker_image", "docker_image.base", "node2", config)
    assert state["repo_digest"] == f"{IMAGE}@{DIGEST_A}"
    assert state["registry_digest"] == DIGEST_A and state["image_id"].startswith("sha256:")
    api.calls.clear()
    read = world.read("docker_image", ("docker_image.base", "node2", state))
    assert read.states["docker_image.base"] == state
    assert api.calls == Counter(images=1, inspect_distribution=1)
    # The tag moves in the registry.
    api.registry[f"{IMAGE}:bookworm"] = DIGEST_B
    refreshed = world.read("docker_image", ("docker_image.base", "node2", state)).states[
        "docker_image.base"
    ]
    assert refreshed["registry_digest"] == DIGEST_B
    assert refreshed["repo_digest"] == f"{IMAGE}@{DIGEST_A}"
    resp = world.plan("docker_image", "docker_image.base", "node2", refreshed, config)
    assert resp.requires_replace == []
    assert resp.planned["repo_digest"] is UNKNOWN and resp.planned["image_id"] is UNKNOWN
    out = world.apply(
        "docker_image", "docker_image.base", "node2", "update", refreshed, resp.planned
    )
    assert not out.diagnostics
    assert out.new_state["repo_digest"] == f"{IMAGE}@{DIGEST_B}"
    # Settled: nothing more to do.
    again = world.plan("docker_image", "docker_image.base", "node2", out.new_state, config)
    assert dict(again.planned) == out.new_state


def test_image_pull_error_and_auth_kept_secret(world: World) -> None:
    config = {
        "name": IMAGE,
        "tag": "missing",
        "registry_auth": Secret({"username": "u", "password": "pw-123"}),
    }
    planned = world.plan("docker_image", "docker_image.x", "node1", None, config).planned
    out = world.apply("docker_image", "docker_image.x", "node1", "create", None, planned)
    (d,) = out.diagnostics
    assert d.code == "image-pull" and d.attribute == ("tag",) and "not found" in d.detail
    assert "pw-123" not in str(d)
    assert world.apis["node1"].last_auth == {"username": "u", "password": "pw-123"}


def test_image_removed_from_host_reads_as_gone_and_delete(world: World) -> None:
    state = world.converge(
        "docker_image", "docker_image.base", "node1", {"name": IMAGE, "tag": "bookworm"}
    )
    out = world.apply("docker_image", "docker_image.base", "node1", "delete", state, None)
    assert not out.diagnostics and world.apis["node1"].images_ == {}
    read = world.read("docker_image", ("docker_image.base", "node1", state))
    assert read.states == {"docker_image.base": None}


# ---- volume -----------------------------------------------------------------------


def test_volume_lifecycle_and_batched_read(world: World) -> None:
    states = [
        world.converge("docker_volume", f"docker_volume.v{i}", "node1", {"name": f"v{i}"})
        for i in range(5)
    ]
    assert states[0]["mountpoint"] == "/var/lib/docker/volumes/v0"
    assert world.apis["node1"].volumes_["v0"]["Labels"] == {
        "kplan.managed": "true",
        "kplan.address": "docker_volume.v0",
    }
    world.apis["node1"].calls.clear()
    insts = [(f"docker_volume.v{i}", "node1", s) for i, s in enumerate(states)]
    resp = world.read("docker_volume", *insts)
    assert resp.states == {a: s for a, _, s in insts}
    assert world.apis["node1"].calls == Counter(volumes=1)
    # Another address's volume of the same name is never taken over.
    planned = world.plan(
        "docker_volume", "docker_volume.other", "node1", None, {"name": "v0"}
    ).planned
    out = world.apply("docker_volume", "docker_volume.x", "node1", "create", None, planned)
    assert [d.code for d in out.diagnostics] == ["volume-exists"]
    gone = world.apply("docker_volume", "docker_volume.v0", "node1", "delete", states[0], None)
    assert not gone.diagnostics and "v0" not in world.apis["node1"].volumes_


# ---- job --------------------------------------------------------------------------


def test_job_runs_records_exit_code_and_removes_its_container(world: World) -> None:
    config = {"image": f"{IMAGE}@{DIGEST_A}", "command": "keystone-manage db_sync"}
    state = world.converge("docker_job", "docker_job.db_sync", "node1", config)
    assert state["exit_code"] == 0
    assert world.apis["node1"].containers_ == {}
    # A job never drifts: a read is the recorded state, without asking Docker.
    world.apis["node1"].calls.clear()
    resp = world.read("docker_job", ("docker_job.db_sync", "node1", state))
    assert resp.states == {"docker_job.db_sync": state} and not world.apis["node1"].calls
    # A changed trigger runs it again.
    plan = world.plan(
        "docker_job", "docker_job.db_sync", "node1", state, {**config, "triggers": {"v": "2"}}
    )
    assert plan.requires_replace == [("triggers",)]


def test_job_failure_reports_exit_code_and_log_tail(world: World) -> None:
    api = world.apis["node1"]
    api.exit_code = 3
    api.logs_text = "".join(f"line {i}\n" for i in range(30)).encode()
    api.stderr_text = b"fatal: no database\n"
    config = {"image": f"{IMAGE}@{DIGEST_A}", "command": "exit 3"}
    planned = world.plan("docker_job", "docker_job.j", "node1", None, config).planned
    out = world.apply("docker_job", "docker_job.j", "node1", "create", None, planned)
    (d,) = out.diagnostics
    assert out.new_state is None
    assert d.code == "job-failed" and "exited with code 3" in d.summary
    assert "line 29" in d.detail and "stderr:\nfatal: no database" in d.detail
    assert api.containers_ == {}
