"""Tests of the host provider (providers/host) through the provider protocol.

The hosts are directories in tmp_path reached through :class:`CountingConnection`,
a real ``/bin/sh`` connection (kplan's LocalConnection) that counts round
trips; an unreachable host is a connection that raises HostUnreachable.
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from kplan.plan.render_diff import DiffOptions, diff_attribute
from kplan.provider_api import (
    ApplyRequest,
    ApplyResponse,
    ConfigureRequest,
    HostInfo,
    PlanRequest,
    PlanResponse,
    ReadInstance,
    ReadRequest,
    ReadResponse,
    ValidateRequest,
)
from kplan.transport.base import (
    UNREACHABLE_CODE,
    CommandFailed,
    CommandResult,
    Connection,
    HostUnreachable,
    command_text,
)
from kplan.transport.local import LocalConnection
from kplan.values import UNKNOWN, Secret
from kplan_providers.host import HostProvider, _shell, provider
from kplan_providers.host.etc_hosts import BEGIN, END, parse_block, replace_block
from kplan_providers.host.template import mask_like

# ---- harness ----------------------------------------------------------------------


class CountingConnection(Connection):
    """A local connection that counts every call; ``down`` makes it unreachable."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.inner = LocalConnection(host)
        self.runs: list[str] = []
        self.writes: list[tuple[str, bool]] = []
        self.down = False
        # Set: every command fails with this on standard error (exit 2), as a host
        # short of processes would answer.
        self.fail_with: bytes | None = None
        # The largest command line and standard input sent, in bytes.
        self.longest_command = 0
        self.longest_stdin = 0

    def _check(self) -> None:
        if self.down:
            raise HostUnreachable(self.host, "connection refused", "ssh: port 22")

    def run(
        self,
        command: str | Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> CommandResult:
        self._check()
        self.runs.append(command if isinstance(command, str) else " ".join(command))
        self.longest_command = max(self.longest_command, len(command_text(command).encode()))
        self.longest_stdin = max(self.longest_stdin, len(stdin or b""))
        if self.fail_with is not None:
            raise CommandFailed(
                self.host, command_text(command), CommandResult(2, b"", self.fail_with)
            )
        return self.inner.run(command, stdin=stdin, timeout=timeout, check=check)

    def read_file(self, path: str) -> bytes | None:
        self._check()
        self.runs.append(f"read {path}")
        return self.inner.read_file(path)

    def write_file(
        self,
        path: str,
        data: bytes,
        *,
        mode: int = 0o644,
        owner: str | None = None,
        group: str | None = None,
        atomic: bool = True,
        parents: bool = False,
    ) -> None:
        self._check()
        self.writes.append((path, atomic))
        self.inner.write_file(
            path, data, mode=mode, owner=owner, group=group, atomic=atomic, parents=parents
        )

    def docker(self) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        pass


class Lab:
    """A configured provider and its hosts."""

    def __init__(self, tmp: Path, names: Sequence[str] = ("h1", "h2")) -> None:
        self.tmp = tmp
        self.conns = {n: CountingConnection(n) for n in names}
        self.hosts = {n: HostInfo(n, f"10.0.0.{i + 1}", "local") for i, n in enumerate(names)}
        self.p = HostProvider()
        self.p.configure(ConfigureRequest(self.hosts, self.connect))
        for n in names:
            (tmp / n).mkdir()

    def connect(self, host: str) -> Connection:
        conn = self.conns[host]
        conn._check()
        return conn

    def dir(self, host: str) -> Path:
        return self.tmp / host

    def runs(self) -> int:
        return sum(len(c.runs) for c in self.conns.values())

    def reset(self) -> None:
        for c in self.conns.values():
            c.runs.clear()
            c.writes.clear()

    def validate(self, type_name: str, config: Mapping[str, Any]) -> list[Any]:
        return list(self.p.validate(ValidateRequest(type_name, config)).diagnostics)

    def plan(
        self, type_name: str, host: str | None, config: Mapping[str, Any], prior: Any = None
    ) -> PlanResponse:
        return self.p.plan(PlanRequest(type_name, f"{type_name}.x", host, prior, config))

    def apply(
        self,
        type_name: str,
        host: str | None,
        action: str,
        prior: Any,
        planned: Any,
        addr: str = "",
    ) -> ApplyResponse:
        return self.p.apply(
            ApplyRequest(type_name, addr or f"{type_name}.x", host, action, prior, planned)  # type: ignore[arg-type]
        )

    def create(
        self, type_name: str, host: str, config: Mapping[str, Any], addr: str = ""
    ) -> dict[str, Any]:
        planned = self.plan(type_name, host, config)
        assert not planned.diagnostics, planned.diagnostics
        resp = self.apply(type_name, host, "create", None, planned.planned, addr)
        assert not resp.diagnostics, resp.diagnostics
        assert resp.new_state is not None
        return dict(resp.new_state)

    def read(self, type_name: str, items: Sequence[tuple[str, str | None, Any]]) -> ReadResponse:
        return self.p.read(ReadRequest(type_name, [ReadInstance(a, h, s) for a, h, s in items]))


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return Lab(tmp_path)


def codes(diags: Any) -> list[str]:
    return [d.code for d in diags]


def errors(diags: Any) -> list[Any]:
    return [d for d in diags if d.is_error]


# ---- registration -----------------------------------------------------------------


def test_entry_point_object_serves_the_four_types() -> None:
    assert provider.name == "host"
    assert set(provider.schema().resources) == {
        "host_file",
        "host_directory",
        "host_etc_hosts",
        "host_sysctl",
    }


# ---- host_file: validate ----------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "attribute", "code"),
    [
        ({"path": "etc/x.conf", "content": "x"}, "path", "invalid-path"),
        ({"path": "/etc/kolla/", "content": "x"}, "path", "invalid-path"),
        ({"path": "/x", "content": "x", "mode": "0999"}, "mode", "invalid-mode"),
        ({"path": "/x", "content": "x", "mode": 416}, "mode", "invalid-mode"),
        ({"path": "/x", "content": "x", "template": "y"}, "template", "conflicting-attributes"),
        ({"path": "/x"}, "content", "missing-attribute"),
        ({"path": "/x", "content": "x", "vars": {"a": 1}}, "vars", "conflicting-attributes"),
        ({"path": "/x", "content": "x", "owner": "bad user"}, "owner", "invalid-owner"),
        ({"path": "/x", "content": "x", "group": "$(id)"}, "group", "invalid-group"),
        ({"path": "/x", "template": "{% if %}"}, "template", "template-error"),
        ({"content": "x"}, "path", "missing-attribute"),
    ],
)
def test_host_file_validation_names_the_attribute(
    lab: Lab, config: dict[str, Any], attribute: str, code: str
) -> None:
    diags = errors(lab.validate("host_file", config))
    assert [(d.attribute, d.code) for d in diags] == [((attribute,), code)]


