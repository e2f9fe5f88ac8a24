"""Running containers: create from a normalized spec, wait until healthy, logs, remove.

Shared by ``docker_container`` (long-running, waits for "healthy") and
``docker_job`` (one-shot, waits for its exit). Every call goes through
:func:`~kplan_providers.docker._base.guard`, so a failure is a :class:`Failed` that
names the container and the host.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from kplan.diagnostics import Diagnostic, Severity
from kplan.provider_sdk import waiting

from ._base import ADDRESS_LABEL, MANAGED_LABEL, SPEC_LABEL, STAGED_LABEL, Failed, Target
from ._spec import api_binds, healthcheck_arg, restart_policy_arg, ulimits_arg

__all__ = [
    "LOG_TAIL",
    "clear_name",
    "create_container",
    "find_by_name",
    "find_by_names",
    "is_staged",
    "log_tail",
    "refuse_foreign",
    "remove_container",
    "remove_ours",
    "remove_quietly",
    "rename",
    "staged_name",
    "wait_healthy",
]

LOG_TAIL = 20
# How many times LOG_TAIL merged log lines are read to find LOG_TAIL of each stream.
LOG_WINDOW = 10
POLL_SECONDS = 0.5
# The first looks come sooner, doubling up to POLL_SECONDS: a container that is
# up (or a health test that passes) within a moment of its start is seen then.
FIRST_POLL_SECONDS = 0.05
# While kplan waits for a container to become healthy it runs the health test
# itself this often: Docker's first check comes only after a whole interval,
# so a long steady-state interval (Kolla's 30 s, light on the host) would
# otherwise be the least time every start or rolling restart takes. Docker 25's
# start_interval does the same; the lab's Docker (20.10) has none.
PROBE_SECONDS = 1.0
# Only for intervals longer than this: with a short one Docker's verdict comes
# soon enough, and `docker ps` says healthy as soon as kplan does.
PROBE_ABOVE_INTERVAL = 5.0
# Without a healthcheck a container counts as up once it has run this long unrestarted.
STABLE_SECONDS = 2.0
# A replacement is created under NAME + this, next to the old container, then renamed.
STAGED_SUFFIX = ".kplan-new"


def staged_name(name: str) -> str:
    """The temporary name a replacement is created under while the old container runs."""
    return f"{name}{STAGED_SUFFIX}"


def is_staged(container: Mapping[str, Any]) -> bool:
    """True for a replacement still under its temporary name (not yet renamed into place).

    A refresh leaves it out: it is the address's container only once renamed.
    """
    staged = (container.get("Labels") or {}).get(STAGED_LABEL)
    return bool(staged) and f"/{staged}" in (container.get("Names") or [])


def find_by_names(t: Target, *names: str) -> dict[str, dict[str, Any]]:
    """The containers (any state) called one of ``names``, by name; one list call."""
    wanted = list(dict.fromkeys(names))
    # Docker matches the name filter as a regular expression against "/NAME".
    pattern = "^/(" + "|".join(n.replace(".", r"\.") for n in wanted) + ")$"
    what = ", ".join(f'"{n}"' for n in wanted)
    with t.guard(f"looking for container {what}"):
        found = t.api.containers(all=True, filters={"name": pattern})
    out: dict[str, dict[str, Any]] = {}
    for c in found:
        for n in wanted:
            if f"/{n}" in (c.get("Names") or []):
                out[n] = dict(c)
    return out


def find_by_name(t: Target, name: str) -> dict[str, Any] | None:
    """The container called ``name`` (any state), or None; one list call."""
    return find_by_names(t, name).get(name)


def _ours(t: Target, container: Mapping[str, Any]) -> bool:
    return (container.get("Labels") or {}).get(ADDRESS_LABEL) == t.address


def refuse_foreign(t: Target, found: Mapping[str, Mapping[str, Any]], names: Iterable[str]) -> None:
    """Raise ``container-exists`` when one of ``names`` is taken by another's container."""
    for name in names:
        c = found.get(name)
        if c is None or _ours(t, c):
            continue
        owner = (c.get("Labels") or {}).get(ADDRESS_LABEL)
        why = (
            f"kplan manages it as {owner}"
            if owner
            else "kplan does not manage it (it has no kplan.address label)"
        )
        raise Failed(
            Diagnostic(
                Severity.ERROR,
                f'host {t.host}: a container named "{name}" already exists',
                f"{why}; remove it (docker rm -f {name}) or choose another name",
                None,
                "container-exists",
                ("name",),
            )
        )


def remove_ours(
    t: Target,
    found: Mapping[str, Mapping[str, Any]],
    names: Iterable[str],
    stop_timeout: int,
    *,
    keep: str | None = None,
) -> None:
    """Remove the containers of ``names`` that kplan made for this address (but id ``keep``)."""
    for name in names:
        c = found.get(name)
        if c is not None and _ours(t, c) and c.get("Id") != keep:
            remove_container(t, str(c["Id"]), name, stop_timeout)


