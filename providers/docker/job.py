"""``docker_job``: a one-shot container (a database migration, a bootstrap) run at apply.

Apply creates the container, starts it, waits for its exit (``timeout``
seconds, default 600), records ``exit_code`` and removes the container. A
non-zero exit is an error with the exit code and the last log lines, and
records nothing: the next apply runs the job again. What the job runs
(``image``, ``command``, ``entrypoint``, ``environment``, ``binds``,
``volumes``, ``network_mode``, ``privileged``) and ``triggers`` (a map of
anything — a change runs the job again) are ``force_new``.

A finished job leaves nothing on the host to look at, so a refresh keeps the
recorded state as it is: a job never drifts. Its delete runs nothing; it only
removes a container a killed kplan may have left behind.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from kplan.diagnostics import Diagnostic
from kplan.provider_api import (
    ApplyResponse,
    Attribute,
    AttrType,
    ReadInstance,
    ReadResponse,
    ResourceSchema,
)
from kplan.provider_sdk import DESTROY_BEFORE_CREATE, attr_error, plain

from . import _run
from ._base import DockerType, Failed, Target
from ._spec import check_binds, check_command, check_name, check_volumes, normalized, spec_hash

__all__ = ["DockerJob"]

DEFAULT_TIMEOUT = 600


def _runs(t: AttrType, description: str, **kw: Any) -> Attribute:
    return Attribute(t, optional=True, force_new=True, description=description, **kw)


SCHEMA = ResourceSchema(
    type_name="docker_job",
    description="A one-shot container run to completion at apply.",
    # Nothing of a finished run is left; a replace clears the name and runs it again.
    replace_order=DESTROY_BEFORE_CREATE,
    attributes={
        "image": Attribute("string", required=True, force_new=True, description="image reference"),
        "command": _runs("any", "a string (run by /bin/sh -c) or a list of arguments"),
        "entrypoint": _runs("any", "a string or a list; replaces the image's entrypoint"),
        "environment": _runs("map", "variables; values may be secrets"),
        "binds": _runs("list", 'host paths, "SRC:DST[:ro]"'),
        "volumes": _runs("list", 'named volumes, "VOLUME:DST[:ro]"'),
        "network_mode": _runs("string", "Docker network mode", default="host"),
        "privileged": _runs("bool", "run privileged", default=False),
        "triggers": _runs("map", "any change runs the job again"),
        "name": Attribute(
            "string",
            optional=True,
            description="the container's name while it runs (default: from the address)",
        ),
        "timeout": Attribute(
            "number", optional=True, default=DEFAULT_TIMEOUT, description="seconds to wait"
        ),
        "exit_code": Attribute("number", computed=True, description="the job's exit code"),
    },
)

_SPEC_KEYS = (
    "image",
    "command",
    "entrypoint",
    "environment",
    "binds",
    "volumes",
    "network_mode",
    "privileged",
)


def job_name(address: str) -> str:
    return "kplan-job-" + hashlib.sha256(address.encode()).hexdigest()[:12]


class DockerJob(DockerType):
    schema = SCHEMA

    def check(self, config: Mapping[str, Any]) -> list[Diagnostic]:
        diags = [
            check_name("name", config.get("name")),
            check_command("command", config.get("command")),
            check_command("entrypoint", config.get("entrypoint")),
            check_binds(config.get("binds")),
            check_volumes(config.get("volumes")),
        ]
        timeout = plain(config.get("timeout"))
        if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout <= 0:
            diags.append(attr_error("timeout", "timeout must be more than 0 seconds"))
        return [d for d in diags if d is not None]

    def read(self, instances: Sequence[ReadInstance]) -> ReadResponse:
        """Nothing to refresh: a finished job leaves nothing behind."""
        return ReadResponse(states={i.address: dict(i.state) for i in instances})

    def read_host(
        self, host: str, api: Any, instances: Sequence[ReadInstance]
    ) -> tuple[dict[str, Mapping[str, Any] | None], list[Diagnostic]]:  # pragma: no cover
        return {i.address: dict(i.state) for i in instances}, []

    def create_at(self, t: Target, planned: Mapping[str, Any]) -> ApplyResponse:
        name = str(plain(planned.get("name")) or job_name(t.address))
        spec = normalized(
            {
                **{k: planned.get(k) for k in _SPEC_KEYS},
                "name": name,
                "restart_policy": "no",
            }
        )
        digest = str(plain(spec_hash({**planned, "name": name}, (*_SPEC_KEYS, "name"))))
        _run.clear_name(t, name, 10)
        cid = _run.create_container(t, spec, digest)
        try:
            code = self._run_to_end(t, cid, name, float(plain(planned.get("timeout")) or 600))
        finally:
            _remove_quietly(t, cid, name)
        return ApplyResponse({**planned, "exit_code": code})

    def update_at(
        self, t: Target, prior: Mapping[str, Any], planned: Mapping[str, Any]
    ) -> ApplyResponse:
        """Only timeout or name changed: nothing to run again."""
        return ApplyResponse({**planned, "exit_code": prior.get("exit_code")})

    def replace_at(
        self, t: Target, prior: Mapping[str, Any], planned: Mapping[str, Any]
    ) -> ApplyResponse:
        return self.create_at(t, planned)

    def delete_at(self, t: Target, prior: Mapping[str, Any]) -> ApplyResponse:
        name = str(plain(prior.get("name")) or job_name(t.address))
        _run.clear_name(t, name, 10)
        return ApplyResponse(None)

    @staticmethod
    def _run_to_end(t: Target, cid: str, name: str, timeout: float) -> int:
        _run.start(t, cid, name)
        try:
            with t.guard(f'waiting for job container "{name}"'):
                result = _wait(t, cid, timeout)
        except _TimedOut:
            raise Failed(
                Diagnostic.error(
                    f"host {t.host}: job {name} did not finish within {timeout:g} s",
                    f"it is stopped and removed; last {_run.LOG_TAIL} log lines:\n"
                    + _run.log_tail(t, cid),
                    code="job-timeout",
                )
            ) from None
        code = int(result.get("StatusCode", -1))
        if code != 0:
            error = (result.get("Error") or {}).get("Message")
            detail = f"last {_run.LOG_TAIL} log lines:\n{_run.log_tail(t, cid)}"
            if error:
                detail = f"{error}\n{detail}"
            raise Failed(
                Diagnostic.error(
                    f"host {t.host}: job {name} exited with code {code}", detail, code="job-failed"
                )
            )
        return code


class _TimedOut(Exception):
    """The job outlived its timeout (not a transport failure: guard lets it through)."""


def _wait(t: Target, cid: str, timeout: float) -> Mapping[str, Any]:
    import requests.exceptions

    try:
        result: Mapping[str, Any] = t.api.wait(cid, timeout=timeout)
    except requests.exceptions.Timeout:
        raise _TimedOut() from None
    except requests.exceptions.ConnectionError as exc:
        if "timed out" not in str(exc).lower():
            raise
        raise _TimedOut() from None
    return result


def _remove_quietly(t: Target, cid: str, name: str) -> None:
    try:
        with t.guard(f'removing job container "{name}"'):
            t.api.remove_container(cid, force=True)
    except Failed:
        pass