def test_valid_host_file_configs_pass(lab: Lab) -> None:
    ok = [
        {"path": "/etc/x", "content": "x", "mode": "640", "owner": "kolla", "group": 42401},
        {"path": "/etc/x", "template": "{{ a }}", "vars": {"a": 1}},
        {"path": UNKNOWN, "content": UNKNOWN, "mode": UNKNOWN},
        {"path": "/etc/x", "content": Secret("pw")},
    ]
    for config in ok:
        assert lab.validate("host_file", config) == [], config


def test_template_syntax_error_names_the_line(lab: Lab) -> None:
    diags = lab.validate("host_file", {"path": "/x", "template": "a\nb\n{{ x + }}\n"})
    assert "line 3" in diags[0].summary


# ---- host_file: plan and templates ------------------------------------------------


def test_template_is_rendered_at_plan_time(lab: Lab) -> None:
    resp = lab.plan(
        "host_file",
        "h1",
        {"path": "/x", "template": "[db]\nhost = {{ db.host }}\n", "vars": {"db": {"host": "h"}}},
    )
    assert resp.diagnostics == []
    assert resp.planned["content"] == "[db]\nhost = h\n"
    assert resp.planned["mode"] == "0644"
    assert len(resp.planned["sha256"]) == 64


def test_undefined_template_variable_names_the_line(lab: Lab) -> None:
    resp = lab.plan(
        "host_file", "h1", {"path": "/x", "template": "a = 1\nb = {{ missing }}\n", "vars": {}}
    )
    (d,) = resp.diagnostics
    assert d.attribute == ("template",) and d.code == "template-error"
    assert "line 2" in d.summary and "'missing' is undefined" in d.summary


def test_an_undefined_template_name_is_found_while_a_var_is_unknown(lab: Lab) -> None:
    # A generated password is unknown until apply: the template cannot be rendered,
    # but a name no var brings is an error now, not half-way through the apply.
    source = "[db]\npassword = {{ pw }}\nport = {{ port + 1 }}\nhost = {{ hots }}\n"
    config = {"path": "/x", "template": source, "vars": {"pw": UNKNOWN, "port": 5}}
    (d,) = errors(lab.validate("host_file", config))
    assert d.code == "template-error" and d.attribute == ("template",)
    assert "line 4" in d.summary and "'hots' is undefined" in d.summary
    secret = {**config, "vars": {"pw": Secret("s3cret"), "port": UNKNOWN}}
    (d,) = errors(lab.validate("host_file", secret))
    assert "'hots' is undefined" in d.summary and "s3cret" not in d.summary


@pytest.mark.parametrize(
    "source",
    [
        "{% if tls %}{{ cert }}{% endif %}",  # cert may be needed only when tls is true
        "{% for h in hosts %}{{ h }}{% endfor %}{{ later }}",
        "{% if cert is defined %}{{ cert }}{% endif %}{{ pw | default('x') }}{{ pw.a[0] }}",
        "{{ pw | upper }}{{ port * 2 }}{% set q = 1 %}{{ q }}{{ range(3) | list }}",
    ],
)
def test_a_dry_rendering_reports_nothing_it_cannot_be_sure_of(lab: Lab, source: str) -> None:
    config = {"path": "/x", "template": source}
    config["vars"] = {"tls": UNKNOWN, "hosts": UNKNOWN, "pw": UNKNOWN, "port": UNKNOWN}
    assert lab.validate("host_file", config) == [], source


def test_template_sandbox_refuses_python_internals(lab: Lab) -> None:
    src = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    resp = lab.plan("host_file", "h1", {"path": "/x", "template": src})
    assert codes(resp.diagnostics) == ["template-error"]


def test_secret_vars_make_the_content_secret_and_a_masked_view(lab: Lab) -> None:
    resp = lab.plan(
        "host_file",
        "h1",
        {
            "path": "/x",
            "template": "user = {{ u }}\npass = {{ pw }}\n",
            "vars": {"u": "k", "pw": Secret("hunter2")},
        },
    )
    planned = resp.planned
    assert isinstance(planned["content"], Secret) and isinstance(planned["sha256"], Secret)
    assert planned["content"].reveal() == "user = k\npass = hunter2\n"
    assert planned["content_masked"] == "user = k\npass = (sensitive)\n"
    assert "hunter2" not in repr(planned)


def test_a_render_error_never_shows_a_secret(lab: Lab) -> None:
    resp = lab.plan(
        "host_file",
        "h1",
        {
            "path": "/x",
            "template": "{{ pw | int(base=None) + pw.nope() }}",
            "vars": {"pw": Secret("hunter2")},
        },
    )
    assert codes(resp.diagnostics) == ["template-error"]
    assert "hunter2" not in str(resp.diagnostics)


def test_with_secret_inputs_only_a_name_from_the_source_is_shown(lab: Lab) -> None:
    secret = {"pw": Secret("hunter2"), "d": {}}
    named = lab.plan("host_file", "h1", {"path": "/x", "template": "a\n{{ port }}", "vars": secret})
    assert "line 2: 'port' is undefined" in named.diagnostics[0].summary
    keyed = lab.plan("host_file", "h1", {"path": "/x", "template": "{{ d[pw] }}", "vars": secret})
    assert codes(keyed.diagnostics) == ["template-error"]
    assert "hunter2" not in str(keyed.diagnostics) and "hidden" in keyed.diagnostics[0].summary


def test_unknown_vars_give_unknown_content(lab: Lab) -> None:
    resp = lab.plan(
        "host_file", "h1", {"path": "/x", "template": "{{ a }}", "vars": {"a": UNKNOWN}}
    )
    assert resp.planned["content"] is UNKNOWN and resp.planned["sha256"] is UNKNOWN


def test_path_change_forces_replacement(lab: Lab, tmp_path: Path) -> None:
    prior = lab.create("host_file", "h1", {"path": str(tmp_path / "h1/a"), "content": "x\n"})
    resp = lab.plan("host_file", "h1", {"path": str(tmp_path / "h1/b"), "content": "x\n"}, prior)
    assert list(resp.requires_replace) == [("path",)]