def clear_name(t: Target, name: str, stop_timeout: int) -> None:
    """Remove a container called ``name`` that kplan left for this address; refuse others."""
    found = find_by_names(t, name)
    refuse_foreign(t, found, [name])
    remove_ours(t, found, [name], stop_timeout)


def rename(t: Target, cid: str, old: str, new: str) -> None:
    with t.guard(f'renaming container "{old}" to "{new}"'):
        t.api.rename(cid, new)


def create_container(
    t: Target,
    spec: Mapping[str, Any],
    spec_hash: str,
    stop_timeout: int | None = None,
    *,
    staged: str | None = None,
) -> str:
    """Create (not start) a container from a normalized spec; its id.

    ``staged``: create it under this temporary name instead of the spec's, with
    the label :data:`~kplan_providers.docker._base.STAGED_LABEL` naming it, so that a
    refresh and the next apply know it for an unfinished replacement.
    """
    name = spec["name"]
    labels = {
        **spec["labels"],
        MANAGED_LABEL: "true",
        ADDRESS_LABEL: t.address,
        SPEC_LABEL: spec_hash,
    }
    if staged is not None:
        labels[STAGED_LABEL] = staged
    with t.guard(f'creating container "{name}"'):
        host_config = t.api.create_host_config(
            binds=api_binds(spec) or None,
            network_mode=spec["network_mode"],
            privileged=spec["privileged"],
            cap_add=spec["cap_add"] or None,
            cap_drop=spec["cap_drop"] or None,
            ulimits=ulimits_arg(spec["ulimits"]) or None,
            restart_policy=restart_policy_arg(spec["restart_policy"]),
        )
    try:
        with t.guard(f'creating container "{name}" from image {spec["image"]}', "image"):
            created = t.api.create_container(
                spec["image"],
                command=spec["command"],
                entrypoint=spec["entrypoint"],
                environment=spec["environment"] or None,
                name=staged or name,
                labels=labels,
                host_config=host_config,
                healthcheck=healthcheck_arg(spec["healthcheck"]),
                stop_timeout=stop_timeout,
                detach=True,
            )
    except Failed as exc:
        raise Failed(
            *(_explain_missing_image(d, spec["image"], t.host) for d in exc.diagnostics)
        ) from None
    return str(created["Id"])


def _explain_missing_image(d: Diagnostic, image: str, host: str) -> Diagnostic:
    if "No such image" not in d.detail:
        return d
    hint = (
        f"{d.detail}\nthe image {image} is not on host {host}: pull it with a docker_image "
        "resource and refer to it (image: ${docker_image.NAME.repo_digest})"
    )
    return Diagnostic(d.severity, d.summary, hint, d.pos, d.code, d.attribute)


def start(t: Target, cid: str, name: str) -> None:
    with t.guard(f'starting container "{name}"'):
        t.api.start(cid)


def log_tail(t: Target, cid: str, lines: int = LOG_TAIL) -> str:
    """The container's last log lines, stdout then stderr, or a note why there are none.

    The streams are read apart, from a wider window: dockerd copies each stream in
    its own goroutine, so a job's last stderr line can be logged before its last
    forty stdout lines (measured on Docker 20.10), and dockerd applies ``tail`` to
    the merged log before it filters by stream.
    """
    parts: list[str] = []
    for label, out, err in (("stdout", True, False), ("stderr", False, True)):
        try:
            with t.guard("reading logs"):
                raw = t.api.logs(cid, stdout=out, stderr=err, tail=lines * LOG_WINDOW)
        except Failed as exc:
            return f"(logs unavailable: {exc.diagnostics[0].detail or exc.diagnostics[0].summary})"
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        kept = text.rstrip().splitlines()[-lines:]
        if kept:
            parts.append(f"{label}:\n" + "\n".join(kept))
    return "\n".join(parts) or "(no output)"


def _health_output(state: Mapping[str, Any]) -> str:
    health = state.get("Health") or {}
    log = health.get("Log") or []
    out = []
    for entry in log[-3:]:
        text = " ".join(str(entry.get("Output", "")).split())
        out.append(f"  exit {entry.get('ExitCode')}: {text[:300]}")
    return "\n".join(out) or "  (no health check has run yet)"


def probe_command(health: Mapping[str, Any] | None) -> list[str] | None:
    """The argv that runs a normalized healthcheck's test (None: no test to run)."""
    test = list((health or {}).get("test") or [])
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(test[1:])]
    return test[1:] if test[0] == "CMD" else test


