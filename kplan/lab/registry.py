"""The lab registry (Debian's docker-registry) and a small client that pushes to it.

The registry listens on the bridge address, so that every lab host reaches
it and so does the machine itself. Images are pushed with the registry's
HTTP API (Docker distribution v2): a blob is uploaded only when the
registry does not have it yet.
"""

from __future__ import annotations

import http.client
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from kplan.lab.errors import LabError
from kplan.lab.spec import REGISTRY_PORT, LabSpec, ProcRef

__all__ = [
    "MANIFEST_V2",
    "Blob",
    "RegistryClient",
    "registry_healthy",
    "start_registry",
]

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def registry_dir(spec: LabSpec) -> Path:
    return spec.dir / "registry"


def write_config(spec: LabSpec) -> Path:
    d = registry_dir(spec)
    (d / "data").mkdir(parents=True, exist_ok=True)
    cfg = d / "config.yml"
    cfg.write_text(
        "version: 0.1\n"
        "log:\n  level: info\n  accesslog:\n    disabled: true\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {d / 'data'}\n"
        "  delete:\n    enabled: true\n"
        "  cache:\n    blobdescriptor: inmemory\n"
        "http:\n"
        f"  addr: {spec.gateway}:{REGISTRY_PORT}\n"
        "  headers:\n    X-Content-Type-Options: [nosniff]\n"
    )
    return cfg


def start_registry(spec: LabSpec) -> ProcRef:
    cfg = write_config(spec)
    log = registry_dir(spec) / "registry.log"
    with open(log, "ab") as out:
        p = subprocess.Popen(
            ["/usr/bin/docker-registry", "serve", str(cfg)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return ProcRef.of(p.pid, "registry")


def registry_healthy(spec: LabSpec, timeout: float = 2.0) -> bool:
    try:
        return RegistryClient(spec.gateway, REGISTRY_PORT, timeout).ping()
    except (OSError, http.client.HTTPException):
        return False


@dataclass(frozen=True)
class Blob:
    digest: str  # sha256:...
    size: int
    media_type: str


class RegistryClient:
    """The few calls of the distribution API that a push needs (plain HTTP)."""

    def __init__(self, host: str, port: int, timeout: float = 60.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout

    def _conn(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | BinaryIO | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = self._conn()
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def ping(self) -> bool:
        status, _, _ = self._request("GET", "/v2/")
        return status == 200

    def has_blob(self, repo: str, digest: str) -> bool:
        status, _, _ = self._request("HEAD", f"/v2/{repo}/blobs/{digest}")
        return status == 200

    def push_blob(self, repo: str, digest: str, size: int, source: Path | bytes) -> bool:
        """Upload a blob unless the registry has it; True when it was uploaded."""
        if self.has_blob(repo, digest):
            return False
        status, headers, data = self._request("POST", f"/v2/{repo}/blobs/uploads/")
        if status != 202 or "location" not in headers:
            raise LabError(f"registry refused an upload to {repo}: {status} {data[:200]!r}")
        loc = headers["location"]
        if loc.startswith("http"):
            loc = "/" + loc.split("/", 3)[3]
        sep = "&" if "?" in loc else "?"
        hdrs = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        if isinstance(source, bytes):
            status, _, data = self._request("PUT", f"{loc}{sep}digest={digest}", source, hdrs)
        else:
            with open(source, "rb") as f:
                status, _, data = self._request("PUT", f"{loc}{sep}digest={digest}", f, hdrs)
        if status != 201:
            raise LabError(f"registry refused blob {digest} for {repo}: {status} {data[:200]!r}")
        return True

    def put_manifest(self, repo: str, tag: str, manifest: bytes) -> str:
        status, headers, data = self._request(
            "PUT", f"/v2/{repo}/manifests/{tag}", manifest, {"Content-Type": MANIFEST_V2}
        )
        if status != 201:
            raise LabError(f"registry refused the manifest {repo}:{tag}: {status} {data[:300]!r}")
        return headers.get("docker-content-digest", "")

    def manifest_digest(self, repo: str, tag: str) -> str | None:
        status, headers, _ = self._request(
            "HEAD", f"/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_V2}
        )
        return headers.get("docker-content-digest") if status == 200 else None

    def tags(self, repo: str) -> list[str]:
        status, _, data = self._request("GET", f"/v2/{repo}/tags/list")
        if status != 200:
            return []
        return list(json.loads(data).get("tags") or [])
