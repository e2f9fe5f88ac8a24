"""Running commands, installing Debian packages, and stopping processes by pid."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from kplan.lab.errors import LabError
from kplan.lab.spec import ProcRef, proc_stat

__all__ = [
    "LAB_PACKAGES",
    "Echo",
    "ensure_packages",
    "missing_packages",
    "pids_in_netns",
    "require_root",
    "run",
    "stop_pids",
    "wait_until",
]

Echo = Callable[[str], None]

# What the lab needs on the machine, by Debian package name.
LAB_PACKAGES = ("iproute2", "openssh-server", "docker.io", "docker-registry", "debootstrap")


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise LabError(
            f"kplan lab {what} needs root: it creates network namespaces, a bridge and "
            "mounts, and starts sshd and dockerd (run it with sudo)"
        )


def run(
    args: Sequence[str],
    *,
    check: bool = True,
    input: str | None = None,
    timeout: float = 300,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(
            list(args),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except FileNotFoundError:
        raise LabError(f"{args[0]}: command not found") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(args)}: timed out after {timeout:.0f} s") from None
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise LabError(f"{' '.join(args)} failed ({proc.returncode}): " + " | ".join(detail))
    return proc


def missing_packages(packages: Iterable[str] = LAB_PACKAGES) -> list[str]:
    missing = []
    for pkg in packages:
        proc = run(["dpkg-query", "-W", "-f=${db:Status-Status}", pkg], check=False)
        if proc.returncode != 0 or proc.stdout.strip() != "installed":
            missing.append(pkg)
    return missing


def ensure_packages(echo: Echo, packages: Iterable[str] = LAB_PACKAGES) -> list[str]:
    """Install the packages that are missing; return their names.

    Services of the new packages are not started: a policy-rc.d that forbids
    it is put in place for the install when the machine has none.
    """
    missing = missing_packages(packages)
    if not missing:
        return []
    echo(f"Installing Debian packages: {' '.join(missing)} (apt-get)")
    policy = Path("/usr/sbin/policy-rc.d")
    made_policy = False
    if not policy.exists():
        policy.write_text(
            "#!/bin/sh\n# kplan lab: no service starts during the install\nexit 101\n"
        )
        policy.chmod(0o755)
        made_policy = True
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        run(["apt-get", "update", "-q"], env=env, timeout=600)
        run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
            env=env,
            timeout=1200,
        )
    finally:
        if made_policy:
            policy.unlink(missing_ok=True)
    still = missing_packages(missing)
    if still:
        raise LabError(f"apt-get did not install: {' '.join(still)}")
    return missing


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _signal(ref: ProcRef, sig: int) -> None:
    if ref.alive():
        try:
            os.kill(ref.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError as exc:
            raise LabError(f"cannot signal {ref.what} (pid {ref.pid}): {exc}") from None


def stop_pids(refs: Sequence[ProcRef], timeout: float = 15.0) -> list[ProcRef]:
    """SIGTERM each live process, then SIGKILL what is left after ``timeout``.

    Returns the processes that had to be killed.
    """
    live = [r for r in refs if r.alive()]
    for r in live:
        _signal(r, signal.SIGTERM)
    wait_until(lambda: not any(r.alive() for r in live), timeout)
    killed = [r for r in live if r.alive()]
    for r in killed:
        _signal(r, signal.SIGKILL)
    wait_until(lambda: not any(r.alive() for r in killed), 5.0)
    return killed


def netns_inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:
        return None


def pids_in_netns(inodes: set[int]) -> list[ProcRef]:
    """Every process whose network namespace is one of ``inodes``."""
    found: list[ProcRef] = []
    if not inodes:
        return found
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            link = os.readlink(f"/proc/{entry.name}/ns/net")
        except OSError:
            continue
        # "net:[4026532281]"
        if int(link[link.index("[") + 1 : -1]) in inodes:
            pid = int(entry.name)
            st = proc_stat(pid)
            if st is not None:
                found.append(ProcRef(pid=pid, start=st[1], what=f"pid {pid} in a lab netns"))
    return found
