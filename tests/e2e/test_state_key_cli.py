"""A malformed or wrong state key is refused by init, plan and apply before any change.

For each key source (KPLAN_STATE_KEY, KPLAN_STATE_KEY_FILE, KPLAN_STATE_PASSPHRASE
and the default key file): refused with exit 1, the message names the source (and,
for a malformed key, the accepted formats), and nothing changed: no state created
for a new module, no file written by a local_file, the state serial unchanged.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from kplan.state.crypto import generate_key
from tests.e2e.conftest import run_kplan

MODULE = """\
resources:
  secret_password.db: {length: 16}
  local_file.note:
    path: ${path.module}/out/note.txt
    content: hello
"""

EXTRA = """\
resources:
  local_file.extra:
    path: ${path.module}/out/extra.txt
    content: more
"""

COMMANDS = (("init",), ("plan",), ("apply", "-auto-approve"))


def _serial(root: Path) -> int:
    con = sqlite3.connect(root / ".kplan" / "state.db")
    try:
        return int(con.execute("SELECT serial FROM workspaces WHERE name='default'").fetchone()[0])
    finally:
        con.close()


def _refused(root: Path, env: dict[str, str], source: str, *, malformed: bool) -> None:
    for cmd in COMMANDS:
        proc = run_kplan(root, *cmd, env=env)
        assert proc.returncode == 1, (cmd, proc.stdout, proc.stderr)
        err = proc.stderr
        assert source in err, (cmd, err)
        if malformed:
            assert "is malformed" in err and "Accepted keys" in err, (cmd, err)
            assert "base64 of 32 random bytes" in err and "KPLAN_STATE_PASSPHRASE" in err
        else:
            assert "wrong state key" in err, (cmd, err)
        assert "Creating" not in proc.stdout, (cmd, proc.stdout)


# Each source: (environment for the right key, for a malformed one, for a wrong one,
# the name the messages use). A function of the module folder, for key files.
Keys = Callable[[Path], tuple[dict[str, str], dict[str, str], dict[str, str], str]]


def _env_key(root: Path) -> tuple[dict[str, str], dict[str, str], dict[str, str], str]:
    return (
        {"KPLAN_STATE_KEY": generate_key()},
        {"KPLAN_STATE_KEY": "not-a-key"},
        {"KPLAN_STATE_KEY": generate_key()},
        "KPLAN_STATE_KEY",
    )


def _key_file(root: Path) -> tuple[dict[str, str], dict[str, str], dict[str, str], str]:
    keys = root.parent / "keys"
    keys.mkdir()
    for name, text in (("right", generate_key()), ("bad", "c2hvcnQ=\n"), ("other", generate_key())):
        (keys / name).write_text(text + "\n")
    return (
        {"KPLAN_STATE_KEY_FILE": str(keys / "right")},
        {"KPLAN_STATE_KEY_FILE": str(keys / "bad")},
        {"KPLAN_STATE_KEY_FILE": str(keys / "other")},
        "KPLAN_STATE_KEY_FILE",
    )


def _passphrase(root: Path) -> tuple[dict[str, str], dict[str, str], dict[str, str], str]:
    return (
        {"KPLAN_STATE_PASSPHRASE": "correct horse battery staple"},
        {"KPLAN_STATE_PASSPHRASE": "   "},
        {"KPLAN_STATE_PASSPHRASE": "incorrect horse"},
        "KPLAN_STATE_PASSPHRASE",
    )


@pytest.mark.parametrize("keys", [_env_key, _key_file, _passphrase], ids=lambda f: f.__name__)
def test_env_key_sources(tmp_path: Path, keys: Keys) -> None:
    root = tmp_path / "mod"
    root.mkdir()
    (root / "main.kp.yaml").write_text(MODULE)
    right, malformed, wrong, source = keys(root)

    # A new module: refused before the state or any file is made.
    _refused(root, malformed, source, malformed=True)
    assert not (root / ".kplan" / "state.db").exists()
    assert not (root / "out").exists()

    run_kplan(root, "apply", "-auto-approve", env=right, check=True)
    serial = _serial(root)
    (root / "extra.kp.yaml").write_text(EXTRA)

    _refused(root, malformed, source, malformed=True)
    _refused(root, wrong, source, malformed=False)
    # Moving the state to another backend: refused before anything is saved or copied.
    for env in (malformed, wrong):
        moved = run_kplan(
            root, "init", "-backend-config", "path=moved/k.db", "-migrate-state", env=env
        )
        assert moved.returncode == 1 and source in moved.stderr, moved.stderr
    assert not (root / "moved").exists() and not (root / ".kplan" / "backend.json").exists()
    assert not (root / "out" / "extra.txt").exists()
    assert _serial(root) == serial
    assert not (root / ".kplan" / "state.key").exists()

    # The right key still works, and the apply goes on from there.
    run_kplan(root, "apply", "-auto-approve", env=right, check=True)
    assert (root / "out" / "extra.txt").read_text() == "more"


def test_default_key_file(tmp_path: Path) -> None:
    root = tmp_path / "mod"
    key = root / ".kplan" / "state.key"
    key.parent.mkdir(parents=True)
    (root / "main.kp.yaml").write_text(MODULE)

    key.write_text("\n")  # e.g. a key file cut short
    _refused(root, {}, str(key), malformed=True)
    assert not (root / ".kplan" / "state.db").exists()
    assert not (root / "out").exists()

    key.unlink()
    run_kplan(root, "apply", "-auto-approve", check=True)
    right = key.read_text()
    serial = _serial(root)
    (root / "extra.kp.yaml").write_text(EXTRA)

    key.write_text("xyz\n")
    _refused(root, {}, str(key), malformed=True)
    key.write_text(generate_key() + "\n")
    _refused(root, {}, str(key), malformed=False)
    assert not (root / "out" / "extra.txt").exists()
    assert _serial(root) == serial

    key.write_text(right)
    run_kplan(root, "apply", "-auto-approve", check=True)
    assert (root / "out" / "extra.txt").read_text() == "more"
