"""The docker provider on real lab hosts: sshd, dockerd and a registry in network namespaces.

The provider is driven through the protocol (configure, plan, apply, read)
with real SSH connections; drift is made by hand with the docker CLI on the
host. The tests run in file order against one lab (module fixture).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from kplan.provider_api import (
    ApplyRequest,
    ConfigureRequest,
    HostInfo,
    PlanRequest,
    ReadInstance,
    ReadRequest,
)
from kplan.transport.base import UNREACHABLE_CODE, Connection
from kplan.transport.ssh import SSHConnection
from kplan.values import Secret
from kplan_providers.docker import DockerProvider
from tests.integration.lab_fixture import Lab, lab_up


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from lab_up(2, ("base", "memcached"))


class CountingAPI:
    """A docker.APIClient that counts the calls made through it."""

    def __init__(self, api: Any) -> None:
        self._api = api
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._api, name)
        if not callable(attr):
            return attr

        def call(*a: Any, **kw: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return attr(*a, **kw)

        return call


class Counted(Connection):
    def __init__(self, conn: SSHConnection) -> None:
        self.host = conn.host
        self.conn = conn
        self.api: CountingAPI | None = None

    def run(self, command: Any, **kw: Any) -> Any:
        return self.conn.run(command, **kw)

    def read_file(self, path: str) -> bytes | None:
        return self.conn.read_file(path)

    def write_file(self, path: str, data: bytes, **kw: Any) -> None:
        self.conn.write_file(path, data, **kw)

    def docker(self) -> Any:
        if self.api is None:
            self.api = CountingAPI(self.conn.docker())
        return self.api

    def close(self) -> None:
        self.conn.close()


class Driver:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.provider = DockerProvider()
        self.conns: dict[str, Counted] = {}
        # The web container's state as the last test left it.
        self.create_state: Any = None
        hosts = {h.name: HostInfo(h.name, h.address, "ssh") for h in lab.hosts}
        hosts["ghost"] = HostInfo("ghost", "10.231.9.99", "ssh")
        addresses = {**{h.name: h.address for h in lab.hosts}, "ghost": "10.231.9.99"}

        def connect(name: str) -> Connection:
            if name not in self.conns:
                ssh = SSHConnection(
                    name,
                    addresses[name],
                    user="root",
                    key_filename=str(lab.ssh_key),
                    known_hosts=str(lab.known_hosts),
                    connect_timeout=3,
                )
                self.conns[name] = Counted(ssh)
            return self.conns[name]

        self.connect = connect
        self.provider.configure(ConfigureRequest(hosts, connect))

    def sh(self, host: str, command: str) -> str:
        return self.connect(host).run(command).text()

    def plan(self, type_: str, addr: str, host: str, prior: Any, config: Any) -> Any:
        resp = self.provider.plan(PlanRequest(type_, addr, host, prior, config))
        assert not [d for d in resp.diagnostics if d.is_error], resp.diagnostics
        return resp

    def apply(self, type_: str, addr: str, host: str, action: str, prior: Any, planned: Any) -> Any:
        req = ApplyRequest(type_, addr, host, action, prior, planned)  # type: ignore[arg-type]
        return self.provider.apply(req)

    def create(self, type_: str, addr: str, host: str, config: Mapping[str, Any]) -> Any:
        planned = self.plan(type_, addr, host, None, config).planned
        resp = self.apply(type_, addr, host, "create", None, planned)
        assert not resp.diagnostics, [str(d) for d in resp.diagnostics]
        return resp.new_state

    def read(self, type_: str, *insts: tuple[str, str, Mapping[str, Any]]) -> Any:
        return self.provider.read(ReadRequest(type_, [ReadInstance(*i) for i in insts]))

    def read_one(self, type_: str, addr: str, host: str, state: Mapping[str, Any]) -> Any:
        resp = self.read(type_, (addr, host, state))
        assert not resp.diagnostics, resp.diagnostics
        return resp.states[addr]


@pytest.fixture(scope="module")
def d(lab: Lab) -> Iterator[Driver]:
    drv = Driver(lab)
    yield drv
    for c in drv.conns.values():
        c.close()


@pytest.fixture(scope="module")
def base(d: Driver, lab: Lab) -> dict[str, Any]:
    """The base image pulled on node1 through docker_image."""
    assert lab.base_image is not None
    name = lab.base_image.rsplit(":", 1)[0]
    return dict(
        d.create("docker_image", "docker_image.base", "node1", {"name": name, "tag": "bookworm"})
    )


def web_config(base: Mapping[str, Any], **kw: Any) -> dict[str, Any]:
    return {
        "name": "kplan-web",
        "image": base["repo_digest"],
        "command": "touch /tmp/ok; exec sleep infinity",
        "healthcheck": {"test": "test -e /tmp/ok", "interval": "1s", "timeout": "2s", "retries": 3},
        "environment": {"MODE": "test", "PASSWORD": Secret("s3cret")},
        "health_timeout": 30,
        "stop_timeout": 1,
        **kw,
    }


WEB = "docker_container.web"


def test_image_pulled_with_digests(d: Driver, base: dict[str, Any], lab: Lab) -> None:
    assert base["repo_digest"].startswith(f"{lab.registry}/kplan/base@sha256:")
    assert base["registry_digest"] == base["repo_digest"].rsplit("@", 1)[1]
    assert d.read_one("docker_image", "docker_image.base", "node1", base) == base
    # The same tag is a no-op plan.
    config = {"name": base["name"], "tag": "bookworm"}
    assert dict(d.plan("docker_image", "docker_image.base", "node1", base, config).planned) == base


def test_moved_tag_plans_an_update_and_pull_follows(d: Driver, lab: Lab) -> None:
    repo = f"{lab.registry}/kplan/moving"
    d.sh(
        "node1", f"docker tag {lab.registry}/kplan/base:bookworm {repo}:v1 && docker push {repo}:v1"
    )
    config = {"name": repo, "tag": "v1"}
    state = d.create("docker_image", "docker_image.moving", "node2", config)
    # Someone pushes another image under the same tag.
    d.sh(
        "node1",
        f"docker pull {lab.registry}/kplan/memcached:bookworm && "
        f"docker tag {lab.registry}/kplan/memcached:bookworm {repo}:v1 && docker push {repo}:v1",
    )
    refreshed = d.read_one("docker_image", "docker_image.moving", "node2", state)
    assert refreshed["registry_digest"] != state["registry_digest"]
    assert refreshed["repo_digest"] == state["repo_digest"]
    resp = d.plan("docker_image", "docker_image.moving", "node2", refreshed, config)
    assert resp.requires_replace == []
    out = d.apply("docker_image", "docker_image.moving", "node2", "update", refreshed, resp.planned)
    assert not out.diagnostics, out.diagnostics
    assert out.new_state["repo_digest"].endswith(refreshed["registry_digest"])
    assert out.new_state["image_id"] != state["image_id"]


def test_container_created_healthy_and_labelled(d: Driver, base: dict[str, Any]) -> None:
    state = d.create("docker_container", WEB, "node1", web_config(base))
    out = d.sh(
        "node1",
        "docker inspect -f '{{.State.Health.Status}} {{index .Config.Labels \"kplan.address\"}}' "
        "kplan-web",
    )
    assert out.split() == ["healthy", WEB]
    assert d.read_one("docker_container", WEB, "node1", state) == state
    assert isinstance(state["spec_hash"], Secret)  # the spec holds a password
    d.create_state = state


def test_stopped_outside_kplan_is_started_again(d: Driver, base: dict[str, Any]) -> None:
    config = web_config(base)
    state = d.read_one("docker_container", WEB, "node1", d.create_state)
    d.sh("node1", "docker stop -t 1 kplan-web")
    refreshed = d.read_one("docker_container", WEB, "node1", state)
    assert refreshed["running"] is False
    resp = d.plan("docker_container", WEB, "node1", refreshed, config)
    assert resp.planned["running"] is True and not resp.requires_replace
    out = d.apply("docker_container", WEB, "node1", "update", refreshed, resp.planned)
    assert not out.diagnostics, out.diagnostics
    health = d.sh("node1", "docker inspect -f '{{.State.Health.Status}}' kplan-web").strip()
    assert health == "healthy"
    d.create_state = out.new_state


def test_restart_waits_healthy(d: Driver) -> None:
    state = d.create_state
    before = d.sh("node1", "docker inspect -f '{{.State.StartedAt}}' kplan-web")
    out = d.apply("docker_container", WEB, "node1", "restart", state, state)
    assert not out.diagnostics, out.diagnostics
    after = d.sh(
        "node1", "docker inspect -f '{{.State.StartedAt}} {{.State.Health.Status}}' kplan-web"
    )
    assert after.split()[0] != before.strip() and after.split()[1] == "healthy"


def test_spec_change_replaces(d: Driver, base: dict[str, Any]) -> None:
    state = d.create_state
    config = web_config(base, environment={"MODE": "other"})
    resp = d.plan("docker_container", WEB, "node1", state, config)
    assert resp.requires_replace == [("environment",)]
    out = d.apply("docker_container", WEB, "node1", "replace", state, resp.planned)
    assert not out.diagnostics, out.diagnostics
    assert out.new_state["container_id"] != state["container_id"]
    env = d.sh("node1", "docker inspect -f '{{json .Config.Env}}' kplan-web")
    assert "MODE=other" in env
    ids = d.sh("node1", "docker ps -aq --no-trunc --filter label=kplan.address=" + WEB).split()
    assert ids == [out.new_state["container_id"]]
    d.create_state = out.new_state


def test_replace_whose_create_fails_keeps_the_old_running(d: Driver, base: dict[str, Any]) -> None:
    state = d.create_state
    config = web_config(base, environment={"MODE": "other"}, cap_add=["CAP_NOPE_BOGUS"])
    resp = d.plan("docker_container", WEB, "node1", state, config)
    assert resp.requires_replace == [("cap_add",)]
    out = d.apply("docker_container", WEB, "node1", "replace", state, resp.planned)
    (diag,) = out.diagnostics
    assert diag.code == "docker-api" and "CAP_NOPE_BOGUS" in diag.detail, str(diag)
    assert "keeps running" in diag.detail
    assert out.new_state == state
    ps = d.sh(
        "node1",
        "docker ps -a --no-trunc --format '{{.ID}} {{.Names}} {{.State}}' "
        "--filter label=kplan.address=" + WEB,
    )
    assert ps.split() == [state["container_id"], "kplan-web", "running"]
    health = d.sh("node1", "docker inspect -f '{{.State.Health.Status}}' kplan-web").strip()
    assert health == "healthy"


def test_changed_outside_kplan_plans_a_replace(d: Driver, base: dict[str, Any]) -> None:
    state = d.create_state
    d.sh(
        "node1",
        "docker rm -f kplan-web >/dev/null && docker run -d --name kplan-web --network host "
        f"--label kplan.managed=true --label kplan.address={WEB} --label kplan.spec=handmade "
        f"{base['repo_digest']} sleep infinity",
    )
    refreshed = d.read_one("docker_container", WEB, "node1", state)
    assert refreshed["spec_hash"] == "handmade"
    resp = d.plan(
        "docker_container", WEB, "node1", refreshed, web_config(base, environment={"MODE": "other"})
    )
    assert ("spec_hash",) in resp.requires_replace
    out = d.apply("docker_container", WEB, "node1", "replace", refreshed, resp.planned)
    assert not out.diagnostics, out.diagnostics
    d.create_state = out.new_state


def test_removed_outside_kplan_reads_gone_and_delete(d: Driver) -> None:
    state = d.create_state
    d.sh("node1", "docker rm -f kplan-web")
    assert d.read_one("docker_container", WEB, "node1", state) is None
    out = d.apply("docker_container", WEB, "node1", "delete", state, None)
    assert out.new_state is None and not out.diagnostics


def test_unhealthy_fails_with_health_output_and_logs(d: Driver, base: dict[str, Any]) -> None:
    config = web_config(
        base,
        name="kplan-sick",
        command="echo starting up; echo cannot reach the database >&2; exec sleep infinity",
        healthcheck={"test": "echo probe failed; false", "interval": "1s", "retries": 1},
        health_timeout=4,
    )
    planned = d.plan("docker_container", "docker_container.sick", "node1", None, config).planned
    out = d.apply("docker_container", "docker_container.sick", "node1", "create", None, planned)
    (diag,) = out.diagnostics
    assert out.new_state is None
    assert diag.code == "container-unhealthy" and "was not healthy after 4 s" in diag.summary
    assert "cannot reach the database" in diag.detail and "probe failed" in diag.detail
    assert "s3cret" not in str(diag)
    # The next create takes the name back from the leftover.
    config["healthcheck"] = {"test": "true", "interval": "1s"}
    planned = d.plan("docker_container", "docker_container.sick", "node1", None, config).planned
    again = d.apply("docker_container", "docker_container.sick", "node1", "create", None, planned)
    assert not again.diagnostics, again.diagnostics
    gone = d.apply(
        "docker_container", "docker_container.sick", "node1", "delete", again.new_state, None
    )
    assert not gone.diagnostics


def test_memcached_without_healthcheck_waits_running(d: Driver, lab: Lab) -> None:
    image = d.create(
        "docker_image",
        "docker_image.memcached",
        "node2",
        {"name": f"{lab.registry}/kplan/memcached", "tag": "bookworm"},
    )
    config = {
        "name": "kplan-memcached",
        "image": image["repo_digest"],
        "command": ["memcached", "-u", "memcache", "-l", lab.hosts[1].address, "-p", "11211"],
        "ulimits": {"nofile": 4096},
        "stop_timeout": 2,
    }
    state = d.create("docker_container", "docker_container.memcached", "node2", config)
    assert state["running"] is True
    status = d.sh(
        "node2", "docker inspect -f '{{.State.Status}} {{.HostConfig.NetworkMode}}' kplan-memcached"
    )
    assert status.split() == ["running", "host"]
    out = d.apply("docker_container", "docker_container.memcached", "node2", "delete", state, None)
    assert not out.diagnostics


def test_refresh_is_one_list_per_host(d: Driver, base: dict[str, Any], lab: Lab) -> None:
    node2_base = d.create(
        "docker_image", "docker_image.base2", "node2", {"name": base["name"], "tag": "bookworm"}
    )
    insts = []
    for host, image in (("node1", base), ("node2", node2_base)):
        for i in range(4):
            addr = f'docker_container.many["{host}-{i}"]'
            cfg = {
                "name": f"kplan-many-{i}",
                "image": image["repo_digest"],
                "command": ["sleep", "infinity"],
                "stop_timeout": 1,
            }
            insts.append((addr, host, d.create("docker_container", addr, host, cfg)))
    for c in d.conns.values():
        if c.api is not None:
            c.api.calls.clear()
    resp = d.read("docker_container", *insts)
    assert not resp.diagnostics and all(resp.states[a] == s for a, _, s in insts)
    for host in ("node1", "node2"):
        api = d.conns[host].api
        assert api is not None and api.calls == {"containers": 1}
    for addr, host, state in insts:
        out = d.apply("docker_container", addr, host, "delete", state, None)
        assert not out.diagnostics


def test_unreachable_host_fails_only_its_instances(d: Driver, base: dict[str, Any]) -> None:
    vol = d.create("docker_volume", "docker_volume.ok", "node1", {"name": "kplan-ok"})
    resp = d.read(
        "docker_volume",
        ("docker_volume.ok", "node1", vol),
        ("docker_volume.far", "ghost", {"name": "far"}),
    )
    assert resp.states == {"docker_volume.ok": vol}
    (diag,) = resp.diagnostics
    assert diag.code == UNREACHABLE_CODE and "ghost" in diag.summary
    out = d.apply("docker_volume", "docker_volume.far", "ghost", "create", None, {"name": "far"})
    assert [x.code for x in out.diagnostics] == [UNREACHABLE_CODE]
    gone = d.apply("docker_volume", "docker_volume.ok", "node1", "delete", vol, None)
    assert not gone.diagnostics


def test_volume_used_by_a_job(d: Driver, base: dict[str, Any]) -> None:
    vol = d.create(
        "docker_volume",
        "docker_volume.data",
        "node1",
        {"name": "kplan-data", "labels": {"role": "db"}},
    )
    assert vol["mountpoint"].endswith("/kplan-data/_data")
    assert d.read_one("docker_volume", "docker_volume.data", "node1", vol) == vol
    job = {
        "image": base["repo_digest"],
        "command": "echo migrated > /data/version",
        "volumes": ["kplan-data:/data"],
    }
    state = d.create("docker_job", "docker_job.migrate", "node1", job)
    assert state["exit_code"] == 0
    assert d.sh("node1", f"cat {vol['mountpoint']}/version").strip() == "migrated"
    leftover = d.sh("node1", "docker ps -aq --filter label=kplan.address=docker_job.migrate")
    assert leftover.strip() == ""
    # The volume is in use by nothing now: delete removes it.
    out = d.apply("docker_volume", "docker_volume.data", "node1", "delete", vol, None)
    assert not out.diagnostics
    assert d.read_one("docker_volume", "docker_volume.data", "node1", vol) is None


def test_failing_job_reports_exit_code_and_log_tail(d: Driver, base: dict[str, Any]) -> None:
    job = {
        "image": base["repo_digest"],
        "command": "for i in $(seq 1 40); do echo step $i; done; "
        "echo fatal: no database >&2; exit 7",
        "environment": {"TOKEN": Secret("tok-987")},
    }
    planned = d.plan("docker_job", "docker_job.bad", "node1", None, job).planned
    out = d.apply("docker_job", "docker_job.bad", "node1", "create", None, planned)
    (diag,) = out.diagnostics
    assert out.new_state is None
    assert diag.code == "job-failed" and "exited with code 7" in diag.summary
    assert "fatal: no database" in diag.detail and "step 40" in diag.detail
    assert "step 1\n" not in diag.detail  # only the tail
    assert "tok-987" not in str(diag)
    leftover = d.sh("node1", "docker ps -aq --filter label=kplan.address=docker_job.bad")
    assert leftover.strip() == ""


def test_job_timeout(d: Driver, base: dict[str, Any]) -> None:
    job = {"image": base["repo_digest"], "command": "echo waiting; sleep 60", "timeout": 2}
    planned = d.plan("docker_job", "docker_job.slow", "node1", None, job).planned
    started = time.monotonic()
    out = d.apply("docker_job", "docker_job.slow", "node1", "create", None, planned)
    assert time.monotonic() - started < 30
    (diag,) = out.diagnostics
    assert diag.code == "job-timeout" and "waiting" in diag.detail
