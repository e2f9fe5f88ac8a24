"""kplan beside ansible-playbook and pyinfra, on the same lab hosts and the same work.

    sudo python -m benchmarks.peers.run                      # 3x10 and 10x20, 3 runs each
    sudo python -m benchmarks.peers.run --sizes 3x10 --repeat 1 --roundtrips ""

One command: installs the peers in their own virtual environments (cached
under ~/.cache/kplan/peers), brings up a lab (``--lab-name``, ``--subnet``),
builds and pulls the base image, then for every size and tool measures

* ``deploy``: a fresh deploy onto clean hosts (kplan: ``apply -auto-approve``
  from an empty state; ansible-playbook and pyinfra: a plain run);
* ``noop``: the same again on the converged hosts (kplan: ``plan``, which
  refreshes, and ``apply -auto-approve`` with nothing to do; ansible: a plain
  re-run and ``--check``; pyinfra: ``-y`` and ``--dry``);
* ``change``: one option of one service on one host (kplan: ``plan -out`` and
  ``apply`` of that plan);

each with wall time, CPU seconds of the tool (with everything it started) and
of the hosts, SSH connections and channels, and the containers created or
restarted. Then the round trips of a refresh at 5, 20 and 80 services per host.
Results: WORKDIR/results.json, a table on stdout and, with ``--results``, a
section of benchmarks/RESULTS.md (between the peer-benchmark markers).
What is measured is kept in WORKDIR/partial.json after every tool and size:
a run stopped part way goes on with ``--resume`` (the same arguments and
workdir) and measures only what is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.peers import report, scale
from benchmarks.peers.hosts import LabHosts
from benchmarks.peers.work import (
    CONF_ROOT,
    TOOLS,
    Host,
    Work,
    changed_options,
    service_name,
    write,
)
from kplan.lab.spec import LabSpec

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kplan" / "peers"
PEERS = {
    "ansible": ["ansible>=12,<13"],  # ansible-core 2.19 with community.docker 4
    "pyinfra": ["pyinfra>=3.10,<4"],
}
KPLAN = [sys.executable, "-m", "kplan"]
KPLANS = ("kplan", "kplan-server")
COMPILED = ("kplan", "providers", "modules", "state")
#: size -> tool -> the text of the first host's first config file after a deploy
RENDERED: dict[str, dict[str, str]] = {}


@dataclass
class Run:
    wall: float
    control_cpu: float
    host_cpu: float
    connections: int  # SSH connections, all hosts
    channels: int  # SSH channels (commands, SFTP), all hosts
    created: int  # containers that are new (or replaced) after the run
    restarted: int  # containers that kept their id but started again
    running: int
    docker_requests: int = 0  # kplan only, round-trip runs only
    log: str = ""


@dataclass
class Figure:
    tool: str
    size: str
    name: str  # deploy, noop, noop_check, change
    command: str
    runs: list[Run] = field(default_factory=list)
    expected: str = ""  # what the run must have done to containers

    def median(self, attr: str) -> float:
        return statistics.median(float(getattr(r, attr)) for r in self.runs)


def figure_from(d: dict[str, Any]) -> Figure:
    """A figure back from its JSON (``asdict``) form."""
    runs = [Run(**r) for r in d["runs"]]
    return Figure(d["tool"], d["size"], d["name"], d["command"], runs, d.get("expected", ""))


class Progress:
    """What this run has measured so far, kept in WORKDIR/partial.json.

    Saved after every tool and size, round trip and the scale run: a full run
    takes over an hour, and one stopped near its end used to lose everything.
    With ``resume``, what the file holds is taken up and not measured again.
    """

    def __init__(self, workdir: Path, resume: bool) -> None:
        self.path = workdir / "partial.json"
        self.started = time.strftime("%Y-%m-%d %H:%M")
        self.figures: list[Figure] = []
        self.trips: list[dict[str, Any]] = []
        self.scale: dict[str, Any] | None = None
        if resume and self.path.exists():
            d = json.loads(self.path.read_text())
            self.started = d["started"]
            self.figures = [figure_from(f) for f in d["figures"]]
            self.trips = d["round_trips"]
            self.scale = d["scale"]
            for size, texts in d["rendered"].items():
                RENDERED.setdefault(size, {}).update(texts)
            print(
                f"Resuming from {self.path} (started {self.started}): {len(self.figures)} "
                f"figures, {len(self.trips)} round trips"
                + (", the scale run" if self.scale else ""),
                flush=True,
            )

    def has(self, tool: str, size: str) -> bool:
        return any(f.tool == tool and f.size == size for f in self.figures)

    def has_trip(self, tool: str, services: int) -> bool:
        return any(t["tool"] == tool and t["services"] == services for t in self.trips)

    def save(self) -> None:
        data = {
            "started": self.started,
            "figures": [asdict(f) for f in self.figures],
            "round_trips": self.trips,
            "scale": self.scale,
            "rendered": RENDERED,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(self.path)  # a run killed while writing keeps the last whole file


# -- the peers ---------------------------------------------------------------------


def setup_peers(tools: Sequence[str]) -> dict[str, str]:
    """Virtual environments for the peers; the hosts' Python for community.docker."""
    versions = {"kplan": _kplan_version(), "python": platform.python_version()}
    # kplan's modules byte-compiled, as `pip install` leaves them (the peers' venvs
    # are): with PYTHONDONTWRITEBYTECODE set, an editable checkout would otherwise
    # compile every module from source at every run.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", *(str(REPO / d) for d in COMPILED)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    if (
        "ansible" in tools
        and subprocess.run(
            ["/usr/bin/python3", "-c", "import requests"], capture_output=True
        ).returncode
    ):
        # community.docker's modules run on the host and speak to Docker through requests.
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "python3-requests"], check=True)
    for tool in tools:
        if tool not in PEERS:
            continue
        venv = CACHE / tool
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [
                str(venv / "bin" / "pip"),
                "install",
                "-q",
                "--disable-pip-version-check",
                *PEERS[tool],
            ],
            check=True,
        )
    if "ansible" in tools:
        versions["ansible-core"] = _dist_version("ansible", "ansible-core")
        versions["ansible"] = _dist_version("ansible", "ansible")
        manifest = next(
            (CACHE / "ansible").glob(
                "lib/python*/site-packages/ansible_collections/community/docker/MANIFEST.json"
            )
        )
        versions["community.docker"] = json.loads(manifest.read_text())["collection_info"][
            "version"
        ]
    if "pyinfra" in tools:
        versions["pyinfra"] = _dist_version("pyinfra", "pyinfra")
    return versions


