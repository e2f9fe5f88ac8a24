"""``docker_image`` with ``registry_auth`` against a registry that requires a login.

A second Debian docker-registry runs beside the lab's plain one, on the lab
bridge address, with TLS (a CA and a server certificate made here) and an
htpasswd file (bcrypt): Docker sends basic-auth credentials only over TLS.
The lab hosts trust the CA through /etc/docker/certs.d/HOST:PORT/ca.crt
(each host has its own copy-on-write /etc). The base image is copied into it
from the lab registry with the registry HTTP API.

The provider is driven through the protocol with real SSH connections: a pull
with the right credentials works and is refreshed, and a pull (or refresh)
without credentials or with a wrong password fails with a clear diagnostic
that never shows the password; the password stays a Secret in state.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import ipaddress
import json
import secrets
import ssl
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kplan.diagnostics import Diagnostic
from kplan.lab.registry import MANIFEST_V2
from kplan.provider_api import (
    ApplyRequest,
    ConfigureRequest,
    HostInfo,
    PlanRequest,
    ReadInstance,
    ReadRequest,
)
from kplan.transport.base import Connection
from kplan.transport.ssh import SSHConnection
from kplan.values import Secret
from kplan_providers.docker import DockerProvider
from tests.integration.lab_fixture import Lab, lab_up, run_ssh

AUTH_PORT = 5443
USER = "kplan-puller"
# Random per run, so that a hit in a diagnostic can only be a leak.
PASSWORD = "pw-" + secrets.token_hex(12)
WRONG_PASSWORD = "wrong-" + secrets.token_hex(12)
REPO = "kplan/private"
TAG = "v1"
ADDR = "docker_image.private"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from lab_up(1, ("base",))


# ---- certificates and the registry ---------------------------------------------------


def _tls_files(directory: Path, ip: str) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate for IP signed by it: (ca.crt, server.crt, server.key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kplan test registry CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = (
        directory / "ca.crt",
        directory / "server.crt",
        directory / "server.key",
    )
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return ca_path, cert_path, key_path


class Http:
    """One registry's HTTP API (plain, or TLS with basic auth)."""

    def __init__(
        self, host: str, port: int, tls: ssl.SSLContext | None = None, auth: str | None = None
    ) -> None:
        self.host, self.port, self.tls = host, port, tls
        self.headers = {"Authorization": f"Basic {auth}"} if auth else {}

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] = {}
    ) -> tuple[int, dict[str, str], bytes]:
        conn: http.client.HTTPConnection
        if self.tls is not None:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=60, context=self.tls)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers={**self.headers, **headers})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()


def _copy_image(src: Http, dst: Http, src_repo: str, src_tag: str) -> str:
    """Copy a schema 2 image from SRC to DST as REPO:TAG; the manifest digest."""
    status, _, manifest = src.request(
        "GET", f"/v2/{src_repo}/manifests/{src_tag}", headers={"Accept": MANIFEST_V2}
    )
    assert status == 200, (status, manifest[:200])
    doc = json.loads(manifest)
    for blob in [doc["config"], *doc["layers"]]:
        digest = blob["digest"]
        status, _, data = src.request("GET", f"/v2/{src_repo}/blobs/{digest}")
        assert status == 200, (status, digest)
        status, headers, body = dst.request("POST", f"/v2/{REPO}/blobs/uploads/")
        assert status == 202, (status, body[:200])
        loc = headers["location"]
        if loc.startswith("http"):
            loc = "/" + loc.split("/", 3)[3]
        sep = "&" if "?" in loc else "?"
        status, _, body = dst.request(
            "PUT",
            f"{loc}{sep}digest={digest}",
            data,
            {"Content-Type": "application/octet-stream", "Content-Length": str(len(data))},
        )
        assert status == 201, (status, body[:200])
    status, headers, body = dst.request(
        "PUT", f"/v2/{REPO}/manifests/{TAG}", manifest, {"Content-Type": MANIFEST_V2}
    )
    assert status == 201, (status, body[:300])
    return headers["docker-content-digest"]


