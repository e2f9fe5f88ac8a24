"""``connection: local``: the machine kplan runs on, without SSH (all-in-one)."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Sequence
from typing import Any

from kplan.fileio import write_atomic
from kplan.transport.base import (
    CommandFailed,
    CommandResult,
    Connection,
    HostUnreachable,
    command_text,
)
from kplan.transport.files import chown_names

__all__ = ["LocalConnection"]


class LocalConnection(Connection):
    def __init__(self, host: str, *, docker_url: str | None = None) -> None:
        self.host = host
        # The Docker API socket; None: DOCKER_HOST or the default socket.
        self._docker_url = docker_url
        self._docker: Any = None
        self._lock = threading.Lock()

    def run(
        self,
        command: str | Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> CommandResult:
        line = command_text(command)
        try:
            proc = subprocess.run(
                ["/bin/sh", "-c", line],
                input=stdin if stdin is not None else b"",
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise HostUnreachable(
                self.host, f"command timed out after {timeout:g} s", line
            ) from None
        result = CommandResult(proc.returncode, proc.stdout, proc.stderr)
        if check and not result.ok:
            raise CommandFailed(self.host, line, result)
        return result

    def read_file(self, path: str) -> bytes | None:
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def write_file(
        self,
        path: str,
        data: bytes,
        *,
        mode: int = 0o644,
        owner: str | None = None,
        group: str | None = None,
        atomic: bool = True,
        parents: bool = False,
    ) -> None:
        uid, gid = chown_names(owner, group)
        if parents:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if not atomic:
            with open(path, "r+b" if os.path.exists(path) else "wb") as f:
                f.write(data)
                f.truncate()
            # chown first: it clears setuid/setgid bits that chmod then sets.
            if uid != -1 or gid != -1:
                os.chown(path, uid, gid)
            os.chmod(path, mode)
            return
        write_atomic(path, data, mode=mode, uid=uid, gid=gid)

    def docker(self) -> Any:
        with self._lock:
            if self._docker is None:
                import docker

                try:
                    if self._docker_url:
                        self._docker = docker.APIClient(base_url=self._docker_url, version="auto")
                    else:
                        self._docker = docker.from_env(version="auto").api
                except docker.errors.DockerException as exc:
                    raise HostUnreachable(
                        self.host, "the Docker API is not reachable", str(exc)
                    ) from None
            return self._docker

    def close(self) -> None:
        with self._lock:
            if self._docker is not None:
                self._docker.close()
                self._docker = None
