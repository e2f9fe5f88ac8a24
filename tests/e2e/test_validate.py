"""``kplan validate`` reports what ``plan`` would, with no state and no host contacted."""

from __future__ import annotations

import json
import socket
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import run_kplan

pytestmark = pytest.mark.e2e


def module(root: Path, **files: str) -> Path:
    for name, text in files.items():
        path = root / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def errors(proc) -> list[str]:
    """Each error as "summary @ position"."""
    out = []
    lines = proc.stderr.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Error: "):
            where = lines[i + 1].strip() if i + 1 < len(lines) else ""
            out.append(f"{line[7:]} @ {where.removeprefix('on ')}")
    return out


def test_a_misspelt_attribute_is_an_error_with_its_place_and_the_expected_names(
    tmp_path: Path,
) -> None:
    root = module(
        tmp_path,
        **{
            "main.kp.yaml": """
            resources:
              local_file.a:
                path: out/a
                contnet: hello
            """
        },
    )
    proc = run_kplan(root, "validate")
    assert proc.returncode == 1
    assert "Success" not in proc.stdout
    assert errors(proc) == [
        'missing required attribute "content" for local_file @ main.kp.yaml:4:5',
        'unsupported attribute "contnet" for local_file @ main.kp.yaml:5:14',
    ]
    assert 'did you mean "content"? expected one of: content, mode, path' in proc.stderr
    assert "Traceback" not in proc.stderr
    # The same errors, in the same words, as plan gives.
    plan = run_kplan(root, "plan")
    assert plan.returncode == 1
    assert sorted(errors(plan)) == errors(proc)


@pytest.mark.parametrize(
    ("resources", "want"),
    [
        (
            "nosuch_thing.x: {a: 1}",
            'unknown resource type "nosuch_thing" @ main.kp.yaml:3:3',
        ),
        (
            "local_file.a: {path: out/a}",
            'missing required attribute "content" for local_file @ main.kp.yaml:3:17',
        ),
        (
            "time_sleep.t: {create_duration: 5}",
            'attribute "create_duration" of time_sleep must be a string @ main.kp.yaml:3:35',
        ),
        (
            "local_file.a: {path: out/a, content: x, lifecycle: {prevent_destory: true}}",
            "resources.local_file.a.prevent_destory: unknown attribute; "
            'did you mean "prevent_destroy"? expected one of: '
            "ignore_changes, prevent_destroy, replace_on, restart_on, rolling "
            "@ main.kp.yaml:3:55",
        ),
        (
            'null_resource.n: {restart_on: ["module.db.local_file.x"]}',
            'resources.null_resource.n.restart_on[0]: invalid trigger "module.db.local_file.x" '
            "@ main.kp.yaml:3:34",
        ),
    ],
    ids=["unknown type", "missing attribute", "wrong type", "lifecycle key", "trigger"],
)
def test_each_kind_of_error(tmp_path: Path, resources: str, want: str) -> None:
    root = module(tmp_path, **{"main.kp.yaml": f"\nresources:\n  {resources}\n"})
    proc = run_kplan(root, "validate")
    assert proc.returncode == 1, proc.stdout
    assert errors(proc) == [want]


def test_every_error_is_reported_not_only_the_first(tmp_path: Path) -> None:
    root = module(
        tmp_path,
        **{
            "a.kp.yaml": """
            resources:
              local_file.a:
                for_each: {x: 1, y: 2}
                path: out/${each.key}
                content: hi
                mdoe: "0644"
            """,
            "b.kp.yaml": """
            resources:
              time_sleep.t: {create_duration: 5}
              nosuch_thing.x: {}
            """,
        },
    )
    proc = run_kplan(root, "validate")
    assert proc.returncode == 1
    assert errors(proc) == [
        # Said once, though both instances of local_file.a have it.
        'unsupported attribute "mdoe" for local_file @ a.kp.yaml:7:11',
        'attribute "create_duration" of time_sleep must be a string @ b.kp.yaml:3:35',
        'unknown resource type "nosuch_thing" @ b.kp.yaml:4:3',
    ]


def test_values_known_only_later_pass(tmp_path: Path) -> None:
    """Other resources' attributes, variables, and for_each / count over them are unknown:
    the blocks (and modules) are checked once with each.* and count.index unknown."""
    root = module(
        tmp_path,
        **{
            "main.kp.yaml": """
            variables:
              names: {type: list(string)}
              copies: {type: number}
            resources:
              secret_password.p: {length: 16}
              local_file.a:
                path: out/a
                content: ${secret_password.p.value}
              local_file.b:
                for_each: ${toset(var.names)}
                path: out/${each.key}
                content: ${local_file.a.sha256}
              local_file.c:
                count: ${var.copies}
                path: out/c${count.index}
                content: ${local_file.b[var.names[0]].sha256}
                restart_on: ["local_file.b"]
              local_file.d:
                for_each: ${local_file.b}
                path: out/d-${each.key}
                content: ${each.value.sha256}
                mode: ${module.per_name["x"].mode}
            modules:
              per_name:
                source: ./per_name
                for_each: ${toset(var.names)}
                inputs: {name: "${each.key}"}
            """,
            "per_name__main.kp.yaml": """
            variables:
              name: {type: string}
            resources:
              local_file.f: {path: "out/${var.name}", content: "${var.name}"}
            outputs:
              mode: {value: "0644"}
            """,
        },
    )
    proc = run_kplan(root, "validate")
    assert proc.returncode == 0, proc.stderr
    assert "Success! The configuration is valid." in proc.stdout
    assert not (root / ".kplan").exists()  # no state was made