@dataclass(frozen=True)
class AuthRegistry:
    address: str  # HOST:PORT
    digest: str  # the manifest digest of REPO:TAG
    log: Path

    @property
    def name(self) -> str:
        return f"{self.address}/{REPO}"


@pytest.fixture(scope="module")
def registry(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthRegistry]:
    gateway = lab.registry.rsplit(":", 1)[0]
    address = f"{gateway}:{AUTH_PORT}"
    d = tmp_path_factory.mktemp("authreg")
    ca, cert, key = _tls_files(d, gateway)
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode()
    (d / "htpasswd").write_text(f"{USER}:{hashed}\n")
    (d / "data").mkdir()
    config = d / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: info\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {d / 'data'}\n"
        "http:\n"
        f"  addr: {address}\n"
        f"  secret: {secrets.token_hex(16)}\n"
        f"  tls:\n    certificate: {cert}\n    key: {key}\n"
        "auth:\n"
        f"  htpasswd:\n    realm: kplan-test\n    path: {d / 'htpasswd'}\n"
    )
    log = d / "registry.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            ["/usr/bin/docker-registry", "serve", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        tls = ssl.create_default_context(cafile=str(ca))
        creds = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        dst = Http(gateway, AUTH_PORT, tls, creds)
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                status, _, _ = dst.request("GET", "/v2/")
                if status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        # Without credentials the registry asks for them: it does require a login.
        assert Http(gateway, AUTH_PORT, tls).request("GET", "/v2/")[0] == 401
        assert lab.base_image is not None
        base_repo, base_tag = lab.base_image.split("/", 1)[1].rsplit(":", 1)
        digest = _copy_image(
            Http(gateway, int(lab.registry.rsplit(":", 1)[1])), dst, base_repo, base_tag
        )
        # Every lab host trusts the CA for this registry (dockerd reads certs.d per pull).
        for host in lab.hosts:
            client = lab.ssh(host)
            try:
                certs = f"/etc/docker/certs.d/{address}"
                assert run_ssh(client, f"mkdir -p {certs}")[0] == 0
                with client.open_sftp() as sftp:
                    sftp.put(str(ca), f"{certs}/ca.crt")
            finally:
                client.close()
        yield AuthRegistry(address, digest, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# ---- driving the provider --------------------------------------------------------------


class Driver:
    def __init__(self, lab: Lab) -> None:
        self.provider = DockerProvider()
        self.conns: dict[str, SSHConnection] = {}
        addresses = {h.name: h.address for h in lab.hosts}

        def connect(name: str) -> Connection:
            if name not in self.conns:
                self.conns[name] = SSHConnection(
                    name,
                    addresses[name],
                    user="root",
                    key_filename=str(lab.ssh_key),
                    known_hosts=str(lab.known_hosts),
                    connect_timeout=3,
                )
            return self.conns[name]

        self.connect = connect
        hosts = {h.name: HostInfo(h.name, h.address, "ssh") for h in lab.hosts}
        self.provider.configure(ConfigureRequest(hosts, connect))

    def sh(self, host: str, command: str, check: bool = True) -> str:
        return self.connect(host).run(command, check=check).text()

    def apply_create(self, addr: str, host: str, config: Mapping[str, Any]) -> Any:
        plan = self.provider.plan(PlanRequest("docker_image", addr, host, None, config))
        assert not [x for x in plan.diagnostics if x.is_error], plan.diagnostics
        req = ApplyRequest("docker_image", addr, host, "create", None, plan.planned)
        return self.provider.apply(req)

    def read(self, addr: str, host: str, state: Mapping[str, Any]) -> Any:
        return self.provider.read(ReadRequest("docker_image", [ReadInstance(addr, host, state)]))


@pytest.fixture(scope="module")
def d(lab: Lab) -> Iterator[Driver]:
    drv = Driver(lab)
    yield drv
    for c in drv.conns.values():
        c.close()


def config(reg: AuthRegistry, password: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": reg.name, "tag": TAG}
    if password is not None:
        out["registry_auth"] = {"username": USER, "password": Secret(password)}
    return out


def text_of(diags: list[Diagnostic]) -> str:
    return "\n".join(f"{x.summary}\n{x.detail}\n{x!r}\n{x}" for x in diags)


def assert_no_password(*things: Any) -> None:
    for thing in things:
        for pw in (PASSWORD, WRONG_PASSWORD):
            assert pw not in repr(thing) and pw not in str(thing)


def has_image(d: Driver, reg: AuthRegistry) -> bool:
    out = d.sh(
        "node1", f"docker image inspect {reg.name}:{TAG} >/dev/null 2>&1 && echo yes", check=False
    )
    return out.strip() == "yes"


# ---- the tests (in file order) -------------------------------------------------------------


def test_pull_without_credentials_fails_clearly(d: Driver, registry: AuthRegistry) -> None:
    resp = d.apply_create(ADDR, "node1", config(registry, None))
    assert resp.new_state is None
    assert len(resp.diagnostics) == 1 and resp.diagnostics[0].is_error
    diag = resp.diagnostics[0]
    assert diag.code == "image-pull", text_of(resp.diagnostics)
    assert f"pulling {registry.name}:{TAG}" in diag.summary
    assert "no basic auth credentials" in diag.detail, diag.detail
    assert "the registry requires a login: set registry_auth" in diag.detail
    assert_no_password(text_of(resp.diagnostics))
    assert not has_image(d, registry)


def test_pull_with_wrong_password_fails_without_showing_it(
    d: Driver, registry: AuthRegistry
) -> None:
    resp = d.apply_create(ADDR, "node1", config(registry, WRONG_PASSWORD))
    assert resp.new_state is None
    assert len(resp.diagnostics) == 1 and resp.diagnostics[0].is_error
    diag = resp.diagnostics[0]
    assert diag.code == "image-pull", text_of(resp.diagnostics)
    assert f"pulling {registry.name}:{TAG}" in diag.summary
    assert "unauthorized" in diag.detail.lower(), diag.detail
    assert "check registry_auth's username and password" in diag.detail
    assert_no_password(text_of(resp.diagnostics))
    assert not has_image(d, registry)


def test_pull_with_credentials(d: Driver, registry: AuthRegistry) -> None:
    resp = d.apply_create(ADDR, "node1", config(registry, PASSWORD))
    assert not resp.diagnostics, text_of(resp.diagnostics)
    state = resp.new_state
    assert state["repo_digest"] == f"{registry.name}@{registry.digest}"
    assert state["registry_digest"] == registry.digest
    assert state["image_id"].startswith("sha256:")
    # The image is on the host, with the id and digest state says.
    info = json.loads(d.sh("node1", f"docker image inspect {registry.name}:{TAG}"))[0]
    assert info["Id"] == state["image_id"]
    assert state["repo_digest"] in info["RepoDigests"]
    # The password stays a Secret in state: never in clear.
    password = state["registry_auth"]["password"]
    assert isinstance(password, Secret) and password.reveal() == PASSWORD
    assert_no_password(state, dict(state))

    # A refresh asks the registry with the same credentials: nothing moved.
    read = d.read(ADDR, "node1", state)
    assert not read.diagnostics, text_of(read.diagnostics)
    assert read.states[ADDR] == state
    assert_no_password(read.states[ADDR])


def test_refresh_with_wrong_password_warns_without_showing_it(
    d: Driver, registry: AuthRegistry
) -> None:
    state = {
        **config(registry, WRONG_PASSWORD),
        "digest": None,
        "keep_locally": False,
        "image_id": None,
        "repo_digest": f"{registry.name}@{registry.digest}",
        "registry_digest": registry.digest,
    }
    read = d.read(ADDR, "node1", state)
    assert [x.code for x in read.diagnostics] == ["registry-unreachable"], read.diagnostics
    assert not read.diagnostics[0].is_error
    assert_no_password(text_of(read.diagnostics), read.states)
    # State keeps what it recorded: the image is still there, the digest unchanged.
    assert read.states[ADDR]["registry_digest"] == registry.digest
