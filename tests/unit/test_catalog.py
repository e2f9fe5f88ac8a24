"""``source: kplan/NAME``: the shipped catalog and third-party ones, through entry points.

The catalogs are found as an installed program finds them: entry points of the
``kplan.catalogs`` group naming packages, whose folders come from
importlib.resources. Third-party catalogs are real packages on ``sys.path``
(made in a temp folder); only the entry point list is faked here. The wheel
check (scripts/wheel_check.sh, run by tests/e2e/test_wheel.py) proves the same
from an installed wheel.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from kplan.config import catalog
from kplan.config.loader import default_catalog_dir, load_module
from kplan.diagnostics import SourcePos

REPO = Path(__file__).resolve().parents[2]


def make_package(root: Path, package: str, modules: dict[str, str]) -> None:
    """An importable package whose folders are modules (one main.kp.yaml each)."""
    (root / package).mkdir(parents=True)
    (root / package / "__init__.py").write_text("")
    for name, text in modules.items():
        (root / package / name).mkdir()
        (root / package / name / "main.kp.yaml").write_text(textwrap.dedent(text))
    importlib.invalidate_caches()
    sys.modules.pop(package, None)  # the same name from another test's temp folder


@pytest.fixture
def catalogs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """kplan's own catalog plus two third-party ones, registered as entry points.

    Returns entry point name → package; add more by mutating the dict before loading.
    """
    registered = {"kplan": "kplan_catalog"}
    (tmp_path / "site").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path / "site"))

    def fake(group: str) -> list[EntryPoint]:
        assert group == catalog.GROUP
        return [EntryPoint(n, p, group) for n, p in registered.items()]

    monkeypatch.setattr(catalog, "entry_points", fake)
    return registered


def root_module(tmp_path: Path, source: str) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    (root / "main.kp.yaml").write_text(
        f"modules:\n  web:\n    source: {source}\n    inputs: {{port: 8080}}\n"
    )
    return root


def test_the_shipped_catalog_is_the_modules_folder_found_through_importlib() -> None:
    assert default_catalog_dir() == str(REPO / "modules")
    found, diags = catalog.installed_catalogs()
    assert diags == []
    assert catalog.Catalog("kplan", str(REPO / "modules")) in found
    assert (REPO / "modules" / "README.md").is_file()


def test_a_third_party_catalog_resolves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, catalogs: dict[str, str]
) -> None:
    make_package(
        tmp_path / "site",
        "acme_catalog",
        {"acme_web": "variables: {port: {type: number}}\noutputs:\n  port: ${var.port}\n"},
    )
    catalogs["acme"] = "acme_catalog"
    root = root_module(tmp_path, "kplan/acme_web")
    monkeypatch.chdir(tmp_path)
    cfg, diags = load_module("root")
    assert not diags.items, [str(d) for d in diags]
    assert cfg is not None
    web = cfg.modules["web"]
    assert web.module.dir == str(tmp_path / "site" / "acme_catalog" / "acme_web")
    assert root.is_dir()


def test_an_unknown_catalog_module_names_file_line_and_the_available_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, catalogs: dict[str, str]
) -> None:
    make_package(tmp_path / "site", "acme_catalog", {"acme_web": "outputs: {x: 1}\n"})
    make_package(tmp_path / "site", "other_catalog", {"other_db": "outputs: {x: 1}\n"})
    catalogs.update(acme="acme_catalog", other="other_catalog")
    root_module(tmp_path, "kplan/nova")
    monkeypatch.chdir(tmp_path)
    cfg, diags = load_module("root")
    assert cfg is None
    (d,) = diags
    assert d.code == "module-not-found"
    assert d.pos == SourcePos("root/main.kp.yaml", 3, 13)
    assert str(d).startswith("root/main.kp.yaml:3:13: catalog module 'kplan/nova' not found")
    available = d.detail.split("available: ", 1)[1].split("\n", 1)[0].split(", ")
    assert {"kplan/acme_web", "kplan/other_db", "kplan/keystone"} <= set(available)
    assert available == sorted(available)
    assert "acme (" in d.detail and "kplan (" in d.detail


def test_a_name_two_catalogs_offer_is_an_error_naming_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, catalogs: dict[str, str]
) -> None:
    make_package(tmp_path / "site", "acme_catalog", {"web": "outputs: {x: 1}\n"})
    make_package(tmp_path / "site", "other_catalog", {"web": "outputs: {x: 2}\n"})
    catalogs.update(acme="acme_catalog", other="other_catalog")
    root_module(tmp_path, "kplan/web")
    monkeypatch.chdir(tmp_path)
    cfg, diags = load_module("root")
    assert cfg is None
    (d,) = diags
    assert d.code == "catalog-conflict"
    assert "acme (" in d.summary and "other (" in d.summary


def test_a_broken_catalog_is_a_warning_and_the_others_still_resolve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, catalogs: dict[str, str]
) -> None:
    make_package(tmp_path / "site", "acme_catalog", {"acme_web": "outputs: {x: 1}\n"})
    catalogs.update(acme="acme_catalog", gone="no_such_catalog_package")
    root_module(tmp_path, "kplan/acme_web")
    monkeypatch.chdir(tmp_path)
    cfg, diags = load_module("root")
    assert cfg is not None
    (d,) = diags
    assert not d.is_error and d.code == "catalog-load" and '"gone"' in d.summary


def test_a_catalog_path_cannot_climb_out_of_its_catalog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, catalogs: dict[str, str]
) -> None:
    make_package(tmp_path / "site", "acme_catalog", {"acme_web": "outputs: {x: 1}\n"})
    catalogs["acme"] = "acme_catalog"
    root_module(tmp_path, "kplan/../root")
    monkeypatch.chdir(tmp_path)
    cfg, diags = load_module("root")
    assert cfg is None
    assert [d.code for d in diags] == ["module-not-found"]
