"""Tests of the built-in provider (providers/builtin), through the provider protocol only.

Real files in tmp_path, no mocks. Data-driven cases live in
tests/unit/providers_cases/: ``validate.json`` (config in, diagnostics out)
and ``converge.json`` (each configuration run twice, pyinfra style: the
second plan must be a no-op).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import multiprocessing
import os
import shutil
import stat
import string
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from kplan.provider_api import (
    ApplyRequest,
    PlanRequest,
    PlanResponse,
    Provider,
    ReadInstance,
    ReadRequest,
    ReadResponse,
    ValidateRequest,
)
from kplan.values import UNKNOWN, Secret, iter_paths
from kplan_providers.builtin import provider
from kplan_providers.builtin.local_file import TEMP_SUFFIX
from kplan_providers.builtin.secret_password import SPECIAL, generate
from kplan_providers.builtin.time_sleep import DurationError, parse_duration

CASES = Path(__file__).parent / "providers_cases"
TYPES = {"local_file", "secret_password", "secret_key", "null_resource", "time_sleep"}
ADDR = "t.x"


# ---- harness ----------------------------------------------------------------------


def load_cases(name: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((CASES / name).read_text())["cases"]
    return cases


def errors(diags: Any) -> list[Any]:
    return [d for d in diags if d.is_error]


def plan(type_name: str, config: Mapping[str, Any], prior: Any = None) -> PlanResponse:
    resp = provider.plan(PlanRequest(type_name, ADDR, None, prior, config))
    assert not errors(resp.diagnostics), resp.diagnostics
    return resp


def apply(type_name: str, action: str, prior: Any, planned: Any) -> Any:
    resp = provider.apply(ApplyRequest(type_name, ADDR, None, action, prior, planned))  # type: ignore[arg-type]
    assert not errors(resp.diagnostics), resp.diagnostics
    return resp.new_state


def read(type_name: str, *states: Mapping[str, Any]) -> ReadResponse:
    instances = [ReadInstance(f"t.x{i}", None, s) for i, s in enumerate(states)]
    return provider.read(ReadRequest(type_name, instances))


def read_one(type_name: str, state: Mapping[str, Any]) -> Any:
    resp = read(type_name, state)
    assert not errors(resp.diagnostics), resp.diagnostics
    return resp.states["t.x0"]


def action_of(resp: PlanResponse, prior: Any) -> str | None:
    if prior is None:
        return "create"
    if resp.requires_replace:
        return "replace"
    return "update" if dict(resp.planned) != dict(prior) else None


def converge(type_name: str, config: Mapping[str, Any], prior: Any = None) -> tuple[Any, Any]:
    """One pass: plan, apply what the plan asks for, refresh. Returns (action, state)."""
    resp = plan(type_name, config, prior)
    action = action_of(resp, prior)
    state = prior
    if action is not None:
        state = apply(type_name, action, prior, resp.planned)
    return action, read_one(type_name, state)


def plain_leaves(state: Mapping[str, Any]) -> list[Any]:
    return [v for _, v in iter_paths(dict(state)) if not isinstance(v, Secret)]


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(TEMP_SUFFIX)]


# ---- discovery and schema ---------------------------------------------------------


def test_entry_point_discovers_builtin_provider() -> None:
    eps = importlib.metadata.entry_points(group="kplan.providers")
    (ep,) = [e for e in eps if e.name == "builtin"]
    assert ep.value == "kplan_providers.builtin:provider"
    loaded = ep.load()
    assert isinstance(loaded, Provider)
    assert loaded.name == "builtin"
    assert set(loaded.schema().resources) == TYPES


def test_schema_marks_sensitive_and_force_new() -> None:
    res = provider.schema().resources
    assert res["secret_password"].sensitive_attributes() == ["value"]
    assert res["local_file"].attributes["path"].force_new
    assert not res["local_file"].attributes["content"].force_new
    assert res["local_file"].attributes["sha256"].computed
    for name in ("length", "special", "keepers"):
        assert res["secret_password"].attributes[name].force_new
    assert res["null_resource"].attributes["triggers"].force_new
    assert res["time_sleep"].attributes["triggers"].force_new


@pytest.mark.parametrize("method", ["validate", "read", "plan", "apply"])
def test_unknown_type_is_a_diagnostic_not_an_exception(method: str) -> None:
    requests: dict[str, Callable[[], Any]] = {
        "validate": lambda: provider.validate(ValidateRequest("nope", {})),
        "read": lambda: provider.read(ReadRequest("nope", [ReadInstance("a", None, {})])),
        "plan": lambda: provider.plan(PlanRequest("nope", ADDR, None, None, {})),
        "apply": lambda: provider.apply(ApplyRequest("nope", ADDR, None, "create", None, {})),
    }
    (diag,) = requests[method]().diagnostics
    assert diag.is_error and diag.code == "unsupported-resource-type"
    assert "local_file" in diag.detail


# ---- validation (data-driven) -----------------------------------------------------


@pytest.mark.parametrize("case", load_cases("validate.json"), ids=lambda c: c["name"])
def test_validate_cases(case: dict[str, Any]) -> None:
    resp = provider.validate(ValidateRequest(case["type"], case["config"]))
    got = sorted([list(d.attribute), d.code] for d in resp.diagnostics)
    want = sorted([[attr], code] for attr, code in case["expect"])
    assert got == want, [str(d) for d in resp.diagnostics]
    for d in resp.diagnostics:
        assert d.is_error and d.summary


@pytest.mark.parametrize(
    ("type_name", "config"),
    [
        ("local_file", {"path": UNKNOWN, "content": UNKNOWN, "mode": UNKNOWN}),
        ("local_file", {"path": "/tmp/x", "content": Secret("pw"), "mode": Secret("0600")}),
        ("secret_password", {"length": UNKNOWN, "special": UNKNOWN, "keepers": UNKNOWN}),
        ("time_sleep", {"create_duration": UNKNOWN, "destroy_duration": Secret("1s")}),
        ("null_resource", {"triggers": {"a": UNKNOWN}}),
    ],
)
def test_validate_accepts_unknown_and_secret_values(type_name: str, config: dict[str, Any]) -> None:
    assert list(provider.validate(ValidateRequest(type_name, config)).diagnostics) == []


def test_validate_mode_messages_are_helpful() -> None:
    cfg: dict[str, Any] = {"path": "/tmp/x", "content": "a", "mode": "999"}
    (d,) = provider.validate(ValidateRequest("local_file", cfg)).diagnostics
    assert '"999"' in d.summary and "0644" in d.detail
    cfg["mode"] = 420
    (d,) = provider.validate(ValidateRequest("local_file", cfg)).diagnostics
    assert "quote" in d.detail


# ---- idempotence (data-driven): every case twice -----------------------------------


@pytest.mark.parametrize("case", load_cases("converge.json"), ids=lambda c: c["name"])
def test_converge_twice(case: dict[str, Any], tmp_path: Path) -> None:
    config = json.loads(json.dumps(case["config"]).replace("{tmp}", str(tmp_path)))
    assert list(provider.validate(ValidateRequest(case["type"], config)).diagnostics) == []
    action, state = converge(case["type"], config)
    assert action == "create"
    for _ in range(2):
        again = plan(case["type"], config, state)
        assert dict(again.planned) == dict(state)
        assert list(again.requires_replace) == []
        action, refreshed = converge(case["type"], config, state)
        assert action is None
        assert refreshed == state
    assert temp_files(tmp_path) == []


# ---- local_file -------------------------------------------------------------------


def file_cfg(path: Path, content: Any = "hello\n", mode: str | None = None) -> dict[str, Any]:
    cfg: dict[str, Any] = {"path": str(path), "content": content}
    if mode is not None:
        cfg["mode"] = mode
    return cfg


def test_local_file_plans_known_sha256(tmp_path: Path) -> None:
    resp = plan("local_file", file_cfg(tmp_path / "f", "abc"))
    assert resp.planned["sha256"] == hashlib.sha256(b"abc").hexdigest()
    assert resp.planned["mode"] == "0644"
    resp = plan("local_file", file_cfg(tmp_path / "f", UNKNOWN))
    assert resp.planned["sha256"] is UNKNOWN


def test_local_file_create_writes_content_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "f.conf"
    old_umask = os.umask(0o077)
    try:
        _, state = converge("local_file", file_cfg(path, "x = 1\n", "0640"))
    finally:
        os.umask(old_umask)
    assert path.read_text() == "x = 1\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert state == {
        "path": str(path),
        "content": "x = 1\n",
        "mode": "0640",
        "sha256": hashlib.sha256(b"x = 1\n").hexdigest(),
    }


def test_local_file_content_and_mode_change_in_place(tmp_path: Path) -> None:
    path = tmp_path / "f"
    _, state = converge("local_file", file_cfg(path, "one"))
    inode = path.stat().st_ino
    resp = plan("local_file", file_cfg(path, "two", "600"), state)
    assert list(resp.requires_replace) == []
    assert resp.planned["mode"] == "0600"
    action, state = converge("local_file", file_cfg(path, "two", "600"), state)
    assert action == "update"
    assert path.read_text() == "two"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert state["sha256"] == hashlib.sha256(b"two").hexdigest()
    assert path.stat().st_ino != inode  # replaced by rename, not rewritten in place
    assert temp_files(tmp_path) == []


def test_local_file_path_change_replaces(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "sub" / "new"
    _, state = converge("local_file", file_cfg(old))
    resp = plan("local_file", file_cfg(new), state)
    assert list(resp.requires_replace) == [("path",)]
    action, state = converge("local_file", file_cfg(new), state)
    assert action == "replace"
    assert not old.exists() and new.read_text() == "hello\n"
    assert state["path"] == str(new)


def test_local_file_drift_edit_chmod_and_delete(tmp_path: Path) -> None:
    path = tmp_path / "f"
    _, state = converge("local_file", file_cfg(path, "mine\n"))
    path.write_text("edited by hand\n")
    path.chmod(0o600)
    drifted = read_one("local_file", state)
    assert drifted["content"] == "edited by hand\n"
    assert drifted["mode"] == "0600"
    assert drifted["sha256"] == hashlib.sha256(b"edited by hand\n").hexdigest()
    action, state = converge("local_file", file_cfg(path, "mine\n"), drifted)
    assert action == "update" and path.read_text() == "mine\n"
    path.unlink()
    assert read_one("local_file", state) is None


def test_local_file_read_is_batched(tmp_path: Path) -> None:
    states = []
    for i in range(50):
        _, s = converge("local_file", file_cfg(tmp_path / f"f{i}", f"n={i}\n"))
        states.append(s)
    (tmp_path / "f7").unlink()
    resp = read("local_file", *states)
    assert len(resp.states) == 50
    assert resp.states["t.x7"] is None
    assert resp.states["t.x8"] == states[8]


def test_local_file_non_utf8_reads_as_null_with_warning(tmp_path: Path) -> None:
    path = tmp_path / "bin"
    _, state = converge("local_file", file_cfg(path, "text"))
    path.write_bytes(b"\xff\xfe\x00")
    resp = read("local_file", state)
    got = resp.states["t.x0"]
    assert got is not None and got["content"] is None
    assert got["sha256"] == hashlib.sha256(b"\xff\xfe\x00").hexdigest()
    (warn,) = resp.diagnostics
    assert not warn.is_error and warn.attribute == ("content",)
    action, _ = converge("local_file", file_cfg(path, "text"), got)
    assert action == "update" and path.read_text() == "text"


def test_local_file_secret_content_stays_secret(tmp_path: Path) -> None:
    path = tmp_path / "db.conf"
    pw = "s3cr3t-pw"
    cfg = file_cfg(path, Secret(f"password = {pw}\n"), "0600")
    planned = plan("local_file", cfg).planned
    assert isinstance(planned["content"], Secret) and isinstance(planned["sha256"], Secret)
    _, state = converge("local_file", cfg)
    assert path.read_text() == f"password = {pw}\n"
    assert isinstance(state["content"], Secret) and isinstance(state["sha256"], Secret)
    assert state["sha256"].reveal() == hashlib.sha256(path.read_bytes()).hexdigest()
    assert all(pw not in str(v) for v in plain_leaves(state))
    assert pw not in repr(state) and pw not in f"{state}"
    again = plan("local_file", cfg, state)
    assert dict(again.planned) == dict(state)
    path.write_text(f"password = {pw}-changed\n")  # drift keeps the secret wrapped
    drifted = read_one("local_file", state)
    assert isinstance(drifted["content"], Secret) and isinstance(drifted["sha256"], Secret)
    assert all(pw not in str(v) for v in plain_leaves(drifted))


def test_local_file_apply_errors_are_diagnostics(tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("")
    cases = {
        tmp_path / "adir": "it is a directory",
        tmp_path / "afile" / "child": "not a directory",
    }
    for target, reason in cases.items():
        planned = plan("local_file", file_cfg(target)).planned
        resp = provider.apply(ApplyRequest("local_file", ADDR, None, "create", None, planned))
        (d,) = resp.diagnostics
        assert d.is_error and d.code == "write-failed" and d.attribute == ("path",)
        assert str(target) in d.summary and reason in d.summary
        assert resp.new_state is None
    assert temp_files(tmp_path) == []


def test_local_file_unknown_content_at_apply_is_refused(tmp_path: Path) -> None:
    planned = {"path": str(tmp_path / "f"), "content": UNKNOWN, "mode": "0644", "sha256": UNKNOWN}
    resp = provider.apply(ApplyRequest("local_file", ADDR, None, "create", None, planned))
    (d,) = resp.diagnostics
    assert d.code == "unknown-value" and d.attribute == ("content",)
    assert resp.new_state is None and not (tmp_path / "f").exists()


def _write_into_read_only_folder(folder: str) -> tuple[str, tuple[str | int, ...]]:
    if os.geteuid() == 0:
        os.setuid(65534)  # root ignores permission bits: try it as nobody
    planned = plan("local_file", file_cfg(Path(folder) / "f")).planned
    resp = provider.apply(ApplyRequest("local_file", ADDR, None, "create", None, planned))
    (d,) = resp.diagnostics
    return d.summary, d.attribute


def test_local_file_permission_denied_is_a_diagnostic() -> None:
    top = tempfile.mkdtemp(prefix="kplan-perm-")
    try:
        os.chmod(top, 0o755)
        ro = Path(top, "ro")
        ro.mkdir(mode=0o555)
        ro.chmod(0o555)  # nobody may enter, nobody may write
        with multiprocessing.get_context("fork").Pool(1) as pool:
            summary, attribute = pool.apply(_write_into_read_only_folder, (str(ro),))
        assert "permission denied" in summary and attribute == ("path",)
        assert not (ro / "f").exists()
    finally:
        Path(top, "ro").chmod(0o700)
        shutil.rmtree(top)


def test_local_file_update_failure_keeps_prior_state(tmp_path: Path) -> None:
    path = tmp_path / "f"
    _, state = converge("local_file", file_cfg(path, "old"))
    path.unlink()
    path.mkdir()  # now a directory: the write must fail, the state must not move
    planned = plan("local_file", file_cfg(path, "new"), state).planned
    resp = provider.apply(ApplyRequest("local_file", ADDR, None, "update", state, planned))
    assert errors(resp.diagnostics) and resp.new_state == state


def test_local_file_delete(tmp_path: Path) -> None:
    path = tmp_path / "f"
    _, state = converge("local_file", file_cfg(path))
    assert apply("local_file", "delete", state, None) is None
    assert not path.exists()
    assert apply("local_file", "delete", state, None) is None  # already gone: fine
    path.mkdir()
    resp = provider.apply(ApplyRequest("local_file", ADDR, None, "delete", state, None))
    (d,) = resp.diagnostics
    assert d.code == "delete-failed" and d.attribute == ("path",)
    assert resp.new_state == state


def test_local_file_restart_is_refused(tmp_path: Path) -> None:
    _, state = converge("local_file", file_cfg(tmp_path / "f"))
    resp = provider.apply(ApplyRequest("local_file", ADDR, None, "restart", state, state))
    assert resp.diagnostics[0].code == "unsupported-action"
    assert resp.new_state == state


# ---- secret_password --------------------------------------------------------------


def test_secret_password_plan_and_apply() -> None:
    resp = plan("secret_password", {"length": 20})
    assert resp.planned["value"] is UNKNOWN
    state = apply("secret_password", "create", None, resp.planned)
    value = state["value"]
    assert isinstance(value, Secret)
    assert str(value) == "(sensitive)" and f"{value}" == "(sensitive)"
    assert len(value.reveal()) == 20
    assert set(value.reveal()) <= set(string.ascii_letters + string.digits)
    again = plan("secret_password", {"length": 20}, state)
    assert again.planned["value"] == value and list(again.requires_replace) == []


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"keepers": {"rotate": "2"}}, ("keepers",)),
        ({"length": 21}, ("length",)),
        ({"special": True}, ("special",)),
    ],
)
def test_secret_password_changes_regenerate(change: dict[str, Any], path: tuple[str]) -> None:
    base = {"length": 20, "keepers": {"rotate": "1"}}
    _, state = converge("secret_password", base)
    resp = plan("secret_password", {**base, **change}, state)
    assert list(resp.requires_replace) == [path]
    assert resp.planned["value"] is UNKNOWN
    action, new = converge("secret_password", {**base, **change}, state)
    assert action == "replace"
    assert isinstance(new["value"], Secret) and new["value"] != state["value"]


def test_secret_password_charsets() -> None:
    specials = set(SPECIAL)
    for _ in range(200):
        pw = generate(8, True)
        assert len(pw) == 8
        assert any(c in specials for c in pw)
        assert any(c in string.ascii_lowercase for c in pw)
        assert any(c in string.ascii_uppercase for c in pw)
        assert any(c in string.digits for c in pw)
        plain_pw = generate(3, False)
        assert {c.isdigit() for c in plain_pw} == {True, False}
        assert set(plain_pw) <= set(string.ascii_letters + string.digits)
    assert len(generate(1, True)) == 1 and len(generate(4096, True)) == 4096
    assert len({generate(32, False) for _ in range(100)}) == 100
    for bad in "$%#@:/\\'\" `":
        assert bad not in SPECIAL


def test_secret_password_read_returns_prior_and_wraps_plain() -> None:
    _, state = converge("secret_password", {})
    assert read_one("secret_password", state) == state
    unwrapped = {**state, "value": state["value"].reveal()}
    got = read_one("secret_password", unwrapped)
    assert isinstance(got["value"], Secret) and got["value"] == state["value"]


# ---- secret_key ---------------------------------------------------------------------


def test_secret_key_is_a_fernet_key_by_default() -> None:
    from cryptography.fernet import Fernet

    resp = plan("secret_key", {})
    assert resp.planned["value"] is UNKNOWN
    state = apply("secret_key", "create", None, resp.planned)
    value = state["value"]
    assert isinstance(value, Secret) and str(value) == "(sensitive)"
    token = Fernet(value.reveal().encode()).encrypt(b"x")  # refuses anything but 32 bytes
    assert Fernet(value.reveal().encode()).decrypt(token) == b"x"
    again = plan("secret_key", {}, state)
    assert again.planned["value"] == value and list(again.requires_replace) == []


@pytest.mark.parametrize(
    ("encoding", "size", "decode"),
    [
        ("hex", 16, bytes.fromhex),
        ("base64", 48, base64.b64decode),
        ("base64url", 7, base64.urlsafe_b64decode),
    ],
)
def test_secret_key_encodings(encoding: str, size: int, decode: Any) -> None:
    _, state = converge("secret_key", {"encoding": encoding, "bytes": size})
    assert len(decode(state["value"].reveal())) == size
    action, new = converge(
        "secret_key", {"encoding": encoding, "bytes": size, "keepers": {"r": 1}}, state
    )
    assert action == "replace" and new["value"] != state["value"]


@pytest.mark.parametrize(
    ("config", "code"),
    [
        ({"bytes": 0}, "invalid-bytes"),
        ({"bytes": 2.5}, "invalid-bytes"),
        ({"encoding": "b32"}, "invalid-encoding"),
    ],
)
def test_secret_key_refuses_bad_input(config: dict[str, Any], code: str) -> None:
    diags = provider.validate(ValidateRequest("secret_key", config)).diagnostics
    assert [d.code for d in diags] == [code]
    assert diags[0].attribute == (next(iter(config)),)


# ---- null_resource ----------------------------------------------------------------


def test_null_resource_id_and_triggers() -> None:
    _, state = converge("null_resource", {"triggers": {"v": "1"}})
    assert len(state["id"]) == 16 and int(state["id"], 16) >= 0
    resp = plan("null_resource", {"triggers": {"v": "2"}}, state)
    assert list(resp.requires_replace) == [("triggers",)] and resp.planned["id"] is UNKNOWN
    action, new = converge("null_resource", {"triggers": {"v": "2"}}, state)
    assert action == "replace" and new["id"] != state["id"]
    assert apply("null_resource", "delete", new, None) is None


# ---- time_sleep -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0), ("0s", 0), ("500ms", 0.5), ("2s", 2), ("1m", 60), ("1m30s", 90), ("1.5h", 5400)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "s", "-1s", "1d", "1s2", "1 s", "ms"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)


def test_time_sleep_sleeps_at_create_and_destroy() -> None:
    cfg = {"create_duration": "150ms", "destroy_duration": "100ms"}
    start = time.monotonic()
    _, state = converge("time_sleep", cfg)
    assert time.monotonic() - start >= 0.15
    assert len(state["id"]) == 16
    start = time.monotonic()
    assert apply("time_sleep", "delete", state, None) is None
    assert time.monotonic() - start >= 0.1


def test_time_sleep_duration_change_updates_in_place() -> None:
    _, state = converge("time_sleep", {"create_duration": "1ms"})
    cfg = {"create_duration": "10m"}  # an update must not sleep
    resp = plan("time_sleep", cfg, state)
    assert list(resp.requires_replace) == [] and resp.planned["id"] == state["id"]
    start = time.monotonic()
    action, new = converge("time_sleep", cfg, state)
    assert action == "update" and time.monotonic() - start < 1
    assert new["id"] == state["id"] and new["create_duration"] == "10m"


def test_time_sleep_triggers_replace() -> None:
    _, state = converge("time_sleep", {"triggers": {"a": "1"}})
    resp = plan("time_sleep", {"triggers": {"a": "2"}}, state)
    assert list(resp.requires_replace) == [("triggers",)] and resp.planned["id"] is UNKNOWN
