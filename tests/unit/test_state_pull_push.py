"""StateStore.pull / push: a sealed document, lineage and serial checks, all or nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kplan.diagnostics import KplanError
from kplan.state import transfer
from kplan.state.crypto import generate_key
from kplan.state.store import ResourceRecord, StateStore
from kplan.values import Secret

SECRET = "pu11-s3cr3t-Q"


@pytest.fixture
def key() -> dict[str, str]:
    return {"KPLAN_STATE_KEY": generate_key()}


def rec(address: str, **attrs: object) -> ResourceRecord:
    return ResourceRecord.from_addr(
        address, provider="builtin", attributes=dict(attrs), dependencies=("a.dep",), host="h"
    )


def _filled(path: Path, env: dict[str, str]) -> StateStore:
    store = StateStore.open(str(path), environ=env)
    store.set_meta("hostkey.ctl1", "ssh-ed25519 AAAA")
    run = store.begin_run("apply", "Plan: 3 to add")
    store.put_many([rec("a.x", n=1), rec("a.pw", value=Secret(SECRET), nested=[Secret(7)])])
    store.put(rec("a.x", n=2))
    store.put(rec("a.gone"))
    store.delete("a.gone")
    store.set_outputs({"pw": Secret(SECRET), "n": 2})
    store.finish_run(run, "success", "3 added, 1 destroyed")
    return store


def test_pull_then_push_into_a_fresh_store_is_an_exact_copy(
    tmp_path: Path, key: dict[str, str]
) -> None:
    with _filled(tmp_path / "a.db", key) as src:
        text = src.pull()
        want = src.content_checksum()
        lineage, serial = src.lineage, src.serial
    assert SECRET not in text and "pu11" not in text
    doc = json.loads(text)
    assert doc["format_version"] == transfer.FORMAT_VERSION
    assert list(doc["workspaces"]) == ["default"]
    pw = doc["workspaces"]["default"]["resources"]["a.pw"]["attributes"]["value"]
    assert set(pw) == {"__kplan_secret__"}  # sealed, as in the state
    with StateStore.open(str(tmp_path / "b.db"), environ=key) as dst:
        pushed = dst.push(text, source="pulled.json")
        assert pushed["serial"] == serial
        assert dst.content_checksum() == want
        assert (dst.lineage, dst.serial) == (lineage, serial)
        assert dst.get("a.pw") == rec("a.pw", value=Secret(SECRET), nested=[Secret(7)])
        assert dst.outputs()["pw"] == Secret(SECRET)
        assert dst.resources_at(2)["a.x"] == rec("a.x", n=2)
        assert dst.resources_at(3)["a.gone"] == rec("a.gone")
        assert "a.gone" not in dst.resources_at(4)
        assert dst.history()[0].state_serial == serial
        assert dst.get_meta("hostkey.ctl1") == "ssh-ed25519 AAAA"


def test_push_of_an_older_serial_is_refused_unless_forced(
    tmp_path: Path, key: dict[str, str]
) -> None:
    with _filled(tmp_path / "a.db", key) as store:
        old, old_serial = store.pull(), store.serial
        store.put(rec("a.x", n=3))
        newer = store.content_checksum()
        with pytest.raises(KplanError, match=f"serial {old_serial + 1}, newer than") as err:
            store.push(old, source="old.json")
        assert err.value.diagnostics[0].code == "state-push-refused"
        assert store.content_checksum() == newer
        store.push(old, source="old.json", force=True)
        assert store.serial == old_serial and store.get("a.x") == rec("a.x", n=2)
        # The same serial with other content (an edited file): refused; the same content: fine.
        edited = json.loads(store.pull())
        edited["workspaces"]["default"]["resources"]["a.x"]["attributes"] = {"n": 9}
        with pytest.raises(KplanError, match="same serial") as err:
            store.push(json.dumps(edited), source="edited.json")
        assert "needs a serial above" in err.value.diagnostics[0].detail
        store.push(store.pull(), source="same.json")
        # With its serial raised, the edit is pushed, and becomes a version of that serial.
        edited["workspaces"]["default"]["serial"] = old_serial + 1
        store.push(json.dumps(edited), source="edited.json")
        assert store.get("a.x") == rec("a.x", n=9) == store.get_at("a.x", old_serial + 1)
        assert store.get_at("a.x", old_serial) == rec("a.x", n=2)


def test_push_of_another_lineage_is_refused_unless_forced(
    tmp_path: Path, key: dict[str, str]
) -> None:
    with _filled(tmp_path / "a.db", key) as a:
        text = a.pull()
    with StateStore.open(str(tmp_path / "b.db"), environ=key) as b:
        b.put(rec("b.only"))
        before = b.content_checksum()
        with pytest.raises(KplanError, match="lineage") as err:
            b.push(text, source="a.json")
        assert err.value.diagnostics[0].code == "state-push-refused"
        assert b.content_checksum() == before
        b.push(text, source="a.json", force=True)
        assert "b.only" not in b.resources() and b.get("a.pw") is not None


def test_push_with_another_key_writes_nothing(tmp_path: Path, key: dict[str, str]) -> None:
    with _filled(tmp_path / "a.db", key) as a:
        text = a.pull()
    other = {"KPLAN_STATE_KEY": generate_key()}
    with StateStore.open(str(tmp_path / "b.db"), environ=other) as b:
        b.put(rec("b.pw", value=Secret("mine")))
        before = (b.serial, b.content_checksum(), b.history())
        with pytest.raises(KplanError, match="sealed with another state key") as err:
            b.push(text, source="a.json", force=True)
        assert err.value.diagnostics[0].code == "state-wrong-key"
        assert (b.serial, b.content_checksum(), b.history()) == before


def test_push_of_a_document_that_is_not_one(tmp_path: Path, key: dict[str, str]) -> None:
    with StateStore.open(str(tmp_path / "b.db"), environ=key) as b:
        for text, match in (
            ("not json", "not JSON"),
            ("[1]", "a JSON list"),
            ('{"format_version": 9, "workspaces": {}}', "format_version 9"),
            ('{"format_version": 2, "workspaces": {}}', "holds 0 workspaces"),
        ):
            with pytest.raises(KplanError, match=match) as err:
                b.push(text, source="x.json")
            assert err.value.diagnostics[0].code == "state-document-invalid"
        assert b.serial == 0


def test_format_1_documents_are_still_read(tmp_path: Path, key: dict[str, str]) -> None:
    with _filled(tmp_path / "a.db", key) as a:
        doc = a.export_state()
        serial = a.serial
    doc["format_version"] = 1
    for ws in doc["workspaces"].values():
        del ws["versions"], ws["versions_from"]
        for h in ws["history"]:
            del h["state_serial"]
    with StateStore.open(str(tmp_path / "b.db"), environ=key) as b:
        b.import_state(doc)
        assert b.resources_at(serial) == b.resources()
        with pytest.raises(KplanError, match="only its current serial"):
            b.resources_at(serial - 1)


def test_copy_keeps_the_versions(tmp_path: Path, key: dict[str, str]) -> None:
    other = {"KPLAN_STATE_KEY": generate_key()}
    with (
        _filled(tmp_path / "a.db", key) as a,
        StateStore.open(str(tmp_path / "b.db"), environ=other) as b,
    ):
        assert a.copy_to(b) == a.content_checksum() == b.content_checksum()
        assert [b.resources_at(n) for n in range(a.serial + 1)] == [
            a.resources_at(n) for n in range(a.serial + 1)
        ]
