"""Fakes for providers that reach a service by ``docker exec`` (mariadb, rabbitmq).

:class:`FakeExecAPI` is the exec part of docker.APIClient with containers that
are running, stopped or starting; a subclass says what an exec in a running (or
starting) container answers. :class:`FakeConn` hands it out as a host's Docker
API, and :class:`ProviderDriver` drives a provider configured with one such host
through the provider protocol.
"""

from __future__ import annotations

import abc
import itertools
from collections import Counter
from collections.abc import Mapping
from typing import Any

import docker.errors
import requests

from kplan.provider_api import (
    ApplyRequest,
    ConfigureRequest,
    HostInfo,
    PlanRequest,
    Provider,
    ReadInstance,
    ReadRequest,
)
from kplan.transport.base import CommandResult, Connection


def api_error(status: int, explanation: str) -> docker.errors.APIError:
    """What docker raises for an HTTP ``status`` (NotFound for 404)."""
    resp = requests.Response()
    resp.status_code = status
    cls = docker.errors.NotFound if status == 404 else docker.errors.APIError
    return cls(f"{status} error", response=resp, explanation=explanation)


class FakeExecAPI(abc.ABC):
    """exec_create / exec_start / exec_inspect of docker.APIClient; nothing else.

    A container missing from :attr:`containers` is a 404 at exec_create, an "exited"
    one a 409; a "starting" one becomes "running" after :attr:`started_after` more
    execs (never, while it is None). :meth:`answer` runs an exec.
    """

    ids = itertools.count(1)

    def __init__(self, container: str) -> None:
        self.calls: Counter[str] = Counter()
        #: container → "running" | "exited" | "starting" | what a subclass adds
        self.containers: dict[str, str] = {container: "running"}
        self.execs: dict[str, dict[str, Any]] = {}
        self.started_after: int | None = None  # "starting" becomes "running" after N execs

    def check_exec(self, kw: Mapping[str, Any]) -> None:  # noqa: B027 (optional hook)
        """Assertions on an exec_create's keywords (user, environment); none by default."""

    @abc.abstractmethod
    def answer(self, ex: dict[str, Any], state: str) -> tuple[bytes | None, bytes | None]:
        """Run exec ``ex`` in a container in ``state``: set ``ex["exit"]``, return its output."""

    def exec_create(self, container: str, cmd: list[str], **kw: Any) -> dict[str, str]:
        self.calls["exec_create"] += 1
        state = self.containers.get(container)
        if state is None:
            raise api_error(404, f"No such container: {container}")
        if state == "exited":
            raise api_error(409, f"Container {container} is not running")
        self.check_exec(kw)
        eid = f"e{next(self.ids)}"
        self.execs[eid] = {"container": container, "cmd": cmd, **kw}
        return {"Id": eid}

    def exec_start(self, eid: str, demux: bool = False) -> tuple[bytes | None, bytes | None]:
        self.calls["exec_start"] += 1
        ex = self.execs[eid]
        state = self.containers[ex["container"]]
        if state == "starting" and self.started_after is not None:
            self.started_after -= 1
            if self.started_after < 0:
                state = self.containers[ex["container"]] = "running"
        return self.answer(ex, state)

    def exec_inspect(self, eid: str) -> dict[str, Any]:
        self.calls["exec_inspect"] += 1
        return {"ExitCode": self.execs[eid]["exit"], "Running": False}

    def exec_count(self) -> int:
        return self.calls["exec_create"]


class FakeConn(Connection):
    """A host's connection whose only use is its Docker API."""

    def __init__(self, host: str, api: FakeExecAPI, provider: str) -> None:
        self.host = host
        self.api = api
        self.provider = provider

    def run(self, command: Any, **kw: Any) -> CommandResult:
        raise AssertionError(f"the {self.provider} provider runs no shell command on the host")

    def read_file(self, path: str) -> bytes | None:
        raise AssertionError("no file access")

    def write_file(self, path: str, data: bytes, **kw: Any) -> None:
        raise AssertionError("no file access")

    def docker(self) -> FakeExecAPI:
        return self.api

    def close(self) -> None:
        pass


class ProviderDriver:
    """A provider, configured with one host (``host``) whose Docker API is ``api``."""

    def __init__(self, provider: Provider, name: str, api: FakeExecAPI, host: str) -> None:
        self.p = provider
        self.name = name
        self.api = api
        self.host = host
        self.p.configure(ConfigureRequest({host: HostInfo(host, "10.0.0.1", "ssh")}, self.conn))

    def conn(self, host: str) -> FakeConn:
        return FakeConn(host, self.api, self.name)

    def plan(
        self, type_name: str, config: Mapping[str, Any], prior: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        resp = self.p.plan(PlanRequest(type_name, f"{type_name}.x", self.host, prior, config))
        assert not resp.diagnostics
        return dict(resp.planned)

    def apply(
        self,
        type_name: str,
        action: str,
        planned: Mapping[str, Any] | None,
        prior: Mapping[str, Any] | None = None,
        address: str = "",
    ) -> Any:
        req = ApplyRequest(
            type_name,
            address or f"{type_name}.x",
            self.host,
            action,  # type: ignore[arg-type]
            prior,
            planned,
        )
        return self.p.apply(req)

    def ok(self, type_name: str, action: str, planned: Any, prior: Any = None) -> Any:
        resp = self.apply(type_name, action, planned, prior)
        assert not resp.diagnostics, [str(d) for d in resp.diagnostics]
        return resp.new_state

    def read(
        self,
        type_name: str,
        states: Mapping[str, Mapping[str, Any]],
        snapshot: str | None = None,
    ) -> Any:
        instances = [ReadInstance(a, self.host, s) for a, s in states.items()]
        return self.p.read(ReadRequest(type_name, instances, snapshot))

    def read_one(self, type_name: str, state: Mapping[str, Any]) -> Any:
        resp = self.read(type_name, {"r.x": state})
        assert not resp.diagnostics, [str(d) for d in resp.diagnostics]
        return resp.states["r.x"]
