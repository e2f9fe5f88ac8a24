"""Host-key trust: known_hosts first, then the key recorded in state, new keys only when asked."""

from __future__ import annotations

from pathlib import Path

import paramiko
import pytest

from kplan.transport.base import HostUnreachable
from kplan.transport.hostkeys import HostKeys, fingerprint, key_line


@pytest.fixture
def keys() -> tuple[paramiko.PKey, paramiko.PKey]:
    # RSA: paramiko generates these itself (no ed25519 generator in paramiko).
    return paramiko.RSAKey.generate(1024), paramiko.RSAKey.generate(1024)


def _known_hosts(tmp_path: Path, entry: str, key: paramiko.PKey) -> str:
    path = tmp_path / "known_hosts"
    path.write_text(f"{entry} {key_line(key)}\n")
    return str(path)


def test_key_in_known_hosts_is_trusted(tmp_path: Path, keys: tuple[paramiko.PKey, ...]) -> None:
    kh = _known_hosts(tmp_path, "10.0.0.1", keys[0])
    HostKeys({}).verify("ctl1", "10.0.0.1", 22, keys[0], kh)


def test_non_default_port_is_looked_up_in_brackets(
    tmp_path: Path, keys: tuple[paramiko.PKey, ...]
) -> None:
    kh = _known_hosts(tmp_path, "[10.0.0.1]:2222", keys[0])
    HostKeys({}).verify("ctl1", "10.0.0.1", 2222, keys[0], kh)
    with pytest.raises(HostUnreachable, match="unknown host key"):
        HostKeys({}).verify("ctl1", "10.0.0.1", 22, keys[0], kh)


def test_changed_key_is_refused_even_with_accept_new(
    tmp_path: Path, keys: tuple[paramiko.PKey, ...]
) -> None:
    kh = _known_hosts(tmp_path, "10.0.0.1", keys[0])
    with pytest.raises(HostUnreachable, match="host key changed") as err:
        HostKeys({}, accept_new=True).verify("ctl1", "10.0.0.1", 22, keys[1], kh)
    assert fingerprint(keys[1]) in str(err.value)
    assert str(err.value).startswith("host ctl1: ")


def test_unknown_key_is_refused_with_its_fingerprint(
    tmp_path: Path, keys: tuple[paramiko.PKey, ...]
) -> None:
    with pytest.raises(HostUnreachable) as err:
        HostKeys({}).verify("ctl1", "10.0.0.1", 22, keys[0], str(tmp_path / "none"))
    text = str(err.value)
    assert "unknown host key" in text and fingerprint(keys[0]) in text
    assert "-accept-new-host-keys" in text


def test_accepted_key_is_recorded_then_enforced(
    tmp_path: Path, keys: tuple[paramiko.PKey, ...]
) -> None:
    recorded: dict[str, str] = {}
    store = HostKeys({}, accept_new=True, record=recorded.__setitem__)
    store.verify("ctl1", "10.0.0.1", 22, keys[0], str(tmp_path / "none"))
    assert recorded == {"ctl1": key_line(keys[0])}
    # The next run trusts the recorded key without -accept-new-host-keys...
    later = HostKeys(recorded)
    later.verify("ctl1", "10.0.0.1", 22, keys[0], str(tmp_path / "none"))
    # ...and refuses any other key for that host, even when new keys are accepted.
    with pytest.raises(HostUnreachable, match="recorded in state"):
        HostKeys(recorded, accept_new=True).verify(
            "ctl1", "10.0.0.1", 22, keys[1], str(tmp_path / "none")
        )


def test_fingerprint_matches_openssh_format(keys: tuple[paramiko.PKey, ...]) -> None:
    fp = fingerprint(keys[0])
    assert fp.startswith("SHA256:") and not fp.endswith("=") and len(fp) == 7 + 43


def test_a_key_of_another_type_for_a_known_host_is_refused(
    tmp_path: Path, keys: tuple[paramiko.PKey, ...]
) -> None:
    kh = _known_hosts(tmp_path, "10.0.0.1", keys[0])
    other_type = paramiko.ECDSAKey.generate()
    with pytest.raises(HostUnreachable, match="host key changed"):
        HostKeys({}, accept_new=True).verify("ctl1", "10.0.0.1", 22, other_type, kh)
