"""The host provider through the real CLI, on a `connection: local` host.

The files live in a temporary directory; the root module is written by the
test (its absolute paths depend on tmp_path). Apply, a no-change plan, drift
by hand (content, mode, a deleted file, the /etc/hosts block) shown and
repaired, secrets kept out of the plan, the hosts file edited in place.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import run_kplan

pytestmark = pytest.mark.e2e

TEMPLATE = """\
[DEFAULT]
debug = {{ debug | lower }}
{% for name in backends %}
[backend_{{ name }}]
url = http://{{ name }}:{{ port }}/
{% endfor %}
[database]
password = {{ password }}
"""

FOREIGN = "127.0.0.1 localhost\n# added by the image\n10.9.9.9 elsewhere\n"


def _module(root: Path, out: Path, debug: bool = False) -> None:
    root.mkdir(exist_ok=True)
    (root / "keystone.conf.j2").write_text(TEMPLATE)
    (root / "main.kp.yaml").write_text(
        f"""\
variables:
  debug: {{type: bool, default: {str(debug).lower()}}}
hosts:
  local: {{connection: local}}
resources:
  secret_password.db: {{length: 20}}
  host_directory.kolla:
    host: local
    path: {out}/etc/kolla/keystone
    mode: "0750"
  host_file.conf:
    host: local
    path: ${{host_directory.kolla.path}}/keystone.conf
    mode: "0640"
    template: ${{file("keystone.conf.j2")}}
    vars:
      debug: ${{var.debug}}
      port: 5000
      backends: [alpha, beta]
      password: ${{secret_password.db.value}}
  host_file.motd:
    host: local
    path: {out}/motd
    content: "welcome\\n"
  host_etc_hosts.all:
    host: local
    path: {out}/hosts
    entries: {{ctl1: 10.0.0.11, ctl2: 10.0.0.12}}
"""
    )


def _changes(root: Path) -> dict[str, list[str]]:
    proc = run_kplan(root, "plan", "-json", check=True)
    plan: dict[str, Any] = json.loads(proc.stdout)
    return {
        rc["address"]: rc["change"]["actions"]
        for rc in plan["resource_changes"]
        if rc["change"]["actions"] != ["no-op"]
    }


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    root, out = tmp_path / "root", tmp_path / "out"
    out.mkdir()
    (out / "hosts").write_text(FOREIGN)
    _module(root, out)
    run_kplan(root, "init", check=True)
    return root, out


def test_apply_then_no_change(setup: tuple[Path, Path]) -> None:
    root, out = setup
    first = run_kplan(root, "plan", check=True).stdout
    assert "Plan: 5 to add, 0 to change, 0 to restart, 0 to destroy." in first
    assert "# on host local" in first or "host local" in first
    run_kplan(root, "apply", "-auto-approve", check=True)

    conf = out / "etc/kolla/keystone/keystone.conf"
    text = conf.read_text()
    assert "debug = false" in text and "url = http://beta:5000/" in text
    password = text.rsplit("password = ", 1)[1].strip()
    assert len(password) == 20
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640
    assert stat.S_IMODE(conf.parent.stat().st_mode) == 0o750
    assert (out / "hosts").read_text() == (
        FOREIGN + "# BEGIN kplan managed hosts\n10.0.0.11 ctl1\n10.0.0.12 ctl2\n"
        "# END kplan managed hosts\n"
    )
    # The password is in no plan and not in the state file in clear text.
    again = run_kplan(root, "plan", "-detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes." in again.stdout
    for state_file in root.glob(".kplan/**/*"):
        if state_file.is_file():
            assert password.encode() not in state_file.read_bytes(), state_file


def test_a_template_change_shows_a_masked_line_diff(setup: tuple[Path, Path]) -> None:
    root, out = setup
    run_kplan(root, "apply", "-auto-approve", check=True)
    password = (out / "etc/kolla/keystone/keystone.conf").read_text().rsplit("= ", 1)[1].strip()
    plan = run_kplan(root, "plan", "-var", "debug=true", check=True).stdout
    assert "host_file.conf will be updated in-place" in plan
    assert "debug = true" in plan and "debug = false" in plan
    assert "content        = (sensitive value)" in plan
    assert password not in plan
    assert "Plan: 0 to add, 1 to change" in plan
    as_json = run_kplan(root, "plan", "-json", "-var", "debug=true", check=True).stdout
    assert password not in as_json
    (conf,) = [
        rc for rc in json.loads(as_json)["resource_changes"] if rc["address"] == "host_file.conf"
    ]
    masked = conf["change"]["after"]["content_masked"]
    assert "debug = true\n" in masked and "password = (sensitive)\n" in masked


def test_drift_by_hand_is_shown_and_repaired(setup: tuple[Path, Path]) -> None:
    root, out = setup
    run_kplan(root, "apply", "-auto-approve", check=True)
    motd = out / "motd"
    motd.write_text("edited by hand\n")
    conf = out / "etc/kolla/keystone/keystone.conf"
    conf.chmod(0o644)
    password = conf.read_text().rsplit("password = ", 1)[1].strip()
    conf.write_text(conf.read_text().replace("debug = false", "debug = true"))
    hosts = out / "hosts"
    inode = hosts.stat().st_ino
    hosts.write_text(hosts.read_text().replace("10.0.0.12 ctl2", "10.0.0.99 ctl2"))

    plan = run_kplan(root, "plan", check=True).stdout
    assert "Objects have changed outside of kplan" in plan
    assert "content changed outside kplan; restoring it" in plan
    assert "mode changed outside kplan; restoring it" in plan
    assert "entries changed outside kplan; restoring it" in plan
    assert "-" in plan and "edited by hand" in plan  # the line diff of the file
    # The file with a secret in it: a line diff all the same, the secret masked.
    assert "- debug = true" in plan and "+ debug = false" in plan
    assert password not in plan
    assert _changes(root) == {
        "host_file.motd": ["update"],
        "host_file.conf": ["update"],
        "host_etc_hosts.all": ["update"],
    }

    run_kplan(root, "apply", "-auto-approve", check=True)
    assert motd.read_text() == "welcome\n"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640
    assert "10.0.0.12 ctl2" in hosts.read_text() and hosts.read_text().startswith(FOREIGN)
    assert hosts.stat().st_ino == inode
    assert _changes(root) == {}

    motd.unlink()
    assert _changes(root) == {"host_file.motd": ["create"]}


def test_destroy_keeps_foreign_lines_and_a_non_empty_directory(setup: tuple[Path, Path]) -> None:
    root, out = setup
    run_kplan(root, "apply", "-auto-approve", check=True)
    (out / "etc/kolla/keystone/extra.log").write_text("written by a service\n")
    run_kplan(root, "destroy", "-auto-approve", check=True)
    assert (out / "hosts").read_text() == FOREIGN
    assert not (out / "motd").exists()
    assert not (out / "etc/kolla/keystone/keystone.conf").exists()
    assert (out / "etc/kolla/keystone/extra.log").exists()
    assert run_kplan(root, "state", "list", check=True).stdout.split() == []


def test_destroy_warns_about_a_directory_left_in_place(setup: tuple[Path, Path]) -> None:
    root, out = setup
    run_kplan(root, "apply", "-auto-approve", check=True)
    (out / "etc/kolla/keystone/extra.log").write_text("written by a service\n")
    proc = run_kplan(root, "destroy", "-auto-approve", check=True)
    assert "is not empty: left in place" in proc.stdout + proc.stderr
