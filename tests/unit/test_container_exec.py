"""The SDK's container exec: Docker failures as diagnostics, masking, exec results, retries.

The providers built on it (mariadb, rabbitmq) are tested through the protocol in
their own files; here a made-up service ("acme") shows that the words and codes
come from its :class:`ContainerService`, and a fake clock replaces waiting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import docker.errors
import paramiko
import pytest
import requests.exceptions

from kplan.diagnostics import Diagnostic
from kplan.provider_api import ConfigureRequest, HostInfo
from kplan.provider_sdk import (
    ContainerHosts,
    ContainerService,
    ExecCommand,
    ExecOutput,
    Failed,
    _container_exec,
    docker_errors,
    exec_output,
    mask_secrets,
    run_in_container,
)
from kplan.transport.base import HostUnreachable
from tests.unit.container_exec_fakes import api_error

ACME = ContainerService(
    prefix="acme",
    label="Acme daemon",
    program="acmectl",
    client="acme tools",
    client_missing_code="acme-tools-missing",
    ready_verb="listen",
)


def _failed(exc: BaseException) -> Failed:
    with pytest.raises(Failed) as info, docker_errors(ACME, "h1", "adding x", "box", "acme_x.a"):
        raise exc
    return info.value


# ---- docker_errors -------------------------------------------------------------------


def test_a_missing_container_names_host_container_resource_and_the_service() -> None:
    failed = _failed(api_error(404, "No such container: box"))
    [d] = failed.diagnostics
    assert d.code == "acme-container-missing"
    assert d.summary == 'host h1: there is no container "box" (acme_x.a)'
    assert d.detail == (
        "adding x needs the Acme daemon's container running on h1; set `container` to its name"
    )
    assert failed.status is None


def test_a_stopped_container_is_409_with_dockers_words() -> None:
    failed = _failed(api_error(409, "Container box\n  is not   running"))
    [d] = failed.diagnostics
    assert failed.status == 409  # what run_in_container retries on
    assert d.code == "acme-container-not-running"
    assert d.summary == 'host h1: the container "box" is not running (acme_x.a)'
    assert (
        d.detail
        == "adding x needs the Acme daemon running; Docker says: Container box is not running"
    )


def test_other_api_errors_are_docker_api_with_their_status() -> None:
    failed = _failed(api_error(500, "server error"))
    [d] = failed.diagnostics
    assert (d.code, failed.status) == ("docker-api", 500)
    assert d.summary == "host h1: adding x failed (acme_x.a)"
    assert d.detail == "the Docker API answered 500: server error"
    [d] = _failed(docker.errors.DockerException("no API")).diagnostics
    assert (d.code, d.detail) == ("docker-api", "no API")


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.ConnectionError("connection\nreset"),
        OSError("connection\nreset"),
        EOFError("connection\nreset"),
        paramiko.SSHException("connection\nreset"),
    ],
)
def test_a_dropped_session_is_host_unreachable(exc: Exception) -> None:
    [d] = _failed(exc).diagnostics
    assert d.code == "host-unreachable"
    assert d.summary == "host h1: the Docker API is not reachable (adding x) (acme_x.a)"
    assert d.detail == "connection reset"


def test_transport_errors_keep_their_diagnostics_and_failed_passes_through() -> None:
    [d] = _failed(HostUnreachable("h1", "no route to host")).diagnostics
    assert d.code == "host-unreachable" and "no route to host" in d.summary
    mine = Failed(Diagnostic.error("mine", code="x"))
    assert _failed(mine) is mine


def test_without_a_resource_the_summary_has_no_parenthesis() -> None:
    with pytest.raises(Failed) as info, docker_errors(ACME, "h1", "connecting", "", ""):
        raise api_error(500, "boom")
    assert info.value.diagnostics[0].summary == "host h1: connecting failed"


# ---- mask_secrets --------------------------------------------------------------------


def test_every_occurrence_of_every_secret_is_masked() -> None:
    text = "pw1 then pw2, pw1 again"
    assert mask_secrets(text, ["pw1", "pw2"]) == "(sensitive) then (sensitive), (sensitive) again"


def test_an_empty_secret_masks_nothing() -> None:
    assert mask_secrets("abc", ["", "b"]) == "a(sensitive)c"
    assert mask_secrets("abc", []) == "abc"


# ---- exec_output ---------------------------------------------------------------------


class RecordingAPI:
    """exec_create / exec_start / exec_inspect answering with fixed output."""

    def __init__(self, out: bytes | None, err: bytes | None, code: int | None) -> None:
        self.out, self.err, self.code = out, err, code
        self.created: list[tuple[str, Any, dict[str, Any]]] = []

    def exec_create(self, container: str, cmd: Any, **kw: Any) -> dict[str, str]:
        self.created.append((container, cmd, kw))
        return {"Id": "e1"}

    def exec_start(self, eid: str, demux: bool = False) -> tuple[bytes | None, bytes | None]:
        assert eid == "e1" and demux
        return self.out, self.err

    def exec_inspect(self, eid: str) -> dict[str, Any]:
        self.inspected = getattr(self, "inspected", 0) + 1
        if self.inspected <= getattr(self, "running_for", 0):
            return {"Running": True, "ExitCode": None}
        return {"Running": False, "ExitCode": self.code}


def test_exec_output_runs_the_command_as_given_and_decodes_its_output() -> None:
    api = RecordingAPI(b"out \xff", b"err", 3)
    cmd = ExecCommand(("acmectl", "-q", "list"), "acme", {"SECRET": "s"})
    assert exec_output(api, "box", cmd) == ExecOutput(3, "out \ufffd", "err")
    [(container, argv, kw)] = api.created
    assert (container, argv) == ("box", ["acmectl", "-q", "list"])
    assert kw == {"stdout": True, "stderr": True, "user": "acme", "environment": {"SECRET": "s"}}


def test_exec_output_without_output_is_empty() -> None:
    api = RecordingAPI(None, None, 0)
    assert exec_output(api, "box", ExecCommand(["true"], "root")) == ExecOutput(0, "", "")
    assert api.created[0][2]["environment"] is None


def test_an_exit_not_recorded_yet_is_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    # The output's stream closed, but Docker still says Running with no ExitCode:
    # reading that as 0 would take a failed command for a success.
    monkeypatch.setattr("kplan.provider_sdk._container_exec.EXIT_POLL_SECONDS", 0.0)
    api = RecordingAPI(b"", b"denied", 1)
    api.running_for = 3
    assert exec_output(api, "box", ExecCommand(["false"], "root")) == ExecOutput(1, "", "denied")
    assert api.inspected == 4


def test_an_exit_never_recorded_is_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("kplan.provider_sdk._container_exec.EXIT_POLL_SECONDS", 0.0)
    api = RecordingAPI(b"", b"", None)
    got = exec_output(api, "box", ExecCommand(["true"], "root"))
    assert got.exit_code == -1 and "no exit code" in got.stderr


# ---- run_in_container ----------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    exit_code: int
    stderr: str

    @property
    def not_ready(self) -> bool:
        return "starting" in self.stderr

    @property
    def said(self) -> str:
        return self.stderr.strip()


class Clock:
    """Stands in for the module's ``time``: sleeping moves the clock on, at once."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept = 0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += 1


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(_container_exec, "time", fake)
    return fake