class _Probe:
    """The health test run by kplan inside the container, one run at a time.

    A run is started detached and looked at on later calls, so a test that
    hangs never blocks the wait (its deadline still holds); it is given up
    after ``limit`` seconds and another one started.
    """

    def __init__(self, t: Target, cid: str, argv: list[str], limit: float) -> None:
        self.t, self.cid, self.argv, self.limit = t, cid, argv, limit
        self.running: tuple[str, float] | None = None
        self.next_start = 0.0
        self.runs = 0
        self.last_exit: int | None = None  # None: no run has ended yet

    def said(self) -> str:
        """What kplan's own runs found, for a failure's detail."""
        if self.last_exit is None:
            return f"kplan's runs of the health test: {self.runs}, none finished"
        return f"kplan's runs of the health test: {self.runs}, the last exited {self.last_exit}"

    def passed(self, now: float) -> bool:
        """True once a run of the test exited 0; errors only mean "not yet"."""
        try:
            with self.t.guard("running the container's health test"):
                return self._step(now)
        except Failed:  # a container (re)starting refuses execs; the inspect loop decides
            self.running = None
            self.next_start = now + PROBE_SECONDS
            return False

    def _step(self, now: float) -> bool:
        if self.running is not None:
            exec_id, started = self.running
            info = self.t.api.exec_inspect(exec_id)
            if not info.get("Running") and info.get("ExitCode") is not None:
                self.running = None
                self.last_exit = int(info["ExitCode"])
                if self.last_exit == 0:
                    return True
            elif now - started > self.limit:
                self.running = None
        if self.running is None and now >= self.next_start:
            created = self.t.api.exec_create(self.cid, self.argv, stdout=False, stderr=False)
            self.t.api.exec_start(created["Id"], detach=True)
            self.runs += 1
            self.running = (created["Id"], now)
            self.next_start = now + PROBE_SECONDS
        return False


def wait_healthy(
    t: Target,
    cid: str,
    name: str,
    timeout: float,
    has_healthcheck: bool,
    probe: list[str] | None = None,
    probe_limit: float = 30.0,
) -> dict[str, Any]:
    """Block until the container is healthy (or, without a healthcheck, stably running).

    With ``probe`` (the health test's argv) kplan also runs the test itself
    while it waits, and a run that exits 0 counts as healthy: see PROBE_SECONDS.
    Fails at once when the container exits, and at the timeout with the last
    log lines and the health checks' output. Returns the last inspect.

    The change holds no -parallelism place while it waits: the container is
    created and started; what is left is watching it (Docker API calls on
    the host's few shared channels).
    """
    with waiting():
        return _wait_healthy(t, cid, name, timeout, has_healthcheck, probe, probe_limit)


def _wait_healthy(
    t: Target,
    cid: str,
    name: str,
    timeout: float,
    has_healthcheck: bool,
    probe: list[str] | None,
    probe_limit: float,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    stable_since: tuple[str, int, float] | None = None
    prober = _Probe(t, cid, probe, probe_limit) if has_healthcheck and probe else None
    pause = FIRST_POLL_SECONDS
    while True:
        with t.guard(f'inspecting container "{name}"'):
            info = t.api.inspect_container(cid)
        state = info.get("State") or {}
        status = state.get("Status")
        now = time.monotonic()
        if status in ("exited", "dead"):
            raise _failure(
                t, cid, f'container "{name}" exited with code {state.get("ExitCode")}', state
            )
        if has_healthcheck:
            if (state.get("Health") or {}).get("Status") == "healthy":
                return dict(info)
            if prober is not None and status == "running" and prober.passed(now):
                return dict(info)
        elif status == "running":
            mark = (str(state.get("StartedAt")), int(info.get("RestartCount") or 0))
            if stable_since is None or stable_since[:2] != mark:
                stable_since = (*mark, now)
            elif now - stable_since[2] >= min(STABLE_SECONDS, timeout):
                return dict(info)
        else:
            stable_since = None
        if now >= deadline:
            want = "healthy" if has_healthcheck else "running"
            health = (state.get("Health") or {}).get("Status", status)
            raise _failure(
                t,
                cid,
                f'container "{name}" was not {want} after {timeout:g} s (it is {health})',
                state,
                prober.said() if prober is not None and prober.runs else None,
            )
        time.sleep(min(pause, max(0.0, deadline - now)))
        pause = min(pause * 2, POLL_SECONDS)


def _failure(
    t: Target, cid: str, summary: str, state: Mapping[str, Any], probed: str | None = None
) -> Failed:
    detail = [f"last {LOG_TAIL} log lines:", log_tail(t, cid)]
    if state.get("Health"):
        detail += ["Docker's health checks:", _health_output(state)]
    if probed:
        detail.append(probed)
    detail.append("the container is left in place to inspect; the next apply replaces it")
    return Failed(
        Diagnostic.error(f"host {t.host}: {summary}", "\n".join(detail), code="container-unhealthy")
    )


def remove_quietly(t: Target, cid: str, name: str) -> None:
    """Remove a container, ignoring any failure (cleanup on a path that already failed)."""
    try:
        with t.guard(f'removing container "{name}"'):
            t.api.remove_container(cid, v=False, force=True)
    except Failed:
        pass


def remove_container(t: Target, cid: str, name: str, stop_timeout: int) -> None:
    """Stop (gracefully, up to ``stop_timeout``) and remove; a container already gone is fine."""
    try:
        with t.guard(f'stopping container "{name}"'):
            t.api.stop(cid, timeout=stop_timeout)
        with t.guard(f'removing container "{name}"'):
            t.api.remove_container(cid, v=False, force=True)
    except Failed as exc:
        if exc.status != 404:  # 404: gone already, nothing left to do
            raise