def test_missing_host_is_refused_everywhere(lab: Lab) -> None:
    cfg = {"path": "/x", "content": "x"}
    assert codes(lab.plan("host_file", None, cfg).diagnostics) == ["missing-host"]
    assert codes(lab.apply("host_file", None, "create", None, cfg).diagnostics) == ["missing-host"]
    read = lab.read("host_file", [("a", None, cfg)])
    assert codes(read.diagnostics) == ["missing-host"] and "a" not in read.states


# ---- host_file: apply ---------------------------------------------------------------


def test_create_writes_atomically_with_parents_and_mode(lab: Lab) -> None:
    path = lab.dir("h1") / "etc/kolla/keystone/keystone.conf"
    state = lab.create(
        "host_file", "h1", {"path": str(path), "content": "[DEFAULT]\n", "mode": "640"}
    )
    assert path.read_text() == "[DEFAULT]\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert state["mode"] == "0640"
    assert lab.conns["h1"].writes == [(str(path), True)]
    # Idempotence: planning the same configuration again gives the recorded state.
    again = lab.plan(
        "host_file", "h1", {"path": str(path), "content": "[DEFAULT]\n", "mode": "640"}, state
    )
    assert again.planned == state


def test_owner_and_group_are_resolved_on_the_host(lab: Lab) -> None:
    me, my_group = os.getuid(), os.getgid()
    path = lab.dir("h1") / "owned"
    state = lab.create(
        "host_file", "h1", {"path": str(path), "content": "x", "owner": me, "group": str(my_group)}
    )
    assert (state["owner"], state["group"]) == (str(me), str(my_group))
    read = lab.read("host_file", [("a", "h1", state)])
    assert read.states["a"] == state


def test_unknown_owner_or_group_is_named(lab: Lab) -> None:
    path = str(lab.dir("h1") / "f")
    for attr in ("owner", "group"):
        planned = lab.plan(
            "host_file", "h1", {"path": path, "content": "x", attr: "no-such-kplan-x"}
        )
        resp = lab.apply("host_file", "h1", "create", None, planned.planned)
        (d,) = resp.diagnostics
        assert d.attribute == (attr,) and d.code == f"unknown-{attr}"
        assert "no-such-kplan-x" in d.summary and "h1" in d.summary
    assert not os.path.exists(path)
    for attr in ("owner", "group"):  # a directory: checked before it is made
        planned = lab.plan("host_directory", "h1", {"path": path, attr: "no-such-kplan-x"})
        resp = lab.apply("host_directory", "h1", "create", None, planned.planned)
        (d,) = resp.diagnostics
        assert d.attribute == (attr,) and d.code == f"unknown-{attr}"
    assert not os.path.exists(path)


