"""Loading module folders: the full fixture, nested modules, and every error with its place."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from kplan.config.loader import default_catalog_dir, load_module
from kplan.config.model import MISSING, ModuleConfig
from kplan.config.yamlpos import MAX_DEPTH, parse_yaml
from kplan.diagnostics import Diagnostics, SourcePos

FIXTURES = Path(__file__).parents[1] / "fixtures" / "loader"


@pytest.fixture
def in_fixtures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)


def load_full() -> ModuleConfig:
    cfg, diags = load_module("full", catalog_dir="catalog")
    assert not diags.items, [str(d) for d in diags]
    assert cfg is not None
    return cfg


def write_module(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def errors_of(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str]) -> list[str]:
    """Load the module ``mod`` made of ``files`` and return its diagnostics as text."""
    write_module(tmp_path / "mod", files)
    monkeypatch.chdir(tmp_path)
    cfg, diags = load_module("mod", catalog_dir="catalog")
    if diags.has_errors:
        assert cfg is None
    return [str(d) for d in diags]


# -- the full fixture ------------------------------------------------------------------


def test_full_files_and_settings(in_fixtures: None) -> None:
    cfg = load_full()
    assert cfg.dir == str(FIXTURES / "full")
    assert cfg.files == ("full/main.kp.yaml", "full/resources.kp.yaml")
    assert cfg.settings.required_version == ">=0.1, <99"
    assert cfg.settings.backend == {"type": "sqlite", "path": "state.db"}
    assert cfg.settings.pos == SourcePos("full/main.kp.yaml", 3, 3)


def test_full_variables(in_fixtures: None) -> None:
    v = load_full().variables
    assert list(v) == ["release", "ports", "db_password", "tls", "limits"]
    assert v["release"].default == "zed" and v["release"].type == "string"
    assert v["ports"].default == [80, 443]  # converted to list(number)
    assert v["ports"].description == "Ports to open"
    assert v["db_password"].default is MISSING and v["db_password"].required
    assert v["db_password"].sensitive
    (check,) = v["db_password"].validations
    assert check.condition == "${ length(var.db_password) >= 12 }"
    assert check.error_message == "at least 12 characters"
    assert check.pos == SourcePos("full/main.kp.yaml", 16, 18)
    assert [c.error_message for c in v["tls"].validations] == ["zed needs TLS"]
    assert v["limits"].default == {"cpu": 2, "memory": "4g"}  # extra attribute dropped
    assert v["ports"].pos == SourcePos("full/main.kp.yaml", 8, 3)


def test_full_locals_hosts_groups(in_fixtures: None) -> None:
    cfg = load_full()
    assert cfg.locals["image"].value == "registry:5000/keystone:${var.release}"
    assert cfg.locals["common"].value == {"restart": "unless-stopped"}
    assert cfg.locals["common"].pos.at(("restart",)) == SourcePos("full/main.kp.yaml", 32, 14)
    ctl1, cmp1, aio = cfg.hosts.values()
    assert (ctl1.address, ctl1.connection, ctl1.port, ctl1.user) == ("10.231.0.11", "ssh", 22, None)
    assert (cmp1.user, cmp1.port, cmp1.groups) == ("kolla", 2222, ("compute",))
    assert (aio.address, aio.connection, aio.vars) == ("127.0.0.1", "local", {"interface": "eth0"})
    assert cfg.groups == {
        "control": ("ctl1", "aio"),
        "compute": ("cmp1",),
        "everything": ("ctl1", "cmp1"),  # declaration order, not the order listed
    }


def test_full_modules(in_fixtures: None) -> None:
    cfg = load_full()
    web, db = cfg.modules["web"], cfg.modules["db"]
    assert web.source == "kplan/web" and web.inputs == {"port": 8080}
    assert web.hosts == "${groups.control}"
    assert web.module.dir == str(FIXTURES / "catalog" / "web")
    assert web.module.files == ("catalog/web/main.kp.yaml",)
    assert web.positions.at(("inputs", "port")) == SourcePos("full/main.kp.yaml", 49, 20)
    assert db.count == 2 and db.depends_on == ("module.web",)
    assert db.module.dir == str(FIXTURES / "nested" / "modules" / "db")
    assert db.pos == SourcePos("full/main.kp.yaml", 50, 3)


def test_full_resources(in_fixtures: None) -> None:
    res = load_full().resources
    assert list(res) == [
        ("local_file", "conf"),
        ("docker_container", "keystone"),
        ("secret_password", "db"),
    ]
    conf = res[("local_file", "conf")]
    assert conf.config == {
        "path": "${local.conf_dir}/keystone.conf",
        "content": "[DEFAULT]\ndebug = false\n",
    }
    assert conf.for_each == "${groups.control}" and conf.host == "${each.key}"
    assert conf.count is None
    assert conf.pos == SourcePos("full/resources.kp.yaml", 2, 3)
    assert conf.positions.at(("content",)) == SourcePos("full/resources.kp.yaml", 4, 14)
    ks = res[("docker_container", "keystone")]
    assert ks.config == {"image": "${local.image}", "ports": [5000, 35357]}
    assert ks.depends_on == ("local_file.conf",)
    lc = ks.lifecycle
    assert lc.restart_on == ("local_file.conf", "local_file.conf.content")
    assert lc.replace_on == ("secret_password.db",)
    assert lc.rolling == {"serial": 1}
    assert lc.prevent_destroy is True and lc.ignore_changes == ("labels",)
    assert ks.positions.at(("ports", 1)) == SourcePos("full/resources.kp.yaml", 11, 19)


def test_full_outputs(in_fixtures: None) -> None:
    out = load_full().outputs
    assert out["auth_url"].value == "http://${host.ctl1.address}:5000"
    assert out["auth_url"].description == "Keystone endpoint"
    assert out["password"].sensitive is True
    assert out["ports"].value == "${var.ports}"  # the short form
    assert out["ports"].pos.at(("value",)) == SourcePos("full/resources.kp.yaml", 28, 10)
    assert out["auth_url"].pos.at(("value",)) == SourcePos("full/resources.kp.yaml", 23, 12)


def test_nested_modules(in_fixtures: None) -> None:
    cfg, diags = load_module("nested/root")
    assert not diags.items and cfg is not None
    app = cfg.modules["app"]
    assert app.inputs == {"name": "demo"}
    db = app.module.modules["db"]
    assert db.inputs == {"owner": "${var.name}"}
    assert db.module.files == ("nested/modules/db/main.kp.yaml",)
    assert db.module.variables["owner"].default == "nobody"
    assert db.module.outputs["url"].value == "mysql://db/${var.owner}"


def test_recursive_modules_show_the_chain(in_fixtures: None) -> None:
    cfg, diags = load_module("recursive/a")
    assert cfg is None
    (d,) = diags
    assert d.code == "module-recursion"
    assert d.pos == SourcePos("recursive/b/main.kp.yaml", 2, 15)
    assert "recursive/a → recursive/b → recursive/a" in d.detail


def test_default_catalog_is_the_repository_modules_folder() -> None:
    assert default_catalog_dir() == str(Path(__file__).resolve().parents[2] / "modules")


def test_same_module_called_twice_is_loaded_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_module(
        tmp_path / "mod", {"main.kp.yaml": "modules: {a: {source: ../c}, b: {source: ../c}}"}
    )
    write_module(tmp_path / "c", {"main.kp.yaml": "outputs: {x: 1}"})
    monkeypatch.chdir(tmp_path)
    cfg, diags = load_module("mod")
    assert cfg is not None and not diags.items
    assert cfg.modules["a"].module is cfg.modules["b"].module


# -- errors, each with its place ----------------------------------------------------------


ERROR_CASES: list[tuple[str, dict[str, str], list[str]]] = [
    (
        "yaml syntax",
        {"main.kp.yaml": "variables:\n  a: [1, 2\nlocals: {}\n"},
        ["mod/main.kp.yaml:3:7: invalid YAML: did not find expected ',' or ']'"],
    ),
    (
        "unquoted ${} in a flow mapping",
        {"main.kp.yaml": "modules:\n  web:\n    source: ./web\n    inputs: {host: ${each.key}}\n"},
        ["mod/main.kp.yaml:4:20: a ${...} value inside a YAML flow mapping {...} must be quoted"],
    ),
    (
        "unquoted ${} in a flow sequence",
        {"main.kp.yaml": "locals:\n  l: [a, pre-${var.x}]\n"},
        ["mod/main.kp.yaml:2:10: a ${...} item inside a YAML flow sequence [...] must be quoted"],
    ),
    (
        "unquoted ${} at the start of a plain value",
        {"main.kp.yaml": 'locals:\n  m: ${ {"port": 80} }\n'},
        ["mod/main.kp.yaml:2:6: a value holding ${...} must be quoted here"],
    ),
    (
        "unquoted ${} cut short by a # that YAML takes for a comment",
        {"main.kp.yaml": 'locals:\n  m: ${ "a #b" }\n  n: ${ "c" } # a comment\n'},
        ["mod/main.kp.yaml:2:6: a value holding ${...} must be quoted here"],
    ),
    (
        "duplicate key in a file",
        {"main.kp.yaml": "locals:\n  a: 1\n  a: 2\n"},
        ["mod/main.kp.yaml:3:3: duplicate key 'a': 'a' is first written at mod/main.kp.yaml:2:3"],
    ),
    (
        "same entry in two files",
        {"a.kp.yaml": "locals:\n  x: 1\n", "b.kp.yaml": "\nlocals:\n  x: 2\n"},
        ["mod/b.kp.yaml:3:3: locals.x is declared twice: first declared at mod/a.kp.yaml:2:3"],
    ),
    (
        "unknown top-level key",
        {"main.kp.yaml": "locals: {}\nresource:\n  a.b: {}\n"},
        [
            "mod/main.kp.yaml:2:1: unknown top-level key 'resource': did you mean \"resources\"? "
            "expected one of: kplan, "
            "variables, locals, hosts, groups, modules, resources, outputs"
        ],
    ),
    (
        "invalid variable type",
        {"main.kp.yaml": "variables:\n  port: {type: integer}\n"},
        [
            "mod/main.kp.yaml:2:16: variables.port.type: expected one of string, number, bool, "
            "list(T), set(T), map(T), object({...}), any: expected a type (string, number, bool, "
            "list(T), set(T), map(T), object({...}), any) but found 'integer' in 'integer'"
        ],
    ),
    (
        "unknown variable attribute",
        {"main.kp.yaml": "variables:\n  port:\n    type: number\n    defualt: 5\n"},
        [
            "mod/main.kp.yaml:4:5: variables.port.defualt: unknown attribute; "
            'did you mean "default"? expected one of: '
            "default, description, sensitive, type, validation"
        ],
    ),
    (
        "default of the wrong type",
        {"main.kp.yaml": "variables:\n  port: {type: number, default: eighty}\n"},
        ['mod/main.kp.yaml:2:33: variables.port.default: expected number, got string "eighty"'],
    ),
    (
        "validation without its message",
        {"main.kp.yaml": "variables:\n  p:\n    validation:\n      - condition: x\n"},
        [
            "mod/main.kp.yaml:4:9: variables.p.validation[0].error_message: "
            "required attribute is missing"
        ],
    ),
    (
        "ssh host without address",
        {"main.kp.yaml": "hosts:\n  ctl1:\n    user: root\n"},
        [
            "mod/main.kp.yaml:3:5: hosts.ctl1.address: required attribute is missing: "
            "every ssh host needs an address; a host run on this machine sets connection: local"
        ],
    ),
    (
        "bad connection and port",
        {"main.kp.yaml": "hosts:\n  h: {address: a, connection: winrm, port: '22'}\n"},
        [
            "mod/main.kp.yaml:2:31: hosts.h.connection: expected 'ssh' or 'local', got string "
            '"winrm"',
            'mod/main.kp.yaml:2:44: hosts.h.port: expected a whole number, got string "22"',
        ],
    ),
    (
        "a port out of range, and groups that are not names",
        {"main.kp.yaml": "hosts:\n  h: {address: a, port: 0, groups: [web, 3]}\n"},
        [
            "mod/main.kp.yaml:2:42: hosts.h.groups[1]: expected a string, got number 3",
            "mod/main.kp.yaml:2:25: hosts.h.port: expected greater than or equal to 1, "
            "got number 0",
        ],
    ),
    (
        "unknown host in a group",
        {"main.kp.yaml": "hosts:\n  a: {address: x}\ngroups:\n  web: [a, b]\n"},
        [
            "mod/main.kp.yaml:4:12: groups.web[1]: unknown host 'b': every member of a group is "
            "declared under hosts:"
        ],
    ),
    (
        "bad resource key",
        {"main.kp.yaml": "resources:\n  LocalFile.x: {}\n  justname: {}\n"},
        [
            "mod/main.kp.yaml:2:3: invalid resource key 'LocalFile.x'",
            "mod/main.kp.yaml:3:3: invalid resource key 'justname'",
        ],
    ),
    (
        "count and for_each",
        {"main.kp.yaml": "resources:\n  a.b:\n    for_each: [1]\n    count: 2\n"},
        ["mod/main.kp.yaml:4:5: resources.a.b: for_each and count cannot both be set"],
    ),
    (
        "provider meta-argument",
        {"main.kp.yaml": "resources:\n  a.b: {provider: docker}\n"},
        ["mod/main.kp.yaml:2:9: resources.a.b: the provider meta-argument is not supported"],
    ),
    (
        "bad references",
        {"main.kp.yaml": "resources:\n  a.b: {restart_on: [nodot], depends_on: ['${x.y}', 5]}\n"},
        [
            'mod/main.kp.yaml:2:22: resources.a.b.restart_on[0]: invalid trigger "nodot"',
            "mod/main.kp.yaml:2:42: resources.a.b.depends_on: expected a list of references",
        ],
    ),
    (
        "lifecycle key written twice",
        {"main.kp.yaml": "resources:\n  a.b:\n    rolling: {}\n    lifecycle: {rolling: {}}\n"},
        [
            "mod/main.kp.yaml:3:5: resources.a.b: rolling is set both in lifecycle and at the "
            "top of the resource"
        ],
    ),
    (
        "bad rolling",
        {
            "main.kp.yaml": "resources:\n  a.b:\n    rolling: {serial: 0}\n"
            "  a.c:\n    lifecycle: {rolling: {serial: '30%', batch: 2}}\n"
            "  a.d:\n    rolling: '101%'\n"
            "  a.e:\n    rolling: {}\n"
            "  a.f:\n    rolling: 1.5\n"
        },
        [
            "mod/main.kp.yaml:3:23: resources.a.b.rolling.serial: expected a whole number ≥ 1, "
            'or a percentage from "1%" to "100%", got number 0',
            "mod/main.kp.yaml:5:42: resources.a.c.rolling.batch: unknown attribute; "
            "expected one of: serial",
            "mod/main.kp.yaml:7:14: resources.a.d.rolling.serial: expected a whole number ≥ 1, "
            'or a percentage from "1%" to "100%", got string "101%"',
            "mod/main.kp.yaml:9:14: resources.a.e.rolling.serial: required attribute is missing",
            "mod/main.kp.yaml:11:14: resources.a.f.rolling.serial: expected a whole number ≥ 1, "
            'or a percentage from "1%" to "100%", got number 1.5',
        ],
    ),
    (
        "bad lifecycle value",
        {"main.kp.yaml": "resources:\n  a.b:\n    lifecycle: {prevent_destroy: maybe}\n"},
        [
            "mod/main.kp.yaml:3:34: resources.a.b.prevent_destroy: expected true or false, "
            'got string "maybe"'
        ],
    ),
    (
        "missing module source folder",
        {"main.kp.yaml": "modules:\n  x:\n    source: ./nowhere\n"},
        ["mod/main.kp.yaml:3:13: module source './nowhere' not found"],
    ),
    (
        "module without source",
        {"main.kp.yaml": "modules:\n  x: {inputs: {}}\n"},
        ["mod/main.kp.yaml:2:6: modules.x.source: required attribute is missing"],
    ),
    (
        "required version not met",
        {"main.kp.yaml": "kplan:\n  required_version: '>= 99.0'\n"},
        ["mod/main.kp.yaml:2:21: this configuration requires kplan >= 99.0"],
    ),
    (
        "invalid version constraint",
        {"main.kp.yaml": "kplan:\n  required_version: '~> 1'\n"},
        ["mod/main.kp.yaml:2:21: kplan.required_version: invalid version constraint '~> 1'"],
    ),
    (
        "bad backend",
        {"main.kp.yaml": "kplan:\n  backend: {type: s3}\n"},
        ["mod/main.kp.yaml:2:19: kplan.backend.type: expected 'sqlite' or 'postgresql'"],
    ),
    (
        "top level not a mapping",
        {"main.kp.yaml": "- variables\n"},
        ["mod/main.kp.yaml:1:1: the top level of a kplan file must be a mapping of sections"],
    ),
    (
        "section not a mapping",
        {"main.kp.yaml": "variables: [a]\n"},
        ["mod/main.kp.yaml:1:12: variables: expected a mapping of NAME: ..., got list"],
    ),
    (
        "bad names",
        {"main.kp.yaml": "locals:\n  1st: x\noutputs:\n  'a b': 1\n"},
        [
            "mod/main.kp.yaml:2:3: invalid name '1st' in locals",
            "mod/main.kp.yaml:4:3: invalid name 'a b' in outputs",
        ],
    ),
    (
        "unsupported tag",
        {"main.kp.yaml": "locals:\n  a: !vault abc\n"},
        ["mod/main.kp.yaml:2:6: unsupported YAML tag !vault"],
    ),
    (
        "not utf-8",
        {"main.kp.yaml": "locals:\n  a: caf\udce9\n"},
        ["mod/main.kp.yaml:2:9: the file is not valid UTF-8"],
    ),
]


@pytest.mark.parametrize(
    ("files", "expected"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_errors_name_file_line_and_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str], expected: list[str]
) -> None:
    for name, text in files.items():
        if "\udce9" in text:  # write real invalid bytes
            (tmp_path / "mod").mkdir(exist_ok=True)
            (tmp_path / "mod" / name).write_bytes(text.encode("utf-8", "surrogateescape"))
            files = {}
    got = errors_of(tmp_path, monkeypatch, files)
    assert len(got) == len(expected), got
    for line, want in zip(got, expected, strict=True):
        assert line.startswith(want), f"{line!r} does not start with {want!r}"


def test_hosts_in_a_child_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_module(tmp_path / "child", {"main.kp.yaml": "hosts:\n  a: {address: x}\n"})
    got = errors_of(tmp_path, monkeypatch, {"main.kp.yaml": "modules: {c: {source: ../child}}\n"})
    assert got == [
        "child/main.kp.yaml:1:1: hosts can be declared only in the root module: a child module "
        "receives its hosts from the caller (the module's hosts: input)"
    ]


def test_empty_folder_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mod").mkdir()
    (tmp_path / "mod" / "notes.yaml").write_text("a: 1\n")
    monkeypatch.chdir(tmp_path)
    cfg, diags = load_module("mod")
    assert cfg is None
    assert [d.summary for d in diags] == ["no *.kp.yaml files in mod"]
    cfg, diags = load_module("missing")
    assert cfg is None and diags.errors[0].code == "module-unreadable"


def test_all_errors_are_reported_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    got = errors_of(
        tmp_path,
        monkeypatch,
        {
            "a.kp.yaml": "variables:\n  x: {type: nope}\nbogus: 1\n",
            "b.kp.yaml": "resources:\n  bad: {}\noutputs:\n  o: {value: 1, extra: 2}\n",
        },
    )
    assert [g.split(": ")[0] for g in got] == [
        "mod/a.kp.yaml:3:1",
        "mod/a.kp.yaml:2:13",
        "mod/b.kp.yaml:2:3",
    ]


def test_output_long_and_short_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_module(
        tmp_path / "mod",
        {"main.kp.yaml": "outputs:\n  a: {value: 1, sensitive: true}\n  b: {x: 1}\n  c: [1]\n"},
    )
    monkeypatch.chdir(tmp_path)
    cfg, _ = load_module("mod")
    assert cfg is not None
    assert (cfg.outputs["a"].value, cfg.outputs["a"].sensitive) == (1, True)
    assert cfg.outputs["b"].value == {"x": 1}
    assert cfg.outputs["c"].pos.at(("value", 0)) == SourcePos("mod/main.kp.yaml", 4, 7)


def test_lifecycle_keys_at_the_top_and_unwrapped_references(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_module(
        tmp_path / "mod",
        {
            "main.kp.yaml": """\
            resources:
              docker_container.x:
                image: a
                restart_on: ["${ local_file.conf }"]
                ignore_changes: [env]
                lifecycle: {replace_on: ['local_file.y["k"].content']}
            """
        },
    )
    monkeypatch.chdir(tmp_path)
    cfg, diags = load_module("mod")
    assert cfg is not None, [str(d) for d in diags]
    res = cfg.resources[("docker_container", "x")]
    assert res.config == {"image": "a"}
    assert res.lifecycle.restart_on == ("local_file.conf",)
    assert res.lifecycle.ignore_changes == ("env",)
    assert res.lifecycle.replace_on == ('local_file.y["k"].content',)


def test_files_as_given_for_an_absolute_folder(tmp_path: Path) -> None:
    write_module(tmp_path / "mod", {"main.kp.yaml": "locals: {a: 1}\n"})
    cfg, _ = load_module(str(tmp_path / "mod"))
    assert cfg is not None
    assert cfg.files == (os.path.join(str(tmp_path), "mod", "main.kp.yaml"),)


# -- YAML with positions -----------------------------------------------------------------


def test_yaml_keys_are_strings_and_timestamps_stay_text() -> None:
    doc, diags = parse_yaml("80: yes\n0x10: 017\nt: 2024-01-01\nn: ~\nf: 1.5\n", "f")
    assert not diags.items
    assert doc.data == {"80": True, "0x10": 15, "t": "2024-01-01", "n": None, "f": 1.5}
    assert doc.keys[("t",)] == SourcePos("f", 3, 1)
    assert doc.values[("t",)] == SourcePos("f", 3, 4)


def test_yaml_anchors_aliases_and_merge_keys() -> None:
    doc, diags = parse_yaml("a: &x {p: 1, q: [1]}\nb:\n  <<: *x\n  p: 2\nc: *x\n", "f")
    assert not diags.items
    assert doc.data == {"a": {"p": 1, "q": [1]}, "b": {"p": 2, "q": [1]}, "c": {"p": 1, "q": [1]}}
    assert doc.data["c"] is not doc.data["a"]  # aliases are copies
    assert doc.values[("c",)] == SourcePos("f", 5, 4)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * (MAX_DEPTH + 5), f"f:1:{MAX_DEPTH + 1}: nesting deeper than {MAX_DEPTH} levels"),
        ("a: *nope\n", "f:1:4: undefined alias *nope"),
        ("--- 1\n--- 2\n", "f:2:1: a kplan file holds one YAML document; found a second one"),
        ("? [a]\n: 1\n", "f:1:3: a mapping key must be a string, not a list or a mapping"),
        ("a: \x01\n", "f:1:4: invalid YAML: control characters are not allowed (character U+0001)"),
        ("a:\n\tb: 1\n", "f:2:1: invalid YAML: found character that cannot start any token"),
        (
            "a: &x [1]\nb:\n  <<: *x\n",
            "f:3:7: the merge key << needs a mapping or a list of mappings",
        ),
    ],
)
def test_yaml_errors(text: str, message: str) -> None:
    doc, diags = parse_yaml(text, "f")
    assert doc.data is None
    assert str(diags.errors[0]).startswith(message), str(diags.errors[0])


def test_yaml_billion_laughs_is_bounded() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    doc, diags = parse_yaml("\n".join(lines), "f")
    assert doc.data is None
    assert "aliases expand to more than" in diags.errors[0].summary


def test_yaml_big_file_loads_whole() -> None:
    # How fast is measured by benchmarks/scale.py (validate of ~100,000 resources).
    lines = ["resources:"]
    for i in range(20_000):
        lines += [
            f"  local_file.f{i}:",
            f"    path: /etc/f{i}.conf",
            f'    content: "${{var.x}} {i}"',
            f"    tags: {{a: {i}, b: [1, 2, 3]}}",
            "    mode: 420",
        ]
    doc, diags = parse_yaml("\n".join(lines), "big")
    assert not diags.items and len(doc.data["resources"]) == 20_000
    assert doc.data["resources"]["local_file.f19999"]["path"] == "/etc/f19999.conf"


def test_diagnostics_type_is_returned() -> None:
    _, diags = load_module(str(FIXTURES / "nested" / "root"))
    assert isinstance(diags, Diagnostics)


def test_rolling_forms(tmp_path: Path) -> None:
    write_module(
        tmp_path,
        {
            "main.kp.yaml": "resources:\n  a.one: {rolling: 1}\n  a.pct: {rolling: ' 30 %'}\n"
            "  a.map: {lifecycle: {rolling: {serial: 2}}}\n  a.none: {}\n"
        },
    )
    cfg, diags = load_module(str(tmp_path))
    assert cfg is not None and not diags.has_errors, [str(d) for d in diags]
    rolling = {n: r.lifecycle.rolling for (_, n), r in cfg.resources.items()}
    assert rolling == {
        "one": {"serial": 1},
        "pct": {"serial": "30%"},
        "map": {"serial": 2},
        "none": None,
    }


@pytest.mark.parametrize(
    ("text", "where", "corrected"),
    [
        ("inputs: {host: ${each.key}}\n", "f:1:16", 'inputs: {host: "${each.key}"}'),
        ("x: {a: 1, b: ${var.b}}  # c\n", "f:1:14", 'x: {a: 1, b: "${var.b}"}  # c'),
        ("x: [${a.b}, ok, ${c}]\n", "f:1:5", 'x: ["${a.b}", ok, "${c}"]'),
        ("x: {\n  a: 1,\n  b: ${var.b}-x,\n}\n", "f:3:6", 'b: "${var.b}-x",'),
        ('x: {a: ${b == "1"}}\n', "f:1:8", "x: {a: '${b == \"1\"}'}"),
        ('x: ${merge(m, {"k": 1})}\n', "f:1:4", "x: '${merge(m, {\"k\": 1})}'"),
    ],
)
def test_yaml_unquoted_expression_says_to_quote_it(text: str, where: str, corrected: str) -> None:
    _, diags = parse_yaml(text, "f")
    (diag,) = diags.errors
    assert diag.code == "yaml-unquoted-expression"
    assert str(diag.pos) == where
    assert diag.detail.splitlines()[-1] == "    " + corrected
    fixed = text.replace(text.splitlines()[int(where.split(":")[1]) - 1].strip(), corrected)
    doc, ok = parse_yaml(fixed, "f")
    assert not ok.items and doc.data is not None  # the corrected line is valid YAML


def test_yaml_error_without_an_expression_keeps_the_yaml_message() -> None:
    _, diags = parse_yaml("x: {a: b: c}\ny: [${ok}\n", "f")
    assert diags.errors[0].code == "yaml-syntax"


def test_a_hash_inside_an_unquoted_expression_gets_the_quoted_line(tmp_path: Path) -> None:
    # YAML parses it without error: ' #b" }' is a comment, the value '${ "a'.
    write_module(tmp_path, {"main.kp.yaml": 'locals:\n  m: ${ "a #b" } # why\n'})
    _, diags = load_module(str(tmp_path))
    (d,) = diags.errors
    assert d.code == "yaml-unquoted-expression"
    assert d.detail.endswith("here a # started a comment.\nQuote it:\n    m: '${ \"a #b\" }' # why")


def test_a_tab_that_breaks_the_yaml_is_named(tmp_path: Path) -> None:
    write_module(tmp_path, {"main.kp.yaml": "locals:\n  \u00e9: 1\n\tb: 2\n"})
    _, diags = load_module(str(tmp_path))
    (d,) = diags.errors
    assert d.pos is not None and (d.pos.line, d.pos.col) == (3, 1)
    assert d.detail.startswith("YAML does not allow a tab here (for indentation, use spaces)")
