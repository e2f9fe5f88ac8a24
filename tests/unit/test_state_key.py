"""The state key: made atomically once, its form checked first, a wrong one refused up front."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import delete

from kplan.diagnostics import KplanError
from kplan.state.crypto import ACCEPTED_FORMATS, find_key, generate_key, load_cipher
from kplan.state.keys import META_KEY_CHECK
from kplan.state.schema import meta
from kplan.state.store import ResourceRecord, StateStore
from kplan.values import Secret

AAD = b"default\x00secret_password.x"


def _all_at_once(n: int, work: Callable[[], object]) -> list[object]:
    """Run ``work()`` in n threads released together; their results (or exceptions)."""
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.parametrize("round_", range(20))
def test_key_file_race_gives_every_thread_the_same_valid_key(tmp_path: Path, round_: int) -> None:
    key_dir = tmp_path / "keys"  # made by the racers too

    def make() -> bytes:
        c = load_cipher(state_dir=str(key_dir), salt=None, environ={}, create=True)
        return c.encrypt(b"x", AAD).encode()

    tokens = _all_at_once(16, make)
    errors = [t for t in tokens if isinstance(t, Exception)]
    assert not errors, errors[0]
    key = base64.b64decode((key_dir / "state.key").read_text().strip(), validate=True)
    assert len(key) == 32
    again = load_cipher(state_dir=str(key_dir), salt=None, environ={}, create=False)
    for token in tokens:
        assert isinstance(token, bytes)
        assert again.decrypt(token.decode(), AAD) == b"x"
    # No temporary file is left behind.
    assert sorted(p.name for p in key_dir.iterdir()) == ["state.key"]
    assert (key_dir / "state.key").stat().st_mode & 0o077 == 0


def test_threads_of_one_store_share_one_new_key(tmp_path: Path) -> None:
    db = str(tmp_path / ".kplan" / "state.db")
    with StateStore.open(db, environ={}) as store:

        def put() -> None:
            addr = f"secret_password.p{threading.get_ident()}"
            attrs = {"v": Secret(addr)}
            store.put(ResourceRecord.from_addr(addr, provider="builtin", attributes=attrs))

        errors = [r for r in _all_at_once(12, put) if isinstance(r, Exception)]
        assert not errors, errors[0]
    with StateStore.open(db, environ={}) as store:
        found = store.resources()
    assert len(found) == 12
    assert all(r.attributes["v"].reveal() == r.address for r in found.values())


@pytest.mark.parametrize(
    ("environ", "file_text", "where", "why"),
    [
        ({"KPLAN_STATE_KEY": "not base64!"}, None, "KPLAN_STATE_KEY", "not base64"),
        (
            {"KPLAN_STATE_KEY": base64.b64encode(b"k" * 16).decode()},
            None,
            "KPLAN_STATE_KEY",
            "16 bytes, not 32",
        ),
        ({"KPLAN_STATE_KEY_FILE": "{file}"}, "short\n", "KPLAN_STATE_KEY_FILE", "not base64"),
        ({"KPLAN_STATE_PASSPHRASE": "   "}, None, "KPLAN_STATE_PASSPHRASE", "white space"),
        ({"KPLAN_STATE_PASSPHRASE": "caf\udce9"}, None, "KPLAN_STATE_PASSPHRASE", "not UTF-8"),
        ({}, "\n", "state.key", "it is empty"),
        ({}, "\xe9t\xe9", "state.key", "not ASCII"),
    ],
)
def test_malformed_key_names_its_source_and_the_accepted_formats(
    tmp_path: Path, environ: dict[str, str], file_text: str | None, where: str, why: str
) -> None:
    key_file = tmp_path / "state.key"
    if file_text is not None:
        key_file.write_bytes(file_text.encode("latin-1"))
    environ = {k: v.replace("{file}", str(key_file)) for k, v in environ.items()}
    with pytest.raises(KplanError) as err:
        find_key(environ, str(tmp_path))
    diag = err.value.diagnostics[0]
    assert diag.code == "state-key-malformed"
    assert where in diag.summary and why in diag.summary
    assert diag.detail == ACCEPTED_FORMATS
    for source in ("KPLAN_STATE_KEY ", "KPLAN_STATE_KEY_FILE", "KPLAN_STATE_PASSPHRASE"):
        assert source in diag.detail


def test_prepare_key_creates_the_default_key_only_when_asked(tmp_path: Path) -> None:
    db = str(tmp_path / "state.db")
    with StateStore.open(db, environ={}) as store:
        store.prepare_key()  # a state without secrets needs no key
        assert not (tmp_path / "state.key").exists()
        store.prepare_key(create=True)
        assert (tmp_path / "state.key").exists()


def test_a_malformed_key_is_refused_by_prepare_even_for_a_state_without_secrets(
    tmp_path: Path,
) -> None:
    with (
        StateStore.open(str(tmp_path / "state.db"), environ={"KPLAN_STATE_KEY": "x"}) as store,
        pytest.raises(KplanError, match="KPLAN_STATE_KEY is malformed"),
    ):
        store.prepare_key()


def _state_with_a_secret(db: str, env: dict[str, str]) -> None:
    with StateStore.open(db, environ=env) as store:
        store.put(
            ResourceRecord.from_addr(
                "secret_password.db", provider="builtin", attributes={"value": Secret("pw")}
            )
        )


def test_a_wrong_key_is_refused_up_front(tmp_path: Path) -> None:
    db = str(tmp_path / "state.db")
    _state_with_a_secret(db, {"KPLAN_STATE_KEY": generate_key()})
    with (
        StateStore.open(db, environ={"KPLAN_STATE_KEY": generate_key()}) as store,
        pytest.raises(KplanError, match="wrong state key") as err,
    ):
        store.prepare_key()
    assert err.value.diagnostics[0].code == "state-wrong-key"
    # No key at all, for a state that has one: refused, and no key file made.
    with StateStore.open(db, environ={}) as store, pytest.raises(KplanError, match="no key"):
        store.prepare_key(create=True)
    assert not (tmp_path / "state.key").exists()


def test_a_state_without_key_check_is_checked_on_a_secret_and_then_given_one(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "state.db")
    right = {"KPLAN_STATE_KEY": generate_key()}
    _state_with_a_secret(db, right)
    with StateStore.open(db, environ=right) as store, store._write() as conn:
        conn.execute(delete(meta).where(meta.c.key == META_KEY_CHECK))
    # A wrong key is refused on the sealed value, and records no check.
    with StateStore.open(db, environ={"KPLAN_STATE_KEY": generate_key()}) as store:
        with pytest.raises(KplanError, match="wrong state key"):
            store.prepare_key()
        assert store.get_meta(META_KEY_CHECK) is None
    # No key at all: no new key file is made for a state that holds sealed values.
    with StateStore.open(db, environ={}) as store, pytest.raises(KplanError, match="no key"):
        store.prepare_key(create=True)
    assert not (tmp_path / "state.key").exists()
    # The right key passes, and the check is added.
    with StateStore.open(db, environ=right) as store:
        store.prepare_key()
        assert store.get_meta(META_KEY_CHECK) is not None
        assert store.resources()["secret_password.db"].attributes["value"].reveal() == "pw"