class ScriptedAPI:
    """Each exec takes the next step: an exception to raise or (exit, stderr)."""

    def __init__(self, *steps: Exception | tuple[int, str]) -> None:
        self.steps = list(steps)
        self.execs = 0

    def exec_create(self, container: str, cmd: Any, **kw: Any) -> dict[str, str]:
        self.execs += 1
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        self.current = step
        return {"Id": "e"}

    def exec_start(self, eid: str, demux: bool = False) -> tuple[bytes | None, bytes | None]:
        return b"", self.current[1].encode()

    def exec_inspect(self, eid: str) -> dict[str, Any]:
        return {"ExitCode": self.current[0]}


def _run(
    api: ScriptedAPI, wait: float = 0.0, accept: Callable[[Reply], bool] = lambda r: False
) -> Reply:
    return run_in_container(
        ACME,
        api,
        "h1",
        "box",
        ExecCommand(["acmectl", "add"], "acme"),
        what="adding x",
        who="acme_x.a",
        wait=wait,
        reply=lambda out: Reply(out.exit_code, out.stderr),
        failed=lambda r: Diagnostic.error("acme said no", r.said, code="acme-error"),
        accept=accept,
    )


def _code(api: ScriptedAPI, **kw: Any) -> str:
    with pytest.raises(Failed) as info:
        _run(api, **kw)
    [d] = info.value.diagnostics
    return d.code


