"""One lab host's supervisor: runs inside the host's namespaces, starts sshd and dockerd.

Started by ``kplan lab up`` as::

    nsenter --net=/var/run/netns/NS unshare --mount --uts --propagation private \\
        python3 supervisor.py CONFIG.json

so that its pid is the supervisor's own (nsenter and unshare exec). It makes
the host's private view of the file system, sets the hostname, starts sshd
and dockerd as children, writes their pids, and on SIGTERM stops them
(SIGTERM, then SIGKILL after a timeout) and exits.

This file imports nothing of kplan: it runs as a script by its path.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

STOP_TIMEOUT = 20.0


def _log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} supervisor[{os.getpid()}]: {msg}", flush=True)


def _sh(*args: str) -> None:
    subprocess.run(list(args), check=True)


def _mounts(cfg: dict[str, Any]) -> None:
    # A copy-on-write /etc: the host's own /etc/hosts, resolv.conf, hostname,
    # /etc/kolla and /etc/docker live in the upper directory; the machine's
    # /etc is never written.
    _sh(
        "mount",
        "-t",
        "overlay",
        "overlay",
        "-o",
        f"lowerdir=/etc,upperdir={cfg['etc_upper']},workdir={cfg['etc_work']}",
        "/etc",
    )
    # A private /run (the host's docker.sock, sshd's privilege separation
    # directory, dockerd's exec root), /tmp and /srv, and root's .bashrc: a
    # directory over a directory, a file over a file, where the machine has one.
    for src, dst in cfg["binds"]:
        if os.path.exists(dst) and os.path.isdir(src) == os.path.isdir(dst):
            _sh("mount", "--bind", src, dst)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    _sh("hostname", cfg["hostname"])


def main(config_path: str) -> int:
    cfg: dict[str, Any] = json.loads(Path(config_path).read_text())
    _mounts(cfg)
    children: dict[str, subprocess.Popen[bytes]] = {}
    for what, args, log in (
        ("sshd", cfg["sshd_args"], cfg["sshd_log"]),
        ("dockerd", cfg["dockerd_args"], cfg["dockerd_log"]),
    ):
        with open(log, "ab") as out:
            children[what] = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        _log(f"started {what} pid {children[what].pid}: {' '.join(args)}")
    pids = {what: p.pid for what, p in children.items()}
    tmp = Path(cfg["pids_file"] + ".tmp")
    tmp.write_text(json.dumps(pids))
    tmp.replace(cfg["pids_file"])

    stopping = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    reported: set[str] = set()
    while not stopping:
        for what, p in children.items():
            if what not in reported and p.poll() is not None:
                _log(f"{what} exited with {p.returncode}")
                reported.add(what)
        time.sleep(0.2)

    _log("stopping")
    for p in children.values():
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    for what, p in children.items():
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _log(f"{what} did not stop in {STOP_TIMEOUT:.0f} s: SIGKILL")
            p.kill()
            p.wait()
    _log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
