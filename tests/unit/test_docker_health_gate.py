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