def test_an_owner_lookup_that_fails_otherwise_says_what_was_done(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = lab.conns["h1"]
    run = conn.run

    def broken_id(command: Any, **kw: Any) -> CommandResult:
        if "id -u" in str(command):
            return CommandResult(3, b"", b"id: cannot fork\n")
        return run(command, **kw)

    monkeypatch.setattr(conn, "run", broken_id)
    path = str(lab.dir("h1") / "f")
    planned = lab.plan("host_file", "h1", {"path": path, "content": "x", "owner": "root"})
    (d,) = lab.apply("host_file", "h1", "create", None, planned.planned).diagnostics
    assert d.summary == f"cannot look up the owner of {path} on host h1"
    assert d.detail == "id: cannot fork" and d.attribute == ("path",)
    assert not os.path.exists(path)


def test_paths_are_quoted_never_interpreted(lab: Lab) -> None:
    evil = lab.dir("h1") / "a b'$(touch pwned)`touch pwned2`;x"
    state = lab.create("host_file", "h1", {"path": str(evil), "content": "x"})
    read = lab.read("host_file", [("a", "h1", state)])
    assert read.states["a"] == state
    lab.apply("host_file", "h1", "delete", state, None)
    assert not evil.exists()
    assert not list(Path.cwd().glob("pwned*")) and not list(lab.dir("h1").glob("pwned*"))


def test_delete_removes_the_file_and_tolerates_its_absence(lab: Lab) -> None:
    path = lab.dir("h1") / "f"
    state = lab.create("host_file", "h1", {"path": str(path), "content": "x"})
    assert lab.apply("host_file", "h1", "delete", state, None).new_state is None
    assert not path.exists()
    assert lab.apply("host_file", "h1", "delete", state, None).diagnostics == ()


def test_replace_writes_the_new_file_before_removing_the_old(lab: Lab) -> None:
    old = lab.create("host_file", "h1", {"path": str(lab.dir("h1") / "a"), "content": "x"})
    planned = lab.plan("host_file", "h1", {"path": str(lab.dir("h1") / "b"), "content": "x"}, old)
    resp = lab.apply("host_file", "h1", "replace", old, planned.planned)
    assert resp.diagnostics == [] or resp.diagnostics == ()
    assert not (lab.dir("h1") / "a").exists() and (lab.dir("h1") / "b").read_text() == "x"


# ---- batched refresh ----------------------------------------------------------------


def _fifty(lab: Lab) -> list[tuple[str, str | None, Any]]:
    items = []
    for host in ("h1", "h2"):
        for n in range(25):
            cfg = {"path": str(lab.dir(host) / f"conf/{n}.conf"), "content": f"n = {n}\n"}
            addr = f'host_file.c["{host}-{n}"]'
            items.append((addr, host, lab.create("host_file", host, cfg, addr)))
    return items


def test_reading_50_files_on_2_hosts_costs_2_round_trips(lab: Lab) -> None:
    items = _fifty(lab)
    lab.reset()
    read = lab.read("host_file", items)
    assert lab.runs() == 2
    assert [len(c.runs) for c in lab.conns.values()] == [1, 1]
    assert read.diagnostics == []
    assert all(read.states[a] == s for a, _, s in items)


def test_drifted_files_are_read_back_in_one_more_round_trip(lab: Lab) -> None:
    items = _fifty(lab)
    for n in (3, 4, 5):
        (lab.dir("h1") / f"conf/{n}.conf").write_text(f"n = {n}\nedited = yes\n")
    (lab.dir("h2") / "conf/7.conf").chmod(0o600)
    (lab.dir("h2") / "conf/8.conf").unlink()
    lab.reset()
    read = lab.read("host_file", items)
    assert [len(c.runs) for c in lab.conns.values()] == [2, 1]
    changed = {a for a, _, s in items if read.states[a] != s}
    assert changed == {f'host_file.c["h1-{n}"]' for n in (3, 4, 5)} | {
        'host_file.c["h2-7"]',
        'host_file.c["h2-8"]',
    }
    assert read.states['host_file.c["h1-3"]']["content"] == "n = 3\nedited = yes\n"
    assert read.states['host_file.c["h2-7"]']["mode"] == "0600"
    assert read.states['host_file.c["h2-8"]'] is None


def test_thousands_of_long_paths_are_read_in_one_round_trip(lab: Lab) -> None:
    """Far more than Linux allows in one argument (128 KiB): the script goes on stdin."""
    template = lab.create("host_file", "h1", {"path": str(lab.dir("h1") / "t"), "content": "x\n"})
    deep = lab.dir("h1") / ("d" * 120) / ("e" * 120)
    deep.mkdir(parents=True)
    items = []
    for n in range(2500):
        path = deep / f"{'f' * 40}-{n}.conf"
        path.write_text("x\n")
        path.chmod(int(template["mode"], 8))
        items.append((f'host_file.c["{n}"]', "h1", {**template, "path": str(path)}))
    drifted = {n for n in range(0, 2500, 3)}
    for n in drifted:
        (deep / f"{'f' * 40}-{n}.conf").write_text(f"edited {n}\n")
    assert sum(len(str(s["path"])) for _, _, s in items) > 4 * 128 * 1024
    lab.reset()
    read = lab.read("host_file", items)
    assert read.diagnostics == []
    # One stat pass, and one fetch of the drifted files (itself several 128 KiB).
    assert len(lab.conns["h1"].runs) == 2
    assert lab.conns["h1"].longest_command < 1024 < 128 * 1024 < lab.conns["h1"].longest_stdin
    for n, (addr, _, _state) in enumerate(items):
        want = f"edited {n}\n" if n in drifted else "x\n"
        assert read.states[addr]["content"] == want, addr  # type: ignore[index]


CANNOT_FORK = b"sh: 12: Cannot fork\nsh: 14: cannot create /dev/null: Permission denied\n"


def test_a_failing_read_names_the_count_not_the_script(lab: Lab) -> None:
    items = _fifty(lab)
    lab.conns["h2"].fail_with = CANNOT_FORK
    read = lab.read("host_file", items)
    (d,) = read.diagnostics
    assert d.code == "read-failed" and d.summary == "host h2: reading 25 managed files failed"
    assert "Cannot fork" in d.detail and "Permission denied" in d.detail
    assert "for p in" not in str(d) and str(lab.dir("h2")) not in str(d)
    assert {a for a in read.states} == {a for a, h, _ in items if h == "h1"}


def test_a_failing_directory_or_etc_hosts_read_says_so(lab: Lab) -> None:
    dirs = [
        (f"d{n}", "h1", lab.create("host_directory", "h1", {"path": str(lab.dir("h1") / f"{n}")}))
        for n in range(3)
    ]
    hosts = lab.dir("h1") / "hosts"
    hosts.write_text(FOREIGN)
    etc = lab.create("host_etc_hosts", "h1", {"path": str(hosts)})
    lab.conns["h1"].fail_with = CANNOT_FORK
    (d,) = lab.read("host_directory", dirs).diagnostics
    assert d.summary == "host h1: reading 3 managed directories failed" and "fork" in d.detail
    (d,) = lab.read("host_etc_hosts", [("e", "h1", etc)]).diagnostics
    assert d.summary == "host h1: reading 1 managed file failed" and "fork" in d.detail
    resp = lab.apply("host_etc_hosts", "h1", "update", etc, {**etc, "entries": {"a": "10.0.0.9"}})
    (d,) = resp.diagnostics
    assert d.code == "read-failed" and d.summary == f"cannot read {hosts}"
    assert "fork" in d.detail and "for p in" not in str(d)


def test_an_unreachable_host_only_affects_its_own_instances(lab: Lab) -> None:
    items = _fifty(lab)
    lab.conns["h2"].down = True
    read = lab.read("host_file", items)
    (d,) = read.diagnostics
    assert d.code == UNREACHABLE_CODE and "h2" in d.summary and "connection refused" in d.summary
    assert {a for a in read.states} == {a for a, h, _ in items if h == "h1"}
    cfg = {"path": str(lab.dir("h2") / "new"), "content": "x"}
    planned = lab.plan("host_file", "h2", cfg).planned
    resp = lab.apply("host_file", "h2", "create", None, planned)
    assert codes(resp.diagnostics) == [UNREACHABLE_CODE] and resp.new_state is None
    # The reachable host still works.
    lab.create("host_file", "h1", {"path": str(lab.dir("h1") / "new"), "content": "x"})


def test_a_secret_file_read_back_stays_secret(lab: Lab) -> None:
    path = lab.dir("h1") / "secret.conf"
    state = lab.create("host_file", "h1", {"path": str(path), "content": Secret("pw = a\n")})
    assert isinstance(state["content"], Secret)
    path.write_text("pw = b\n")
    now = lab.read("host_file", [("a", "h1", state)]).states["a"]
    assert now is not None
    assert isinstance(now["content"], Secret) and now["content"].reveal() == "pw = b\n"
    assert isinstance(now["sha256"], Secret)


def test_a_symlink_or_directory_in_place_of_the_file_is_drift(lab: Lab) -> None:
    path = lab.dir("h1") / "f"
    state = lab.create("host_file", "h1", {"path": str(path), "content": "x"})
    path.unlink()
    path.mkdir()
    (d,) = lab.read("host_file", [("a", "h1", state)]).diagnostics
    assert d.code == "not-a-file" and not d.is_error
    path.rmdir()
    path.symlink_to(lab.dir("h1") / "elsewhere")
    read = lab.read("host_file", [("a", "h1", state)])
    assert codes(read.diagnostics) == ["not-a-file"]
    assert read.states["a"]["content"] is None  # type: ignore[index]
    # The next apply writes the file over the link.
    lab.apply("host_file", "h1", "update", read.states["a"], state)
    assert not path.is_symlink() and path.read_text() == "x"


def test_the_plan_shows_a_line_diff_of_a_drifted_file(lab: Lab) -> None:
    path = lab.dir("h1") / "app.conf"
    body = "".join(f"line{n} = {n}\n" for n in range(10))
    cfg = {"path": str(path), "content": body}
    state = lab.create("host_file", "h1", cfg)
    path.write_text(body.replace("line5 = 5", "line5 = 55"))
    now = lab.read("host_file", [("a", "h1", state)]).states["a"]
    assert now is not None
    planned = lab.plan("host_file", "h1", cfg, now).planned
    lines = diff_attribute(
        "content = ", now["content"], planned["content"], 4, ("content",), DiffOptions()
    )
    changed = [(ln.sym, ln.text) for ln in lines if ln.sym in "+-" and ln.sym]
    assert changed == [("-", "line5 = 55"), ("+", "line5 = 5")]
    assert any("unchanged line" in ln.text for ln in lines)


def test_a_drifted_secret_file_shows_a_masked_line_diff(lab: Lab) -> None:
    path = lab.dir("h1") / "db.conf"
    source = "[db]\nuser = {{ u }}\npass = {{ pw }}\ndebug = false\n"
    cfg = {"path": str(path), "template": source, "vars": {"u": "k", "pw": Secret("hunter2")}}
    state = lab.create("host_file", "h1", cfg)
    # By hand: debug on, the password changed, and the password copied into a comment.
    path.write_text("[db]\nuser = k\npass = oldpass\ndebug = true\n# was hunter2\n")
    now = lab.read("host_file", [("a", "h1", state)]).states["a"]
    assert now is not None
    assert now["content_masked"] == (
        "[db]\nuser = k\npass = (sensitive)\ndebug = true\n# was (sensitive)\n"
    )
    planned = lab.plan("host_file", "h1", cfg, now).planned
    lines = diff_attribute(
        "content_masked = ",
        now["content_masked"],
        planned["content_masked"],
        4,
        ("content_masked",),
        DiffOptions(),
    )
    changed = [(ln.sym, ln.text) for ln in lines if ln.sym in "+-" and ln.sym]
    assert changed == [("-", "debug = true"), ("-", "# was (sensitive)"), ("+", "debug = false")]
    assert "hunter2" not in repr(lines) and "oldpass" not in repr(lines)


def test_two_secrets_side_by_side_are_masked_whole_in_a_drifted_file(lab: Lab) -> None:
    """auth = {{a}}:{{b}} with a = "adm:in": the rendering alone cannot tell where
    the first secret ends; the template's own secret inputs are masked wherever seen."""
    path = lab.dir("h1") / "auth.conf"
    cfg = {
        "path": str(path),
        "template": "auth = {{ a }}:{{ b }}\n",
        "vars": {"a": Secret("adm:in"), "b": Secret("pass-word")},
    }
    state = lab.create("host_file", "h1", cfg)
    path.write_text("auth = adm:in:pass-word\nbackup_auth = adm:in\n")
    now = lab.read("host_file", [("a", "h1", state)]).states["a"]
    assert now is not None
    masked = now["content_masked"]
    assert "adm" not in masked and ":in" not in masked and "pass-word" not in masked
    assert masked == "auth = (sensitive):(sensitive)\nbackup_auth = (sensitive)\n"


@pytest.mark.parametrize(
    ("real", "masked"),
    [
        ("a = x\ny\n", "a = (sensitive)\n"),  # the secret held a newline
        ("a = X\n", "a = (SENSITIVE)\n"),  # a filter changed the placeholder
    ],
)
def test_a_secret_that_cannot_be_placed_shows_no_masked_drift(real: str, masked: str) -> None:
    assert mask_like("a = x\n", real, masked) is None


# ---- host_directory -----------------------------------------------------------------


def test_directory_is_created_with_parents_and_read_back(lab: Lab) -> None:
    path = lab.dir("h1") / "a/b/c"
    state = lab.create("host_directory", "h1", {"path": str(path), "mode": "0750"})
    assert path.is_dir() and stat.S_IMODE(path.stat().st_mode) == 0o750
    assert lab.read("host_directory", [("d", "h1", state)]).states["d"] == state
    path.chmod(0o700)
    assert lab.read("host_directory", [("d", "h1", state)]).states["d"]["mode"] == "0700"  # type: ignore[index]
    # Repair is an update in place.
    resp = lab.apply("host_directory", "h1", "update", {**state, "mode": "0700"}, state)
    assert resp.new_state == state and stat.S_IMODE(path.stat().st_mode) == 0o750


def test_a_directory_costs_one_command_and_a_file_in_it_none(lab: Lab) -> None:
    """The owner check and mkdir go in one command; a file's write makes its directory
    itself, and only when it is missing."""
    path = lab.dir("h1") / "svc"
    owner = pwd.getpwuid(os.getuid()).pw_name
    lab.reset()
    lab.create("host_directory", "h1", {"path": str(path), "owner": owner, "mode": "0750"})
    assert len(lab.conns["h1"].runs) == 1
    lab.reset()
    lab.create("host_file", "h1", {"path": str(path / "a.conf"), "content": "a\n"})
    assert lab.conns["h1"].runs == [] and (path / "a.conf").read_text() == "a\n"
    lab.create("host_file", "h1", {"path": str(path / "new/b.conf"), "content": "b\n"})
    assert lab.conns["h1"].runs == [] and (path / "new/b.conf").read_text() == "b\n"
    lab.create("host_file", "h1", {"path": str(path / "c.conf"), "content": "c\n", "owner": owner})
    assert len(lab.conns["h1"].runs) == 1  # the owner's name looked up on the host


def test_directory_delete_removes_only_an_empty_one(lab: Lab) -> None:
    path = lab.dir("h1") / "d"
    state = lab.create("host_directory", "h1", {"path": str(path)})
    (path / "data").write_text("keep me")
    resp = lab.apply("host_directory", "h1", "delete", state, None)
    assert resp.new_state is None and codes(resp.diagnostics) == ["directory-not-empty"]
    assert not errors(resp.diagnostics) and (path / "data").exists()
    (path / "data").unlink()
    resp = lab.apply("host_directory", "h1", "delete", state, None)
    assert resp.diagnostics == () and not path.exists()


def test_directory_validation(lab: Lab) -> None:
    assert codes(lab.validate("host_directory", {"path": "rel"})) == ["invalid-path"]
    assert codes(lab.validate("host_directory", {"path": "/"})) == ["invalid-path"]
    assert codes(lab.validate("host_directory", {"path": "/x", "mode": "7777x"})) == [
        "invalid-mode"
    ]


# ---- host_etc_hosts -----------------------------------------------------------------


FOREIGN = "127.0.0.1 localhost\n::1 ip6-localhost\n# a comment kept\n"


def test_block_is_added_and_replaced_without_touching_other_lines() -> None:
    one = replace_block(FOREIGN, {"b": "10.0.0.2", "a": "10.0.0.1"})
    assert one == FOREIGN + f"{BEGIN}\n10.0.0.1 a\n10.0.0.2 b\n{END}\n"
    two = replace_block(one + "10.9.9.9 after\n", {"c": "10.0.0.3"})
    assert two == FOREIGN + f"{BEGIN}\n10.0.0.3 c\n{END}\n10.9.9.9 after\n"
    assert parse_block(two) == {"c": "10.0.0.3"}
    assert replace_block(two, None) == FOREIGN + "10.9.9.9 after\n"
    assert replace_block("no newline", {"a": "10.0.0.1"}).startswith("no newline\n# BEGIN")
    assert parse_block(FOREIGN) is None


def test_etc_hosts_defaults_to_the_inventory_and_edits_in_place(lab: Lab) -> None:
    hosts = lab.dir("h1") / "hosts"
    hosts.write_text(FOREIGN)
    hosts.chmod(0o644)
    inode = hosts.stat().st_ino
    state = lab.create("host_etc_hosts", "h1", {"path": str(hosts)})
    assert state["entries"] == {"h1": "10.0.0.1", "h2": "10.0.0.2"}
    assert hosts.read_text() == FOREIGN + f"{BEGIN}\n10.0.0.1 h1\n10.0.0.2 h2\n{END}\n"
    assert hosts.stat().st_ino == inode
    assert lab.conns["h1"].writes == [(str(hosts), False)]
    assert lab.read("host_etc_hosts", [("e", "h1", state)]).states["e"] == state
    # A foreign line added later survives an update.
    with hosts.open("a") as f:
        f.write("192.168.1.1 router\n")
    planned = lab.plan(
        "host_etc_hosts", "h1", {"path": str(hosts), "entries": {"db": "10.1.1.1"}}, state
    )
    resp = lab.apply("host_etc_hosts", "h1", "update", state, planned.planned)
    assert resp.new_state == {"path": str(hosts), "entries": {"db": "10.1.1.1"}}
    text = hosts.read_text()
    assert (
        text.startswith(FOREIGN)
        and "10.1.1.1 db\n" in text
        and text.endswith("192.168.1.1 router\n")
    )
    assert hosts.stat().st_ino == inode
    assert lab.apply("host_etc_hosts", "h1", "delete", resp.new_state, None).new_state is None
    assert hosts.read_text() == FOREIGN + "192.168.1.1 router\n"


def test_etc_hosts_drift_when_the_block_is_edited(lab: Lab) -> None:
    hosts = lab.dir("h1") / "hosts"
    hosts.write_text(FOREIGN)
    state = lab.create("host_etc_hosts", "h1", {"path": str(hosts), "entries": {"a": "10.0.0.1"}})
    hosts.write_text(hosts.read_text().replace("10.0.0.1 a", "10.0.0.9 a"))
    assert lab.read("host_etc_hosts", [("e", "h1", state)]).states["e"] == {
        "path": str(hosts),
        "entries": {"a": "10.0.0.9"},
    }
    hosts.write_text(FOREIGN)
    assert lab.read("host_etc_hosts", [("e", "h1", state)]).states["e"] == {
        "path": str(hosts),
        "entries": None,
    }


def test_etc_hosts_entries_are_checked(lab: Lab) -> None:
    diags = lab.validate(
        "host_etc_hosts", {"entries": {"ok": "10.0.0.1", "bad": "10.0.0.300", "x y": "10.0.0.1"}}
    )
    assert sorted(d.attribute for d in diags) == [("entries", "bad"), ("entries", "x y")]


def test_etc_hosts_reads_many_hosts_in_one_command_each(lab: Lab) -> None:
    items = []
    for h in ("h1", "h2"):
        (lab.dir(h) / "hosts").write_text(FOREIGN)
        items.append(
            (f"e{h}", h, lab.create("host_etc_hosts", h, {"path": str(lab.dir(h) / "hosts")}))
        )
    lab.reset()
    read = lab.read("host_etc_hosts", items)
    assert lab.runs() == 2 and all(read.states[a] == s for a, _, s in items)


# ---- shell helpers ------------------------------------------------------------------


@pytest.mark.parametrize("parse", [_shell.parse_stat, _shell.parse_stat_each])
def test_parse_stat_refuses_a_truncated_reply(parse: Any) -> None:
    with pytest.raises(ValueError, match="no record for 1 of 2"):
        parse("0 missing\n", 2)


def test_a_batched_reply_cut_before_its_end_is_refused() -> None:
    with pytest.raises(ValueError, match="stops before the end"):
        _shell.parse_stat("0 missing\n--stat\n", 1)


def _sh(
    script: str,
    *,
    cwd: Path | None = None,
    path: Sequence[Path] = (),
    shell: Sequence[str] = ("sh",),
) -> str:
    """The standard output of ``script`` run by the local ``sh -s``, as on a host."""
    env = {**os.environ, "PATH": os.pathsep.join([*map(str, path), os.environ["PATH"]])}
    done = subprocess.run(
        [*shell, "-s"],
        input=script.encode("utf-8", "surrogateescape"),
        capture_output=True,
        check=True,
        cwd=cwd,
        env=env,
    )
    return done.stdout.decode("utf-8", "replace")


def _expected(path: Path) -> _shell.Stat | None:
    """What a stat script should say of ``path``, from Python's own look at it."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        return _shell.Stat("other")
    sha = None
    if stat.S_ISREG(st.st_mode) and os.access(path, os.R_OK):  # root reads a mode 000 file
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return _shell.Stat(
        "dir" if stat.S_ISDIR(st.st_mode) else "file",
        pwd.getpwuid(st.st_uid).pw_name,
        str(st.st_uid),
        grp.getgrgid(st.st_gid).gr_name,
        str(st.st_gid),
        f"{stat.S_IMODE(st.st_mode):04o}",
        sha,
    )


# Names a script must pass through untouched (relative ones run from the folder).
ODD_NAMES = ["with space", 'it\'s "quoted"', "new\nline", "back\\slash", "-dash"]


def _zoo(root: Path) -> list[str]:
    """One path of each kind the stat scripts tell apart, under ``root``."""
    (root / "file").write_text("a = 1\n")
    (root / "file").chmod(0o640)
    (root / "empty").write_bytes(b"")
    (root / "locked").write_text("secret\n")
    (root / "locked").chmod(0o000)
    (root / "dir").mkdir()
    (root / "dir").chmod(0o2750)
    (root / "link").symlink_to(root / "file")
    (root / "dangling").symlink_to(root / "nowhere")
    os.mkfifo(root / "fifo")
    for n, name in enumerate(ODD_NAMES):
        (root / name).write_text(f"odd {n}\n")
    (root / "-").write_text("not standard input\n")
    kinds = ["missing", "file", "empty", "locked", "dir", "link", "dangling", "fifo"]
    return [str(root / k) for k in kinds + ODD_NAMES] + ["-dash", "-", "/dev/null"]


def test_the_batched_stat_script_reports_what_the_per_path_script_does(tmp_path: Path) -> None:
    paths = _zoo(tmp_path)
    want = [_expected(tmp_path / p) for p in paths]
    assert want[paths.index(str(tmp_path / "link"))] == _shell.Stat("other")
    assert want[paths.index("/dev/null")] == _shell.Stat("other")
    assert want[paths.index("-")].sha256 == hashlib.sha256(b"not standard input\n").hexdigest()  # type: ignore[union-attr]
    batched = _shell.parse_stat(_sh(_shell.stat_script(paths), cwd=tmp_path), len(paths))
    each = _shell.parse_stat_each(_sh(_shell.stat_each_script(paths), cwd=tmp_path), len(paths))
    assert batched == each == want
    assert _shell.parse_stat(_sh(_shell.stat_script([])), 0) == []


@pytest.mark.skipif(os.geteuid() == 0 and not shutil.which("setpriv"), reason="no setpriv")
def test_an_unreadable_file_has_no_digest() -> None:
    """As root every file is readable: the scripts run as nobody (setpriv) there."""
    shell = ["sh"]
    if os.geteuid() == 0:
        shell = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "sh"]
    with tempfile.TemporaryDirectory() as name:  # tmp_path's parents are closed to nobody
        root = Path(name)
        root.chmod(0o755)
        (root / "open").write_text("x\n")
        (root / "open").chmod(0o644)
        (root / "locked").write_text("x\n")
        (root / "locked").chmod(0o000)
        paths = [str(root / "open"), str(root / "locked")]
        batched = _shell.parse_stat(_sh(_shell.stat_script(paths), shell=shell), 2)
        each = _shell.parse_stat_each(_sh(_shell.stat_each_script(paths), shell=shell), 2)
    assert batched == each
    assert batched is not None and batched[1] is not None and batched[1].mode == "0000"
    assert [s.sha256 for s in batched if s is not None] == [
        hashlib.sha256(b"x\n").hexdigest(),
        None,
    ]


def _spies(where: Path, log: Path, before: str = "") -> Path:
    """A folder of ``stat`` and ``sha256sum`` that log each start, run ``before``,
    then run the real command."""
    where.mkdir()
    for name in ("stat", "sha256sum"):
        real = shutil.which(name)
        assert real is not None
        spy = where / name
        spy.write_text(f'#!/bin/sh\necho {name} >> "{log}"\n{before}\nexec "{real}" "$@"\n')
        spy.chmod(0o755)
    return where


def _started(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def test_stat_and_sha256sum_start_once_for_all_paths(tmp_path: Path) -> None:
    (tmp_path / "h").mkdir()
    paths = []
    for n in range(10):
        (tmp_path / "h" / f"d{n}").mkdir()
        (tmp_path / "h" / f"f{n}").write_text(f"{n}\n")
        paths += [str(tmp_path / "h" / f"d{n}"), str(tmp_path / "h" / f"f{n}")]
    paths += [str(tmp_path / "h" / f"gone{n}") for n in range(10)]
    log = tmp_path / "started"
    spies = _spies(tmp_path / "bin", log)
    reply = _sh(_shell.stat_script(paths), path=[spies])
    assert sorted(_started(log)) == ["sha256sum", "stat"]
    assert _shell.parse_stat(reply, 30) == [_expected(Path(p)) for p in paths]


def test_a_path_removed_between_the_passes_is_asked_again_path_by_path(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """stat starts after the first pass saw the file: no line for it, nothing is guessed."""
    items = []
    for n in range(4):
        cfg = {"path": str(lab.dir("h1") / f"{n}"), "content": f"{n}\n"}
        items.append((f"f{n}", "h1", lab.create("host_file", "h1", cfg)))
    victim = lab.dir("h1") / "1"
    log = lab.tmp / "started"
    spies = _spies(lab.tmp / "bin", log, before=f"rm -f '{victim}'")
    monkeypatch.setenv("PATH", f"{spies}{os.pathsep}{os.environ['PATH']}")
    lab.reset()
    read = lab.read("host_file", items)
    assert read.diagnostics == []
    assert read.states == {a: (None if a == "f1" else s) for a, _, s in items}
    assert len(lab.conns["h1"].runs) == 2  # the batched script, then the per-path one
    assert _started(log).count("stat") == 1 + 3


HASH = "\\" + "a" * 64 + "  /tmp/a\\\\b"  # GNU escapes the name a\b: a\\b, "\\" first


@pytest.mark.parametrize(
    ("reply", "count"),
    [
        # A dir's stat failed (removed after the first pass): one line short.
        (f"0 dir\n1 file\n--stat\nroot 0 root 0 755\n--sha256\n{HASH}\n", 2),
        # The file vanished before sha256sum.
        ("0 dir\n1 file\n--stat\nroot 0 root 0 755\nroot 0 root 0 644\n--sha256\n", 2),
        # busybox: a name holding a newline spills onto a line of its own,
        # and the next file vanished: the count is right, the lines are not.
        ("0 file\n1 file\n--stat\nr 0 r 0 644\nr 0 r 0 644\n--sha256\n" + HASH + "\nb\n", 2),
        # Not a line of stat -c (an error message on standard output).
        ("0 dir\n--stat\nstat: cannot stat '/d'\n--sha256\n", 1),
    ],
    ids=["stat-short", "sha256-short", "busybox-newline", "stat-error"],
)
def test_a_batched_reply_that_does_not_line_up_is_not_guessed(reply: str, count: int) -> None:
    assert _shell.parse_stat(reply, count) is None
    # One whose lines do line up maps.
    good = f"0 dir\n1 file\n--stat\nr 0 r 0 755\nr 0 r 0 644\n--sha256\n{HASH}\n"
    assert _shell.parse_stat(good, 2) == [
        _shell.Stat("dir", "r", "0", "r", "0", "0755"),
        _shell.Stat("file", "r", "0", "r", "0", "0644", "a" * 64),
    ]


def test_the_reader_asks_path_by_path_when_the_batched_reply_does_not_line_up(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = _fifty(lab)[:25]
    conn = lab.conns["h1"]
    run = conn.run
    scripts: list[bytes] = []

    def racy(command: Any, *, stdin: bytes | None = None, **kw: Any) -> CommandResult:
        scripts.append(stdin or b"")
        result = run(command, stdin=stdin, **kw)
        if b"--sha256" not in (stdin or b""):
            return result
        # As if the last file had gone before sha256sum ran.
        cut = result.stdout.rstrip(b"\n").rsplit(b"\n", 1)[0] + b"\n"
        return CommandResult(result.exit_code, cut, result.stderr)

    monkeypatch.setattr(conn, "run", racy)
    lab.reset()
    read = lab.read("host_file", items)
    assert read.diagnostics == [] and all(read.states[a] == s for a, _, s in items)
    assert len(scripts) == 2
    assert b"--sha256" in scripts[0] and b'sha256sum < "$p"' in scripts[1]


@pytest.mark.skipif(not shutil.which("busybox"), reason="busybox is not installed")
def test_the_batched_stat_script_runs_on_busybox(tmp_path: Path) -> None:
    applets = tmp_path / "busybox"
    applets.mkdir()
    for name in ("stat", "sha256sum"):
        (applets / name).symlink_to(shutil.which("busybox"))  # type: ignore[arg-type]
    root = tmp_path / "zoo"
    root.mkdir()
    paths = _zoo(root)
    want = [_expected(root / p) for p in paths]
    shell = ("busybox", "sh")
    each = _sh(_shell.stat_each_script(paths), cwd=root, path=[applets], shell=shell)
    assert _shell.parse_stat_each(each, len(paths)) == want
    # busybox's sha256sum does not escape a newline in a name: the reply cannot be
    # matched to the paths, and the caller asks path by path.
    batched = _sh(_shell.stat_script(paths), cwd=root, path=[applets], shell=shell)
    assert _shell.parse_stat(batched, len(paths)) is None
    plain = [p for p in paths if "\n" not in p]
    batched = _sh(_shell.stat_script(plain), cwd=root, path=[applets], shell=shell)
    assert _shell.parse_stat(batched, len(plain)) == [_expected(root / p) for p in plain]


# ---- host_sysctl --------------------------------------------------------------------


@pytest.fixture
def sysctl_lab(lab: Lab) -> Lab:
    """The provider's host_sysctl pointed at a fake /proc/sys per test (never the machine's)."""
    kind = lab.p._types["host_sysctl"]
    kind.proc_sys = str(lab.tmp / "proc")  # type: ignore[attr-defined]
    kind.persist_dir = str(lab.tmp / "sysctl.d")  # type: ignore[attr-defined]
    for name, value in (
        ("net/ipv4/ip_nonlocal_bind", "0"),
        ("net/ipv4/tcp_rmem", "4096\t131072\t6291456"),
    ):
        path = lab.tmp / "proc" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
    return lab


def test_sysctl_sets_the_value_and_persists_it(sysctl_lab: Lab) -> None:
    lab = sysctl_lab
    state = lab.create("host_sysctl", "h1", {"name": "net.ipv4.ip_nonlocal_bind", "value": 1})
    assert state["value"] == "1" and state["persist"] is True
    assert (lab.tmp / "proc/net/ipv4/ip_nonlocal_bind").read_text() == "1\n"
    conf = (lab.tmp / "sysctl.d/99-kplan-net.ipv4.ip_nonlocal_bind.conf").read_text()
    assert conf.endswith("net.ipv4.ip_nonlocal_bind = 1\n")
    # Refresh: as written, then a value changed by hand is drift.
    (got,) = lab.read("host_sysctl", [("s", "h1", state)]).states.values()
    assert got == state
    (lab.tmp / "proc/net/ipv4/ip_nonlocal_bind").write_text("0\n")
    (got,) = lab.read("host_sysctl", [("s", "h1", state)]).states.values()
    assert got is not None and got["value"] == "0"
    # Destroy removes the boot-time file only.
    assert lab.apply("host_sysctl", "h1", "delete", state, None).new_state is None
    assert not (lab.tmp / "sysctl.d/99-kplan-net.ipv4.ip_nonlocal_bind.conf").exists()


def test_sysctl_whitespace_is_compared_as_one_space(sysctl_lab: Lab) -> None:
    lab = sysctl_lab
    cfg = {"name": "net.ipv4.tcp_rmem", "value": "4096  131072 6291456", "persist": False}
    planned = lab.plan("host_sysctl", "h1", cfg).planned
    assert planned["value"] == "4096 131072 6291456"
    prior = {**planned}
    (got,) = lab.read("host_sysctl", [("s", "h1", prior)]).states.values()
    assert got == prior, "the kernel's tabs read as the configured single spaces"


def test_sysctl_reads_every_parameter_of_a_host_in_one_command(sysctl_lab: Lab) -> None:
    lab = sysctl_lab
    items = [
        (f"s{i}", "h1", {"name": n, "value": "0", "persist": True})
        for i, n in enumerate(["net.ipv4.ip_nonlocal_bind", "net.ipv4.tcp_rmem", "net.ipv4.nope"])
    ]
    lab.reset()
    states = lab.read("host_sysctl", items).states
    assert lab.runs() == 1
    assert states["s2"] is not None and states["s2"]["value"] is None  # no such parameter


def test_sysctl_refuses_what_the_kernel_lacks_and_bad_input(sysctl_lab: Lab) -> None:
    lab = sysctl_lab
    planned = lab.plan("host_sysctl", "h1", {"name": "net.ipv4.nope", "value": "1"}).planned
    resp = lab.apply("host_sysctl", "h1", "create", None, planned)
    assert codes(resp.diagnostics) == ["sysctl-failed"]
    assert "no parameter net.ipv4.nope" in resp.diagnostics[0].detail
    assert codes(lab.validate("host_sysctl", {"name": "net ipv4", "value": "1"})) == [
        "invalid-sysctl-name"
    ]
    assert codes(lab.validate("host_sysctl", {"name": "a.b", "value": True})) == [
        "invalid-sysctl-value"
    ]
    assert codes(lab.validate("host_sysctl", {"name": "a.b", "value": "1\n2"})) == [
        "invalid-sysctl-value"
    ]