def test_a_zero_exit_is_returned(clock: Clock) -> None:
    assert _run(ScriptedAPI((0, "warning only"))) == Reply(0, "warning only")


def test_a_failure_is_the_providers_diagnostic_unless_accepted(clock: Clock) -> None:
    with pytest.raises(Failed) as info:
        _run(ScriptedAPI((2, "already exists\n")))
    assert info.value.diagnostics == [
        Diagnostic.error("acme said no", "already exists", code="acme-error")
    ]
    accepted = _run(ScriptedAPI((2, "already exists")), accept=lambda r: "exists" in r.said)
    assert accepted == Reply(2, "already exists")


def test_no_client_in_the_image_is_the_services_code(clock: Clock) -> None:
    for exit_code in (126, 127):
        with pytest.raises(Failed) as info:
            _run(ScriptedAPI((exit_code, "sh: acmectl: not found")), wait=30, accept=lambda r: True)
        [d] = info.value.diagnostics
        assert d.code == "acme-tools-missing"
        assert d.summary == 'host h1: the container "box" has no acme tools (acme_x.a)'
        assert d.detail == f"adding x runs `acmectl` inside the container (exit {exit_code})"
    assert clock.slept == 0


def test_not_ready_without_wait_fails_at_once_even_if_accepted(clock: Clock) -> None:
    api = ScriptedAPI((1, "node starting"))
    with pytest.raises(Failed) as info:
        _run(api, accept=lambda r: True)
    [d] = info.value.diagnostics
    assert d.code == "acme-not-ready"
    assert d.summary == 'host h1: the Acme daemon in container "box" does not listen (acme_x.a)'
    assert d.detail == "adding x: node starting"
    assert (api.execs, clock.slept) == (1, 0)


def test_not_ready_is_retried_until_ready_or_the_wait_is_over(clock: Clock) -> None:
    api = ScriptedAPI((1, "starting"), (1, "starting"), (0, ""))
    assert _run(api, wait=10) == Reply(0, "")
    assert api.execs == 3 and clock.slept == 2
    api = ScriptedAPI(*[(1, "starting")] * 10)
    with pytest.raises(Failed) as info:
        _run(api, wait=0.5)
    [d] = info.value.diagnostics
    assert d.code == "acme-not-ready"
    assert d.summary.endswith("does not listen (waited 0.5s) (acme_x.a)")
    assert clock.now >= 0.5 and api.execs == 2


def test_a_stopped_container_is_retried_with_wait_and_reported_without(clock: Clock) -> None:
    stopped = api_error(409, "Container box is not running")
    api = ScriptedAPI(stopped, stopped, (0, ""))
    assert _run(api, wait=10) == Reply(0, "")
    assert api.execs == 3
    api = ScriptedAPI(stopped)
    with pytest.raises(Failed) as info:
        _run(api)
    assert info.value.status == 409
    assert [d.code for d in info.value.diagnostics] == ["acme-container-not-running"]


def test_a_missing_container_is_not_retried(clock: Clock) -> None:
    api = ScriptedAPI(api_error(404, "No such container: box"), (0, ""))
    assert _code(api, wait=10) == "acme-container-missing"
    assert api.execs == 1 and clock.slept == 0


# ---- ContainerHosts ------------------------------------------------------------------


class Conn:
    def __init__(self, api: Any) -> None:
        self.api = api

    def docker(self) -> Any:
        if isinstance(self.api, Exception):
            raise self.api
        return self.api


def _hosts(api: Any) -> ContainerHosts:
    hosts = ContainerHosts(ACME)
    hosts.configure(
        ConfigureRequest({"h1": HostInfo("h1", "10.0.0.1", "ssh")}, lambda h: Conn(api))  # type: ignore[arg-type, return-value]
    )
    return hosts


def test_hosts_give_the_hosts_docker_api_and_map_its_failures() -> None:
    api = object()
    assert _hosts(api).api("h1") is api
    with pytest.raises(Failed) as info:
        _hosts(OSError("refused")).api("h1")
    [d] = info.value.diagnostics
    assert d.code == "host-unreachable"
    assert d.summary == "host h1: the Docker API is not reachable (connecting to the Docker API)"


def test_hosts_not_configured_is_a_diagnostic() -> None:
    with pytest.raises(Failed) as info:
        ContainerHosts(ACME).api("h1")
    assert [d.code for d in info.value.diagnostics] == ["provider-not-configured"]