def test_an_unknown_for_each_still_checks_the_block(tmp_path: Path) -> None:
    root = module(
        tmp_path,
        **{
            "main.kp.yaml": """
            variables:
              names: {type: list(string)}
            resources:
              local_file.b:
                for_each: ${toset(var.names)}
                path: out/${each.key}
                content: ${each.value}
                size: 3
            """
        },
    )
    proc = run_kplan(root, "validate")
    assert errors(proc) == ['unsupported attribute "size" for local_file @ main.kp.yaml:9:11']


@pytest.fixture
def silent_port() -> Iterator[socket.socket]:
    """A loopback port that listens and never answers: any connection would queue here."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        s.setblocking(False)
        yield s


def _connections(s: socket.socket) -> int:
    n = 0
    while True:
        try:
            conn, _ = s.accept()
        except BlockingIOError:
            return n
        conn.close()
        n += 1


def test_hosts_are_never_contacted(tmp_path: Path, silent_port: socket.socket) -> None:
    port = silent_port.getsockname()[1]
    root = module(
        tmp_path,
        **{
            "main.kp.yaml": f"""
            hosts:
              ctl1: {{address: 127.0.0.1, port: {port}, groups: [control]}}
              ctl2: {{address: 127.0.0.1, port: {port}, groups: [control]}}
            modules:
              svc:
                source: ./svc
                hosts: ${{groups.control}}
                inputs: {{image: "img:1"}}
            """,
            "svc__main.kp.yaml": """
            variables:
              image: {type: string}
            resources:
              host_directory.conf:
                for_each: ${hosts}
                host: ${each.key}
                path: /etc/kolla/svc
              host_file.conf:
                for_each: ${hosts}
                host: ${each.key}
                path: ${host_directory.conf[each.key].path}/svc.conf
                content: "listen ${host[each.key].address}"
              docker_container.svc:
                for_each: ${hosts}
                host: ${each.key}
                name: svc
                image: ${var.image}
                restart_on: ["host_file.conf[each.key].sha256"]
            """,
        },
    )
    started = time.monotonic()
    proc = run_kplan(root, "validate")
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert "Success! The configuration is valid." in proc.stdout
    assert "connect" not in proc.stderr.lower() and "unreachable" not in proc.stderr.lower()
    assert _connections(silent_port) == 0
    assert elapsed < 30  # an SSH attempt to a silent port would wait for its timeout
    # plan does contact them: the same module is valid, the host is what fails.
    (root / "svc/main.kp.yaml").write_text(
        (root / "svc/main.kp.yaml").read_text().replace("name: svc", "name: svc\n    nmae: x")
    )
    proc = run_kplan(root, "validate")
    assert errors(proc) == [
        'unsupported attribute "nmae" for docker_container @ svc/main.kp.yaml:18:11'
    ]
    assert _connections(silent_port) == 0


def test_json_carries_the_provider_checks(tmp_path: Path) -> None:
    root = module(
        tmp_path, **{"main.kp.yaml": "resources:\n  local_file.a:\n    path: a\n    contnet: x\n"}
    )
    proc = run_kplan(root, "validate", "-json")
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["valid"] is False and doc["error_count"] == 2
    found = {(d["code"], d["range"]["start"]["line"]) for d in doc["diagnostics"]}
    assert found == {("missing-attribute", 3), ("unsupported-attribute", 4)}


@pytest.mark.parametrize(
    ("content", "col"),
    [("echo ${HOME}", 19), ('"echo ${HOME}"', 20), ("'echo ${HOME}'", 20)],
    ids=["plain", "double-quoted", "single-quoted"],
)
def test_an_expression_error_points_at_its_dollar_in_quoted_strings_too(
    tmp_path: Path, content: str, col: int
) -> None:
    # "    content: " is 13 columns: the text starts at 14, or at 15 past a quote.
    main = f"resources:\n  local_file.a:\n    path: out/a\n    content: {content}\n"
    (tmp_path / "main.kp.yaml").write_text(main)
    proc = run_kplan(tmp_path, "validate")
    assert errors(proc) == [f'"HOME" is not a valid reference @ main.kp.yaml:4:{col}']
    assert main.splitlines()[3][col - 1 :].startswith("${HOME}")
    rng = json.loads(run_kplan(tmp_path, "validate", "-json").stdout)["diagnostics"][0]["range"]
    assert (rng["start"]["column"], rng["end"]["column"]) == (col, col + len("${HOME}"))


def test_a_misspelt_resource_type_gets_a_suggestion(tmp_path: Path) -> None:
    (tmp_path / "main.kp.yaml").write_text("resources:\n  local_fil.a: {path: a, content: x}\n")
    for command in ("validate", "plan"):
        proc = run_kplan(tmp_path, command)
        assert errors(proc) == ['unknown resource type "local_fil" @ main.kp.yaml:2:3']
        assert 'did you mean "local_file"? installed providers serve: ' in proc.stderr
