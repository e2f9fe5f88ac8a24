#!/usr/bin/env python3
"""Prove that kplan works from its wheel, not only from a checkout.

Builds the wheel, installs it (no dependencies: those come from the Python
running this script, minus any kplan it has) into a fresh venv, and from a
temp folder outside the repository runs what a user runs: ``kplan init`` and
``kplan plan`` of examples/quickstart (the state migrations come from the
wheel), a module call ``source: kplan/NAME`` into a third-party catalog
installed as a distribution with a ``kplan.catalogs`` entry point, and an
unknown ``kplan/NAME`` that must fail naming file:line. It also checks that
every installed top-level name is kplan's own.

    python scripts/wheel_check.py [--keep]      # exit 0 when all holds

Takes a few seconds: the wheel is built without build isolation and
installed with --no-deps --no-index, so nothing is downloaded.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OWN_NAMES = {"kplan", "kplan_providers", "kplan_state", "kplan_catalog"}


def run(*cmd: str | Path, cwd: Path | None = None, ok: bool = True) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KPLAN_", "PYTHON"))}
    env["NO_COLOR"] = "1"
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, env=env, timeout=300
    )
    out = proc.stdout + proc.stderr
    if (proc.returncode == 0) != ok:
        raise SystemExit(f"FAILED ({proc.returncode}): {' '.join(map(str, cmd))}\n{out}")
    return out


def source_copy(work: Path) -> Path:
    """The checkout's files (tracked, and new ones not ignored) in a clean folder.

    Building in the checkout would leave a build/ folder whose stale files (a module
    since renamed or removed) the next wheel would ship.
    """
    src = work / "src"
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO, capture_output=True, check=True,
        ).stdout.decode().split("\0")  # fmt: skip
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: copy it all
        skip = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__")
        shutil.copytree(REPO, src, ignore=skip)
        return src
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    return src


def build_wheel(work: Path) -> Path:
    out = work / "dist"
    run(
        sys.executable, "-m", "pip", "wheel", "--no-deps",
        "-q", "-w", out, source_copy(work),
    )  # fmt: skip
    (wheel,) = out.glob("kplan-*.whl")
    return wheel


def dependencies_without_kplan(work: Path) -> Path:
    """A folder of links to this Python's installed packages, kplan's own left out."""
    deps = work / "deps"
    deps.mkdir()
    purelib = Path(sysconfig.get_paths()["purelib"])
    for entry in purelib.iterdir():
        name = entry.name.lower()
        if name.startswith(("kplan", "__editable__", "_kplan")) or name.endswith(".pth"):
            continue
        if name in {"providers", "state", "modules"}:
            continue
        (deps / entry.name).symlink_to(entry)
    return deps


def make_venv(work: Path, wheel: Path, deps: Path) -> Path:
    venv = work / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    site = Path(
        run(venv / "bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
        .strip()
        .splitlines()[-1]
    )
    (site / "zz-deps.pth").write_text(f"{deps}\n")
    run(
        sys.executable, "-m", "pip", "--python", venv / "bin/python", "install", "-q",
        "--no-deps", "--no-index", wheel,
    )  # fmt: skip
    return venv


def install_acme_catalog(venv: Path) -> None:
    """A third-party catalog, installed as a distribution is: package + dist-info."""
    site = Path(
        run(venv / "bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
        .strip()
        .splitlines()[-1]
    )
    module = site / "acme_kplan_catalog" / "acme_motd"
    module.mkdir(parents=True)
    (site / "acme_kplan_catalog" / "__init__.py").write_text("")
    (module / "main.kp.yaml").write_text(
        textwrap.dedent(
            """\
            variables:
              path: {type: string}
            resources:
              local_file.motd:
                path: ${var.path}
                content: "from the acme catalog\\n"
            outputs:
              path: ${local_file.motd.path}
            """
        )
    )
    info = site / "acme_kplan_catalog-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: acme-kplan-catalog\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text("[kplan.catalogs]\nacme = acme_kplan_catalog\n")
    (info / "RECORD").write_text("")


def check(venv: Path, work: Path) -> None:
    py, kplan = venv / "bin/python", venv / "bin/kplan"
    probe = run(
        py, "-c",
        "import kplan, kplan_providers, kplan_state, kplan_catalog\n"
        "from kplan.state.migrate import head_revision\n"
        "from kplan.config.loader import default_catalog_dir\n"
        "from importlib.metadata import distribution\n"
        "print(kplan.__file__); print(default_catalog_dir()); print(head_revision())\n"
        "top = distribution('kplan').read_text('top_level.txt') or ''\n"
        "files = distribution('kplan').files or []\n"
        "print(sorted({f.parts[0] for f in files if not f.parts[0].endswith(('.dist-info', '..'))"
        " and f.parts[0] != 'bin'}))",
        cwd=work,
    )  # fmt: skip
    lines = probe.strip().splitlines()
    assert str(venv) in lines[0] and str(REPO) not in lines[0], lines[0]
    assert lines[1].startswith(str(venv)) and lines[1].endswith("kplan_catalog"), lines[1]
    assert lines[2], "no head revision"
    tops = set(ast.literal_eval(lines[3]))  # a printed list of names
    assert tops == OWN_NAMES, f"installed top-level names: {sorted(tops)}"
    assert (Path(lines[1]) / "README.md").is_file(), "modules/README.md not in the wheel"

    quick = work / "quickstart"
    shutil.copytree(REPO / "examples" / "quickstart", quick, ignore=shutil.ignore_patterns("out"))
    run(kplan, "init", cwd=quick)
    out = run(kplan, "plan", "-no-color", cwd=quick)
    assert "Plan:" in out and "to add" in out, out

    root = work / "catalog_user"
    root.mkdir()
    (root / "main.kp.yaml").write_text(
        "modules:\n  motd:\n    source: kplan/acme_motd\n"
        "    inputs:\n      path: ${path.module}/out/motd\n"
    )
    run(kplan, "init", cwd=root)
    out = run(kplan, "plan", "-no-color", cwd=root)
    assert "module.motd.local_file.motd" in out, out

    (root / "main.kp.yaml").write_text("modules:\n  x:\n    source: kplan/no_such_module\n")
    out = run(kplan, "plan", "-no-color", cwd=root, ok=False)
    assert "main.kp.yaml:3:13" in out and "kplan/acme_motd" in out, out


def main() -> None:
    keep = "--keep" in sys.argv
    work = Path(tempfile.mkdtemp(prefix="kplan-wheel-"))
    try:
        wheel = build_wheel(work)
        venv = make_venv(work, wheel, dependencies_without_kplan(work))
        install_acme_catalog(venv)
        check(venv, work)
        print(f"wheel check passed: {wheel.name}")
    finally:
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
