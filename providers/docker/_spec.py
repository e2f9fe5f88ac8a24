"""A container's spec: checks of its attributes, the normalized form, its hash, API arguments.

The normalized spec is plain JSON (Secrets revealed, defaults filled in, sets
sorted, durations in nanoseconds); its sha256 is the ``kplan.spec`` label and
the ``spec_hash`` attribute. Everything Docker fixes at create time is in it;
what kplan does around the container (``running``, ``health_timeout``,
``stop_timeout``) is not. The hash is never computed from a value that
contains UNKNOWN.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from kplan.diagnostics import Diagnostic, Severity
from kplan.provider_sdk import DurationError, attr_error, is_known, parse_duration, plain
from kplan.values import UNKNOWN, Secret, contains_secret, contains_unknown

__all__ = [
    "NAME_RE",
    "api_binds",
    "check_binds",
    "check_command",
    "check_healthcheck",
    "check_labels",
    "check_name",
    "check_restart_policy",
    "check_ulimits",
    "check_volumes",
    "healthcheck_arg",
    "normalized_health",
    "restart_policy_arg",
    "spec_hash",
    "ulimits_arg",
]

# Docker's own rule for container and volume names.
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_BIND_MODES = {"ro", "rw", "z", "Z", "shared", "rshared", "slave", "rslave", "private", "rprivate"}
_RESTART_RE = re.compile(r"^(no|always|unless-stopped|on-failure(:[0-9]+)?)$")
_HEALTH_KEYS = ("test", "interval", "timeout", "retries", "start_period")
_HEALTH_DURATIONS = ("interval", "timeout", "start_period")
_DURATION_HELP = 'a number of seconds or a duration such as "30s", "1m30s", "500ms"'
_NS = NS = 1_000_000_000


# ---- checks (UNKNOWN and mistyped values pass: the generic check speaks) ---------------


def check_name(attribute: str, value: Any) -> Diagnostic | None:
    value = plain(value)
    if isinstance(value, str) and not NAME_RE.match(value):
        return attr_error(
            attribute,
            f'{attribute} "{value}" is not a valid Docker name',
            "letters, digits, _ . - ; starting with a letter or digit",
            "invalid-name",
        )
    return None


def _split_mount(entry: str) -> tuple[str, str, list[str]] | None:
    parts = entry.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        return None
    modes = parts[2].split(",") if len(parts) == 3 else []
    return parts[0], parts[1], modes


def _check_mounts(attribute: str, value: Any, host_path: bool) -> Diagnostic | None:
    value = plain(value)
    if not isinstance(value, list):
        return None
    what = "SRC:DST[:ro]" if host_path else "VOLUME:DST[:ro]"
    for i, entry in enumerate(value):
        if entry is UNKNOWN or not isinstance(entry, str):
            continue
        parts = _split_mount(entry)
        problem = ""
        if parts is None:
            problem = f"expected {what}"
        else:
            src, dst, modes = parts
            if host_path and not src.startswith("/"):
                problem = "the source must be an absolute path on the host"
                if NAME_RE.match(src):
                    problem += f' (for the named volume "{src}" use volumes)'
            elif not host_path and not NAME_RE.match(src):
                problem = "the source must be a volume name (for a host path use binds)"
            elif not dst.startswith("/"):
                problem = "the destination must be an absolute path in the container"
            elif any(m not in _BIND_MODES for m in modes):
                problem = "options are ro or rw (and SELinux or propagation flags)"
        if problem:
            return Diagnostic(
                Severity.ERROR,
                f'{attribute}[{i}] "{entry}": {problem}',
                "",
                None,
                "invalid-mount",
                (attribute, i),
            )
    return None


def check_binds(value: Any) -> Diagnostic | None:
    return _check_mounts("binds", value, host_path=True)


def check_volumes(value: Any) -> Diagnostic | None:
    return _check_mounts("volumes", value, host_path=False)


def check_command(attribute: str, value: Any) -> Diagnostic | None:
    value = plain(value)
    if value is None or value is UNKNOWN or isinstance(value, str):
        return None
    if isinstance(value, list) and all(isinstance(v, str) or v is UNKNOWN for v in value):
        return None
    return attr_error(
        attribute,
        f"{attribute} must be a string (run by /bin/sh -c) or a list of strings",
        f"got {value!r}",
        "attribute-type",
    )


def check_labels(value: Any) -> Diagnostic | None:
    value = plain(value)
    if not isinstance(value, dict):
        return None
    for k in sorted(value):
        if str(k).startswith("kplan."):
            return attr_error(
                "labels",
                f'label "{k}" is reserved: kplan sets the labels kplan.*',
                code="reserved-label",
            )
    return None


def check_restart_policy(value: Any) -> Diagnostic | None:
    value = plain(value)
    if isinstance(value, str) and not _RESTART_RE.match(value):
        return attr_error(
            "restart_policy",
            f'restart_policy "{value}" is not one Docker knows',
            'expected "no", "always", "unless-stopped", "on-failure" or "on-failure:N"',
            "invalid-restart-policy",
        )
    return None


def _seconds(value: Any) -> float:
    """Seconds in a number or a duration string; raises DurationError."""
    if isinstance(value, bool):
        raise DurationError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        if value < 0:
            raise DurationError(f"{value!r} is negative")
        return float(value)
    if isinstance(value, str):
        return parse_duration(value)
    raise DurationError(f"{value!r} is not a duration")


def check_healthcheck(value: Any) -> Diagnostic | None:
    value = plain(value)
    if not isinstance(value, dict):
        return None
    unknown = sorted(set(value) - set(_HEALTH_KEYS))
    if unknown:
        return attr_error(
            "healthcheck",
            f"healthcheck has no key {unknown[0]!r}",
            "expected: " + ", ".join(_HEALTH_KEYS),
            "invalid-healthcheck",
        )
    if "test" not in value:
        return attr_error(
            "healthcheck",
            "healthcheck needs a test",
            'a shell command ("test -e /tmp/ok") or a list (["CMD", "pg_isready"])',
            "invalid-healthcheck",
        )
    problem = check_command("healthcheck", value["test"])
    if problem is not None:
        return problem
    for key in _HEALTH_DURATIONS:
        if key in value and is_known(value[key]):
            try:
                _seconds(value[key])
            except DurationError as exc:
                return attr_error(
                    "healthcheck",
                    f"healthcheck.{key}: {exc}",
                    f"expected {_DURATION_HELP}",
                    "invalid-duration",
                )
    retries = value.get("retries")
    if (
        retries is not None
        and is_known(retries)
        and (not isinstance(retries, int) or isinstance(retries, bool) or retries < 0)
    ):
        return attr_error(
            "healthcheck", "healthcheck.retries must be a whole number", code="invalid-healthcheck"
        )
    return None


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _ulimit(value: Any) -> tuple[int, int]:
    """(soft, hard) from 1024, "1024:2048" or {soft: 1024, hard: 2048}; raises ValueError."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        return value, value
    if isinstance(value, str):
        soft, _, hard = value.partition(":")
        return int(soft), int(hard or soft)
    if isinstance(value, dict) and set(value) <= {"soft", "hard"} and "soft" in value:
        soft_v: Any = value["soft"]
        hard_v: Any = value.get("hard", soft_v)
        if _whole(soft_v) and _whole(hard_v):
            return soft_v, hard_v
    raise ValueError(value)


