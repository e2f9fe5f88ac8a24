"""The peer benchmark's results as Markdown, and their section of RESULTS.md."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path
from typing import Any

BEGIN = "<!-- peers:begin (written by python -m benchmarks.peers.run --results) -->"
END = "<!-- peers:end -->"
NAMES = {
    "kplan": "kplan",
    "kplan-server": "kplan server",
    "ansible": "ansible-playbook",
    "pyinfra": "pyinfra",
}
# kplan alone, and kplan's commands run by a kplan server: each is compared with the peers.
KPLANS = ("kplan", "kplan-server")


def _row(kplan: str, ansible: str, pyinfra: str) -> dict[str, str]:
    return {"kplan": kplan, "kplan-server": kplan, "ansible": ansible, "pyinfra": pyinfra}


# Rows: what is compared, and which of each tool's figures is that thing.
ROWS = [
    ("fresh deploy", _row("deploy", "deploy", "deploy")),
    ("no-op, checking only", _row("noop", "noop_check", "noop_check")),
    ("no-op, a full run", _row("noop_apply", "noop", "noop")),
    ("one config changed", _row("change", "change", "change")),
]
ATTRS = ("wall", "control_cpu", "host_cpu", "connections", "channels", "created", "restarted")
# Targets of the issue: (label, slower tool and figure, kplan's figure, factor).
TARGETS = [
    ("no-op plan ≥ 30x faster than ansible-playbook's no-op run", ("ansible", "noop"), "noop", 30),
    ("no-op plan ≥ 10x faster than pyinfra's dry run", ("pyinfra", "noop_check"), "noop", 10),
    ("fresh deploy ≥ 5x faster than ansible-playbook", ("ansible", "deploy"), "deploy", 5),
    ("one-config change ≥ 15x faster than ansible-playbook", ("ansible", "change"), "change", 15),
]


def machine() -> dict[str, Any]:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().split()[1]
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(int(mem) / 1024**2, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def medians(fig: Any) -> dict[str, float]:
    return {a: round(fig.median(a), 3) for a in ATTRS}


def _fig(data: dict[str, Any], size: str, tool: str, name: str) -> dict[str, Any] | None:
    for f in data["figures"]:
        if f["size"] == size and f["tool"] == tool and f["name"] == name:
            return f
    return None


def _med(data: dict[str, Any], size: str, tool: str, name: str, attr: str = "wall") -> float | None:
    f = _fig(data, size, tool, name)
    return None if f is None else float(f["medians"][attr])


def _seconds(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f} s"


def _ratio(slow: float | None, fast: float | None) -> str:
    if slow is None or not fast:
        return "—"
    return f"{slow / fast:.1f}x"


def markdown(data: dict[str, Any]) -> str:
    m, v = data["machine"], data["versions"]
    tools = [t for t in NAMES if any(f["tool"] == t for f in data["figures"])]
    repeat = max((len(f["runs"]) for f in data["figures"]), default=0)
    out = [
        f"## kplan beside ansible-playbook and pyinfra ({data['started'][:10]})",
        "",
        "Command (as root, nothing else running):",
        "",
        "    " + " ".join(["python", "-m", "benchmarks.peers.run", *data["argv"][1:]]),
        "",
        f"Machine: {m['cpus']} cores ({m['cpu']}), {m['memory_gb']} GB, Linux {m['kernel']}, "
        f"Python {m['python']}. Versions: "
        + ", ".join(f"{k} {val}" for k, val in sorted(v.items()) if k != "python")
        + f". Each figure is the median of {repeat} runs; a ratio is the peer's median"
        " over kplan's.",
        "",
        "The work (benchmarks/peers/work.py): per host and service a config directory, a",
        "Jinja2-templated file and a container that bind-mounts it and restarts when, and",
        "only when, that file changes. Each container has a health check with Kolla's",
        "timings (its config file is readable; interval 30 s): kplan waits until the test",
        "passes before it calls a start done, the peers start containers and go on. The",
        "image is pulled before the runs. Every run is checked: a deploy leaves every",
        "container running, a no-op creates and restarts nothing, the change restarts",
        "exactly one container.",
    ]
    if "kplan-server" in tools:
        out += [
            "",
            "kplan server: the same kplan commands, run by a kplan server (`kplan server start`",
            "before a size's runs): each command starts without loading kplan again and takes",
            "the SSH sessions the command before it left open. The server's CPU is counted as",
            "the tool's. The ansible-playbook runs here start with no SSH master kept (its",
            "ControlPersist would keep them 60 s).",
        ]
    if merged := data.get("merged"):
        out += [
            "",
            f"The figures of {', '.join(NAMES[t] for t in merged['tools'])} come from an earlier"
            f" run of the same command on this machine ({merged['started']}, `--tools"
            f" {','.join(merged['tools'])}`), merged with `--merge`: those tools did not change"
            " between the runs.",
        ]
    differ = sorted(size for size, same in data.get("same_files", {}).items() if not same)
    out.append(
        f"**The tools rendered different files at {', '.join(differ)}.**"
        if differ
        else "Every tool rendered the same file text (compared on the first host)."
    )
    sizes = list(dict.fromkeys(f["size"] for f in data["figures"]))
    kplans = [t for t in tools if t in KPLANS]
    pairs = [(peer, k) for peer in tools if peer not in KPLANS for k in kplans]
    for size in sizes:
        out += ["", f"### {size.replace('x', ' hosts, ')} services", ""]
        head = (
            "| | "
            + " | ".join(NAMES[t] for t in tools)
            + "".join(f" | {NAMES[peer]} ÷ {NAMES[k]}" for peer, k in pairs)
            + " |"
        )
        out += [head, "|---" * (1 + len(tools) + len(pairs)) + "|"]
        for label, names in ROWS:
            cells = [_seconds(_med(data, size, t, names[t])) for t in tools]
            ratios = [
                _ratio(_med(data, size, peer, names[peer]), _med(data, size, k, names[k]))
                for peer, k in pairs
            ]
            out.append(f"| {label} | " + " | ".join(cells + ratios) + " |")
        out += [
            "",
            "CPU seconds (the tool with all it started / the hosts), SSH connections / channels",
            "(all hosts), containers created + restarted:",
            "",
            "| | " + " | ".join(NAMES[t] for t in tools) + " |",
            "|---" * (1 + len(tools)) + "|",
        ]
        for label, names in ROWS:
            cells = []
            for t in tools:
                f = _fig(data, size, t, names[t])
                if f is None:
                    cells.append("—")
                    continue
                md = f["medians"]
                cells.append(
                    f"{md['control_cpu']:.1f} / {md['host_cpu']:.1f} s, "
                    f"{md['connections']:.0f} / {md['channels']:.0f}, "
                    f"{md['created']:.0f} + {md['restarted']:.0f}"
                )
            out.append(f"| {label} | " + " | ".join(cells) + " |")
        out += ["", "Commands:", ""]
        for t in tools:
            for _, names in ROWS:
                f = _fig(data, size, t, names[t])
                if f is not None:
                    out.append(f"- {NAMES[t]}, {f['name']}: `{_short_command(f['command'])}`")
    if data.get("round_trips"):
        out += [
            "",
            "### Round trips of a refresh, per host",
            "",
            "One host, deployed, then one run that only checks (kplan `plan`, ansible-playbook",
            "`--check`, pyinfra `--dry`): SSH connections, SSH channels (each command or SFTP",
            "session the tool opened), and for kplan the Docker API requests it sent over its",
            "SSH session (counted at the client; the peers call Docker on the host).",
            "",
            "| tool | services per host | wall | connections | channels | Docker requests |",
            "|---|---|---|---|---|---|",
        ]
        for r in data["round_trips"]:
            docker = f"{r['docker_requests_per_host']:.0f}" if r["tool"] == "kplan" else "—"
            out.append(
                f"| {NAMES[r['tool']]} `{r['command']}` | {r['services']} | {r['wall']:.2f} s | "
                f"{r['connections_per_host']:.0f} | {r['channels_per_host']:.0f} | {docker} |"
            )
    if data.get("scale"):
        from benchmarks.peers.scale import markdown as scale_markdown

        out.append(scale_markdown(data["scale"]).rstrip("\n"))
    if sizes and kplans:
        out += ["", "### Targets", "", "| size | target | measured | met |", "|---|---|---|---|"]
        for size in sizes:
            for k in kplans:
                by = "" if k == "kplan" else f" ({NAMES[k]})"
                for label, (peer, peer_fig), kfig, factor in TARGETS:
                    slow, fast = _med(data, size, peer, peer_fig), _med(data, size, k, kfig)
                    if slow is None or not fast:
                        continue
                    ratio = slow / fast
                    out.append(
                        f"| {size} | {label}{by} | {ratio:.1f}x ({_seconds(slow)} vs "
                        f"{_seconds(fast)}) | {'yes' if ratio >= factor else '**no**'} |"
                    )
        trips = [r for r in data.get("round_trips", []) if r["tool"] == "kplan"]
        if len(trips) > 1:
            counts = {
                (r["connections_per_host"], r["channels_per_host"], r["docker_requests_per_host"])
                for r in trips
            }
            span = f"{trips[0]['services']} to {trips[-1]['services']} services"
            seen = ", ".join(
                f"{r['services']}: {r['channels_per_host']:.0f} channels + "
                f"{r['docker_requests_per_host']:.0f} Docker requests"
                for r in trips
            )
            out.append(
                f"| per host | refresh round trips constant from {span} | {seen} | "
                f"{'yes' if len(counts) == 1 else '**no**'} |"
            )
    return "\n".join(out) + "\n"


def _short_command(command: str) -> str:
    """Commands without the absolute paths of this machine's venvs and Python."""
    return re.sub(r"/\S*/(bin/)?(python[\d.]*|ansible-playbook|pyinfra)\b", r"\2", command)


def update_results(path: Path, section: str) -> None:
    """Put ``section`` between the markers in ``path`` (appended the first time)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    block = f"{BEGIN}\n{section}{END}\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail.lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text, encoding="utf-8")
