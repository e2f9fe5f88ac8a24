"""The docker provider's health gate holds no -parallelism place while it watches."""

from __future__ import annotations

from typing import Any

import pytest

from kplan.waiting import hold
from kplan_providers.docker import _run
from kplan_providers.docker._base import Target


class Places:
    """Records when the change gives its place up and takes it back."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def give_up(self) -> None:
        self.log.append("give up")

    def take_back(self) -> None:
        self.log.append("take back")


class Api:
    """A container that is running from the first inspect on."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def inspect_container(self, cid: str) -> dict[str, Any]:
        self.log.append("inspect")
        return {"State": {"Status": "running", "StartedAt": "t0"}, "RestartCount": 0}


def test_the_gate_watches_without_a_place(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_run, "STABLE_SECONDS", 0.02)
    monkeypatch.setattr(_run, "POLL_SECONDS", 0.01)
    log: list[str] = []
    t = Target("docker_container.c", "h1", Api(log), None)  # type: ignore[arg-type]
    hold(Places(log))
    try:
        info = _run.wait_healthy(t, "cid", "c", timeout=5.0, has_healthcheck=False)
    finally:
        hold(None)
    assert info["State"]["Status"] == "running"
    assert log[0] == "give up" and log[-1] == "take back"
    assert log.count("inspect") >= 2 and log.count("give up") == 1


def test_the_place_comes_back_when_the_container_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[str] = []

    class Exited(Api):
        def inspect_container(self, cid: str) -> dict[str, Any]:
            log.append("inspect")
            return {"State": {"Status": "exited", "ExitCode": 3}}

        def logs(self, cid: str, **kw: Any) -> bytes:
            return b"boom\n"

    t = Target("docker_container.c", "h1", Exited(log), None)  # type: ignore[arg-type]
    hold(Places(log))
    try:
        with pytest.raises(_run.Failed, match="exited with code 3"):
            _run.wait_healthy(t, "cid", "c", timeout=5.0, has_healthcheck=False)
    finally:
        hold(None)
    assert log == ["give up", "inspect", "take back"]


class Probed(Api):
    """A running container with a health check whose test passes at its first run."""

    def inspect_container(self, cid: str) -> dict[str, Any]:
        self.log.append("inspect")
        state = {"Status": "running", "StartedAt": "t0", "Health": {"Status": "starting"}}
        return {"State": state, "RestartCount": 0}

    def exec_create(self, cid: str, argv: list[str], **kw: Any) -> dict[str, str]:
        self.log.append("exec " + " ".join(argv))
        return {"Id": "e1"}

    def exec_start(self, exec_id: str, detach: bool = False) -> None:
        assert detach

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        return {"Running": False, "ExitCode": 0}


def test_a_health_test_that_passes_at_once_is_seen_at_the_first_short_look(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pauses: list[float] = []
    monkeypatch.setattr(_run.time, "sleep", pauses.append)
    log: list[str] = []
    t = Target("docker_container.c", "h1", Probed(log), None)  # type: ignore[arg-type]
    info = _run.wait_healthy(
        t, "cid", "c", timeout=60.0, has_healthcheck=True, probe=["test", "-r", "/etc/c.conf"]
    )
    assert info["State"]["Status"] == "running"
    assert log == ["inspect", "exec test -r /etc/c.conf", "inspect"]
    # Not a whole POLL_SECONDS: the first look comes after FIRST_POLL_SECONDS.
    assert pauses == [_run.FIRST_POLL_SECONDS]


def test_the_looks_double_up_to_the_poll_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[float] = []
    clock = [0.0]

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr(_run.time, "sleep", sleep)
    monkeypatch.setattr(_run.time, "monotonic", lambda: clock[0])
    t = Target("docker_container.c", "h1", Api([]), None)  # type: ignore[arg-type]
    _run.wait_healthy(t, "cid", "c", timeout=60.0, has_healthcheck=False)
    assert pauses[:5] == [0.05, 0.1, 0.2, 0.4, 0.5]
    assert set(pauses[4:]) == {_run.POLL_SECONDS}
    assert clock[0] >= _run.STABLE_SECONDS  # stable means stable: the looks do not shorten it