def check_ulimits(value: Any) -> Diagnostic | None:
    value = plain(value)
    if not isinstance(value, dict):
        return None
    for name in sorted(value):
        if not is_known(value[name]):
            continue
        try:
            _ulimit(value[name])
        except ValueError:
            return attr_error(
                "ulimits",
                f"ulimits.{name}: {value[name]!r} is not a limit",
                'expected a number, "SOFT:HARD" or {soft: N, hard: N}',
                "invalid-ulimit",
            )
    return None


# ---- normalized spec and hash ---------------------------------------------------------


def _command(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return ["/bin/sh", "-c", value]
    return [str(v) for v in value]


def normalized_health(value: Any) -> dict[str, Any] | None:
    """A healthcheck as Docker takes it: test as ["CMD"|"CMD-SHELL", ...], durations in ns."""
    if not value:
        return None
    test = value["test"]
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    elif test and test[0] not in ("CMD", "CMD-SHELL", "NONE"):
        test = ["CMD", *test]
    out: dict[str, Any] = {"test": [str(t) for t in test]}
    for key in _HEALTH_DURATIONS:
        if value.get(key) is not None:
            out[key] = int(_seconds(value[key]) * _NS)
    if value.get("retries") is not None:
        out["retries"] = int(value["retries"])
    return out


def normalized(config: Mapping[str, Any]) -> dict[str, Any]:
    """The spec Docker fixes at create, as plain JSON; ``config`` must be fully known."""
    c = plain(config)
    ulimits = c.get("ulimits") or {}
    return {
        "name": c["name"],
        "image": c["image"],
        "command": _command(c.get("command")),
        "entrypoint": _command(c.get("entrypoint")),
        "environment": {str(k): str(v) for k, v in sorted((c.get("environment") or {}).items())},
        "binds": list(c.get("binds") or []),
        "volumes": list(c.get("volumes") or []),
        "network_mode": c.get("network_mode") or "host",
        "privileged": bool(c.get("privileged")),
        "cap_add": sorted(c.get("cap_add") or []),
        "cap_drop": sorted(c.get("cap_drop") or []),
        "ulimits": {k: list(_ulimit(v)) for k, v in sorted(ulimits.items())},
        "restart_policy": c.get("restart_policy") or "no",
        "healthcheck": normalized_health(c.get("healthcheck")),
        "labels": {str(k): str(v) for k, v in sorted((c.get("labels") or {}).items())},
    }


def spec_hash(config: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    """sha256 of the normalized spec; UNKNOWN while a value is; a Secret when one is inside.

    A digest of a spec holding a short password could be brute-forced from a
    plan or a state dump, so it is kept as secret as the password.
    """
    subset = {k: config.get(k) for k in keys}
    if contains_unknown(plain(subset)):
        return UNKNOWN
    text = json.dumps(normalized(subset), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(text.encode()).hexdigest()
    return Secret(digest) if contains_secret(subset) else digest


# ---- Docker API arguments -------------------------------------------------------------


def api_binds(spec: Mapping[str, Any]) -> list[str]:
    return [*spec["binds"], *spec["volumes"]]


def restart_policy_arg(policy: str) -> dict[str, Any] | None:
    if policy == "no":
        return None
    name, _, count = policy.partition(":")
    out: dict[str, Any] = {"Name": name}
    if count:
        out["MaximumRetryCount"] = int(count)
    return out


def healthcheck_arg(health: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if health is None:
        return None
    out: dict[str, Any] = {"test": health["test"]}
    for key in ("interval", "timeout", "retries", "start_period"):
        if key in health:
            out[key] = health[key]
    return out


def ulimits_arg(ulimits: Mapping[str, list[int]]) -> list[dict[str, Any]]:
    return [{"name": k, "soft": v[0], "hard": v[1]} for k, v in ulimits.items()]