def _dist_version(venv: str, dist: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    return subprocess.run(
        [str(CACHE / venv / "bin" / "python"), "-c", code],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def _kplan_version() -> str:
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    from importlib.metadata import version

    return f"{version('kplan')} ({commit or 'no git'})"


def commands(tool: str, project: Path) -> dict[str, list[list[str]]]:
    if tool in KPLANS:
        return {
            "deploy": [[*KPLAN, "apply", "-auto-approve", "-no-color"]],
            "noop": [[*KPLAN, "plan", "-no-color"]],
            "noop_apply": [[*KPLAN, "apply", "-auto-approve", "-no-color"]],
            "change": [
                [*KPLAN, "plan", "-no-color", "-out", "change.plan"],
                [*KPLAN, "apply", "-no-color", "change.plan"],
            ],
        }
    if tool == "ansible":
        play = [str(CACHE / "ansible" / "bin" / "ansible-playbook"), "site.yml"]
        return {
            "deploy": [play],
            "noop": [play],
            "noop_check": [[*play, "--check"]],
            "change": [play],
        }
    deploy = [str(CACHE / "pyinfra" / "bin" / "pyinfra"), "inventory.py", "deploy.py"]
    return {
        "deploy": [[*deploy, "-y"]],
        "noop": [[*deploy, "-y"]],
        "noop_check": [[*deploy, "--dry"]],
        "change": [[*deploy, "-y"]],
    }


def environment(tool: str, project: Path) -> dict[str, str]:
    env = dict(os.environ, NO_COLOR="1", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    if tool == "ansible":
        env["ANSIBLE_CONFIG"] = str(project / "ansible.cfg")
    if tool in KPLANS:
        env["PYTHONPATH"] = str(REPO)
        env["KPLAN_SERVER"] = "on" if tool == "kplan-server" else "off"
        env["KPLAN_SERVER_SOCKET"] = str(server_socket(project))
    return env


def server_socket(project: Path) -> Path:
    return project / "server" / "server.sock"


def start_server(project: Path, env: dict[str, str]) -> int:
    """``kplan server start`` for the kplan-server runs: its pid (its CPU is the tool's)."""
    folder = server_socket(project).parent
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    subprocess.run([*KPLAN, "server", "start", "-idle-timeout", "0"], env=env, check=True)
    status = subprocess.run(
        [*KPLAN, "server", "status"], env=env, check=True, capture_output=True, text=True
    ).stdout
    match = re.search(r"pid (\d+)", status)
    assert match, status
    return int(match[1])


def stop_server(project: Path, env: dict[str, str]) -> None:
    subprocess.run([*KPLAN, "server", "stop"], env=env, capture_output=True)


def _process_cpu(pid: int | None) -> float:
    """User + system CPU seconds of a process that is not our child (the kplan server)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset(tool: str, project: Path) -> None:
    """Forget what the tool knows of earlier runs (kplan's state)."""
    if tool in KPLANS:
        shutil.rmtree(project / ".kplan", ignore_errors=True)


def close_masters(project: Path) -> None:
    """Stop ansible's SSH control masters: every measured run starts without
    connections kept from the run before (ControlPersist keeps them 60 s), as a
    run in a change window or a CI job does."""
    for sock in (project / "cp").glob("*"):
        subprocess.run(["ssh", "-O", "exit", "-o", f"ControlPath={sock}", "x"], capture_output=True)


# -- one measured run -------------------------------------------------------------------


def measure(
    lab: LabHosts,
    argvs: Sequence[Sequence[str]],
    cwd: Path,
    env: dict[str, str],
    log: Path,
    server: int | None = None,
) -> Run:
    close_masters(cwd)
    before = lab.containers()
    offsets = lab.log_offsets()
    cpu0 = lab.cpu_seconds()
    control = -_process_cpu(server)
    t0 = time.perf_counter()
    with log.open("w") as out:
        for argv in argvs:
            out.write(f"$ {' '.join(argv)}\n")
            out.flush()
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            control += usage.ru_utime + usage.ru_stime
            if proc.returncode != 0:
                raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: see {log}")
    wall = time.perf_counter() - t0
    control += _process_cpu(server)
    host_cpu = lab.cpu_seconds() - cpu0
    ssh = lab.ssh_since(offsets)
    after = lab.containers()
    created = sum(1 for k, c in after.items() if k not in before or before[k].id != c.id)
    restarted = sum(
        1
        for k, c in after.items()
        if k in before and before[k].id == c.id and before[k].started_at != c.started_at
    )
    return Run(
        wall=round(wall, 3),
        control_cpu=round(control, 3),
        host_cpu=round(host_cpu, 3),
        connections=sum(s.connections for s in ssh.values()),
        channels=sum(s.channels for s in ssh.values()),
        created=created,
        restarted=restarted,
        running=sum(1 for c in after.values() if c.running),
        log=str(log),
    )


def bench_tool(tool: str, work: Work, lab: LabHosts, root: Path, repeat: int) -> list[Figure]:
    project = write(tool, work, root)
    env = environment(tool, project)
    server = start_server(project, env) if tool == "kplan-server" else None
    try:
        return _bench_figures(tool, work, lab, root, repeat, project, env, server)
    finally:
        if server is not None:
            stop_server(project, env)


def _bench_figures(
    tool: str,
    work: Work,
    lab: LabHosts,
    root: Path,
    repeat: int,
    project: Path,
    env: dict[str, str],
    server: int | None,
) -> list[Figure]:
    cmds = commands(tool, project)
    runs = root / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    total = len(work.hosts) * work.services
    figures: list[Figure] = []

    def figure(
        name: str, expected: str, prepare: Callable[[int], None], check: Callable[[Run], str]
    ) -> None:
        fig = Figure(
            tool, work.label, name, " && ".join(" ".join(a) for a in cmds[name]), expected=expected
        )
        for i in range(repeat):
            prepare(i)
            run = measure(
                lab,
                cmds[name],
                project,
                env,
                runs / f"{work.label}-{tool}-{name}-{i + 1}.log",
                server,
            )
            problem = check(run)
            if problem:
                raise SystemExit(
                    f"{tool} {name} ({work.label}, run {i + 1}): {problem}; see {run.log}"
                )
            fig.runs.append(run)
            print(f"  {tool:12} {name:11} run {i + 1}: {run.wall:7.2f} s", flush=True)
        figures.append(fig)

    def fresh(_: int) -> None:
        lab.clean()
        reset(tool, project)
        write(tool, work, root)

    def converged(run: Run) -> str:
        if run.running != total:
            return f"{run.running} of {total} containers running"
        return ""

    def untouched(run: Run) -> str:
        if run.created or run.restarted:
            return f"a no-op created {run.created} and restarted {run.restarted} containers"
        return converged(run)

    def change(i: int) -> None:
        write(tool, changed_options(work, i), root)

    def one_restart(run: Run) -> str:
        if run.created + run.restarted != 1:
            return f"the change created {run.created} and restarted {run.restarted} containers"
        return converged(run)

    figure("deploy", f"{total} created", fresh, converged)
    # The same work: the first host's first file, compared across the tools in main().
    first = f"{CONF_ROOT}/{service_name(0)}/{service_name(0)}.conf"
    RENDERED.setdefault(work.label, {})[tool] = text = lab.read_file(lab.hosts[0], first)
    (root / f"rendered-{tool}.conf").write_text(text)
    for name in ("noop", "noop_apply", "noop_check"):
        if name in cmds:
            figure(name, "nothing", lambda _: None, untouched)
    figure("change", "1 restarted", change, one_restart)
    return figures


# -- round trips of a refresh ---------------------------------------------------------


def round_trips(tool: str, work: Work, lab: LabHosts, root: Path) -> dict[str, Any]:
    """Deploy, then one run that only checks: per host, SSH connections and channels
    and (kplan) Docker API requests."""
    project = write(tool, work, root)
    cmds = commands(tool, project)
    env = environment(tool, project)
    runs = root / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    lab.clean()
    reset(tool, project)
    measure(lab, cmds["deploy"], project, env, runs / f"rt-{work.label}-{tool}-deploy.log")
    counts = root / f"rt-{tool}-docker.json"
    if tool == "kplan":
        argv = [
            [
                sys.executable,
                str(Path(__file__).with_name("_count_docker.py")),
                str(counts),
                "plan",
                "-no-color",
            ]
        ]
        name = "plan"
    else:
        argv = cmds["noop_check"]
        name = "--check" if tool == "ansible" else "--dry"
    run = measure(lab, argv, project, env, runs / f"rt-{work.label}-{tool}-refresh.log")
    hosts = len(work.hosts)
    docker_requests = 0
    if counts.exists():
        docker_requests = sum(json.loads(counts.read_text()).values())
    return {
        "tool": tool,
        "services": work.services,
        "hosts": hosts,
        "command": name,
        "wall": run.wall,
        "connections_per_host": run.connections / hosts,
        "channels_per_host": run.channels / hosts,
        "docker_requests_per_host": docker_requests / hosts,
    }


# -- main ---------------------------------------------------------------------------------


def merge(data: dict[str, Any], earlier: dict[str, Any], source: str) -> None:
    """Add the figures and round trips of the tools ``data`` did not measure."""
    ran = {f["tool"] for f in data["figures"]} | {r["tool"] for r in data["round_trips"]}
    taken = sorted(
        {f["tool"] for f in earlier["figures"]} | {r["tool"] for r in earlier["round_trips"]}
    )
    taken = [t for t in taken if t not in ran]
    data["figures"] += [f for f in earlier["figures"] if f["tool"] in taken]
    data["round_trips"] += [r for r in earlier["round_trips"] if r["tool"] in taken]
    data["round_trips"].sort(key=lambda r: (r["services"], TOOLS.index(r["tool"])))
    for key, value in earlier["versions"].items():
        data["versions"].setdefault(key, value)
    for size, same in earlier.get("same_files", {}).items():
        data["same_files"][size] = data["same_files"].get(size, True) and same
    data["merged"] = {"file": source, "started": earlier["started"], "tools": taken}


def parse_size(text: str) -> tuple[int, int]:
    hosts, _, services = text.partition("x")
    if not (hosts.isdigit() and services.isdigit()) or int(hosts) < 1 or int(services) < 1:
        raise argparse.ArgumentTypeError(f"a size is HOSTSxSERVICES, like 3x10 (got {text!r})")
    return int(hosts), int(services)


def lab_runs(
    args: argparse.Namespace,
    sizes: Sequence[tuple[int, int]],
    rt_sizes: Sequence[int],
    tools: Sequence[str],
    lab_hosts: int,
    progress: Progress,
) -> None:
    """The lab part: every size and tool, then the round trips; the lab is taken down.

    What ``progress`` already holds is not measured again."""
    spec = LabSpec.make(args.lab_name, lab_hosts, args.subnet)
    kp = [*KPLAN, "lab"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run(
        [*kp, "up", "--name", spec.name, "--subnet", spec.subnet, "--hosts", str(lab_hosts)],
        check=True,
        env=env,
    )
    lab = LabHosts(spec, spec.all_hosts())
    try:
        subprocess.run([*kp, "images", "--name", spec.name, "--only", "base"], check=True, env=env)
        image = f"{spec.registry}/kplan/base:bookworm"
        lab.pull(image)
        lab.attach_cpu()
        key, known = str(spec.ssh_key), str(spec.known_hosts)
        for n_hosts, services in sizes:
            hosts = spec.all_hosts()[:n_hosts]
            work = Work([Host(h.name, h.address) for h in hosts], services, image, key, known)
            print(f"{work.label}: {n_hosts} hosts x {services} services", flush=True)
            for tool in tools:
                if progress.has(tool, work.label):
                    print(f"  {tool:12} measured before", flush=True)
                    continue
                progress.figures += bench_tool(
                    tool, work, LabHosts(spec, hosts), args.workdir / work.label, args.repeat
                )
                progress.save()
        for services in rt_sizes:
            hosts = spec.all_hosts()[: args.roundtrip_hosts]
            work = Work([Host(h.name, h.address) for h in hosts], services, image, key, known)
            for tool in tools:
                # Round trips per host are the engine's: the same with or without a server.
                if tool == "kplan-server" or progress.has_trip(tool, services):
                    continue
                trip = round_trips(
                    tool, work, LabHosts(spec, hosts), args.workdir / f"rt-{work.label}"
                )
                progress.trips.append(trip)
                progress.save()
                print(f"  round trips {tool:8} {services:3} services: {trip}", flush=True)
        lab.clean()
    finally:
        for project in args.workdir.glob("*/ansible"):
            close_masters(project)
        lab.detach_cpu()
        if not args.keep:
            subprocess.run([*kp, "down", "--name", spec.name], env=env)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="3x10,10x20", help="HOSTSxSERVICES, comma-separated")
    ap.add_argument(
        "--repeat", type=int, default=3, help="runs of each figure (the median is reported)"
    )
    ap.add_argument("--tools", default=",".join(TOOLS), help="of: " + ", ".join(TOOLS))
    ap.add_argument(
        "--roundtrips",
        default="5,20,80",
        help='services per host for the round-trip runs ("" for none)',
    )
    ap.add_argument("--roundtrip-hosts", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/kplan-peers"))
    ap.add_argument("--lab-name", default="kppeers")
    ap.add_argument(
        "--subnet", default="10.231.81.0/24", help="not the machine's own (see `ip route`)"
    )
    ap.add_argument(
        "--scale-hosts",
        type=int,
        default=1000,
        help="hosts of the scale run without hosts (peers/scale.py; 0: none)",
    )
    ap.add_argument("--scale-services", type=int, default=25)
    ap.add_argument("--terraform-hosts", type=int, default=10, help="Terraform's reference size")
    ap.add_argument("--results", type=Path, help="also write the section of this RESULTS.md")
    ap.add_argument("--keep", action="store_true", help="leave the lab up")
    ap.add_argument(
        "--merge",
        type=Path,
        help="an earlier results.json: its figures of the tools not run now join the report",
    )
    ap.add_argument(
        "--resume",
        action="store_true",
        help="go on from WORKDIR/partial.json: measure only what a stopped run had not",
    )
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        ap.error("run as root: the lab needs network namespaces, cgroups and dockerd")
    sizes = [parse_size(s) for s in args.sizes.split(",") if s]
    tools = [t for t in args.tools.split(",") if t]
    if unknown := sorted(set(tools) - set(TOOLS)):
        ap.error(f"unknown tools {unknown}: use {', '.join(TOOLS)}")
    rt_sizes = [int(s) for s in args.roundtrips.split(",") if s]
    lab_hosts = max([h for h, _ in sizes] + ([args.roundtrip_hosts] if rt_sizes else []), default=0)

    progress = Progress(args.workdir, args.resume)
    versions = setup_peers(tools)
    if lab_hosts:
        lab_runs(args, sizes, rt_sizes, tools, lab_hosts, progress)
    if args.scale_hosts and progress.scale is None:
        progress.scale = scale.run_scale(
            args.workdir / "scale",
            args.scale_hosts,
            args.scale_services,
            args.repeat,
            args.terraform_hosts,
        )
        progress.save()
    machine = report.machine()
    data = {
        "started": progress.started,
        "machine": machine,
        "versions": versions,
        "argv": sys.argv,
        "figures": [{**asdict(f), "medians": report.medians(f)} for f in progress.figures],
        "round_trips": progress.trips,
        "scale": progress.scale if args.scale_hosts else None,
        "same_files": {size: len(set(t.values())) == 1 for size, t in RENDERED.items()},
    }
    if args.merge:
        merge(data, json.loads(args.merge.read_text()), str(args.merge))
    args.workdir.mkdir(parents=True, exist_ok=True)
    (args.workdir / "results.json").write_text(json.dumps(data, indent=2) + "\n")
    text = report.markdown(data)
    print(text)
    if args.results:
        report.update_results(args.results, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
