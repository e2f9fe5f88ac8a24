"""Deploy benchmark: examples/openstack on three lab hosts, wall time per phase.

Run it as root from the repository root (kplan installed, e.g. ``pip install -e .``)::

    python benchmarks/deploy_openstack.py [--hosts 3] [--workdir /tmp/kplan-deploy-bench]

It brings up its own lab (``--lab-name``, ``--subnet``), builds or pushes the
images, copies the example (``examples/openstack``, or ``examples/openstack-aio``
with ``--hosts 1``) under ``--workdir`` and times, each once:

* ``lab images``: building (or, cached, only pushing) the images;
* ``plan``: ``kplan plan -out`` from an empty state;
* ``apply``: ``kplan apply -json`` of that plan. Every ``apply_start`` and
  ``apply_done`` event is stamped as it arrives, which gives each phase's span
  (first start to last done, from the apply's start) and its busiest resource:
  images present (every ``docker_image``), then per module (databases =
  ``module.mariadb``, ``module.keystone``, ``module.glance``, ...);
* ``no-op plan``: a second ``kplan plan`` with refresh, which must find nothing to do.

The lab is taken down at the end (``--keep`` leaves it up). Results: a table on
stdout and ``WORKDIR/results.json``; every step's output in ``WORKDIR/runs/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
IMAGES = (
    "mariadb",
    "memcached",
    "rabbitmq",
    "keystone",
    "haproxy",
    "keepalived",
    "glance",
    "placement",
)
KPLAN = [sys.executable, "-m", "kplan"]


@dataclass
class Phase:
    """The resources of one phase: when the first started and the last finished."""

    name: str
    first_start: float = float("inf")
    last_done: float = 0.0
    count: int = 0
    longest: tuple[float, str] = (0.0, "")
    started: dict[str, float] = field(default_factory=dict)

    def start(self, address: str, at: float) -> None:
        self.first_start = min(self.first_start, at)
        self.started[address] = at

    def done(self, address: str, at: float) -> None:
        self.last_done = max(self.last_done, at)
        self.count += 1
        took = at - self.started.get(address, at)
        if took > self.longest[0]:
            self.longest = (took, address)


def phase_of(address: str) -> str:
    """The phase a resource belongs to: images first, then its module."""
    if ".docker_image." in f".{address}":
        return "images present"
    if address.startswith("module."):
        module = address.split(".", 2)[1]
        return "databases (mariadb)" if module == "mariadb" else module
    return "root module"


def run(step: str, argv: list[str], runs: Path, cwd: Path | None = None) -> float:
    """Run ARGV once; its output goes to RUNS/STEP.out and .err; a failure stops the benchmark."""
    began = time.monotonic()
    with (runs / f"{step}.out").open("w") as out, (runs / f"{step}.err").open("w") as err:
        code = subprocess.call(argv, cwd=cwd, stdout=out, stderr=err)
    took = time.monotonic() - began
    if code not in (0, 2) or (code == 2 and step != "noop_plan"):
        sys.exit(f"{step} failed (exit {code}); see {runs}/{step}.err")
    return took


def timed_apply(root: Path, runs: Path) -> tuple[float, dict[str, Phase]]:
    """``kplan apply -json`` of the saved plan, each event stamped on arrival."""
    phases: dict[str, Phase] = {}
    began = time.monotonic()
    proc = subprocess.Popen(
        [*KPLAN, "apply", "-json", "deploy.plan"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    with (runs / "apply.out").open("w") as log:
        for line in proc.stdout:
            at = time.monotonic() - began
            log.write(f"{at:9.3f} {line}")
            try:
                event: dict[str, Any] = json.loads(line)
            except ValueError:
                continue
            kind, address = event.get("type"), event.get("address")
            if kind not in ("apply_start", "apply_done") or not isinstance(address, str):
                continue
            phase = phases.setdefault(phase_of(address), Phase(phase_of(address)))
            if kind == "apply_start":
                phase.start(address, at)
            else:
                phase.done(address, at)
    err = proc.stderr.read() if proc.stderr else ""
    (runs / "apply.err").write_text(err)
    if proc.wait() != 0:
        sys.exit(f"apply failed (exit {proc.returncode}); see {runs}/apply.err")
    return time.monotonic() - began, phases


def lab(*args: str, runs: Path, step: str) -> float:
    return run(step, [*KPLAN, "lab", *args], runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--hosts", type=int, choices=(1, 3), default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/kplan-deploy-bench"))
    parser.add_argument("--lab-name", default="kpbench")
    parser.add_argument("--subnet", default="10.231.61.0/24")
    parser.add_argument("--keep", action="store_true", help="leave the lab up")
    args = parser.parse_args()

    example = "openstack" if args.hosts == 3 else "openstack-aio"
    shutil.rmtree(args.workdir, ignore_errors=True)
    runs = args.workdir / "runs"
    runs.mkdir(parents=True)
    root = args.workdir / example
    shutil.copytree(
        REPO / "examples" / example, root, ignore=shutil.ignore_patterns(".kplan", "*.plan", "inv*")
    )
    name = ["--name", args.lab_name]
    figures: dict[str, Any] = {}
    try:
        up = ["up", *name, "--hosts", str(args.hosts), "--subnet", args.subnet]
        figures["lab up"] = lab(*up, runs=runs, step="lab_up")
        only = [a for image in IMAGES for a in ("--only", image)]
        figures["lab images"] = lab("images", *name, *only, runs=runs, step="lab_images")
        inventory = str(root / "inventory.kp.yaml")
        lab("up", *name, "--inventory", inventory, runs=runs, step="inventory")
        run("init", [*KPLAN, "init"], runs, cwd=root)
        figures["plan"] = run("plan", [*KPLAN, "plan", "-out", "deploy.plan"], runs, cwd=root)
        figures["apply"], phases = timed_apply(root, runs)
        figures["no-op plan"] = run(
            "noop_plan", [*KPLAN, "plan", "-detailed-exitcode"], runs, cwd=root
        )
    finally:
        if not args.keep:
            lab("down", *name, runs=runs, step="lab_down")

    rows = sorted(phases.values(), key=lambda p: p.first_start)
    print(f"# examples/{example} on {args.hosts} lab host(s)")
    print(f"# {platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}")
    for step, took in figures.items():
        print(f"{step:12} {took:7.1f} s")
    print()
    print("| phase | resources | starts at | done at | span | longest resource |")
    print("|---|---|---|---|---|---|")
    for p in rows:
        took, address = p.longest
        print(
            f"| {p.name} | {p.count} | {p.first_start:.1f} s | {p.last_done:.1f} s"
            f" | {p.last_done - p.first_start:.1f} s | {address} ({took:.1f} s) |"
        )
    (args.workdir / "results.json").write_text(
        json.dumps(
            {
                "example": example,
                "steps": figures,
                "phases": {
                    p.name: {
                        "resources": p.count,
                        "start": p.first_start,
                        "done": p.last_done,
                        "longest": {"address": p.longest[1], "seconds": p.longest[0]},
                    }
                    for p in rows
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
