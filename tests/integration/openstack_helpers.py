"""What the OpenStack example tests share: commands on lab hosts, outputs, tokens."""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.conftest import REPO, run_kplan
from tests.integration.lab_fixture import Lab, check, kplan_lab, run_ssh


def copy_example(lab: Lab, name: str, dst: Path) -> Path:
    """examples/NAME copied to DST, the lab's inventory written into it (as the README does)."""
    shutil.copytree(
        REPO / "examples" / name,
        dst,
        ignore=shutil.ignore_patterns(".kplan", "*.plan", "inv*", "clouds.yaml"),
    )
    check(kplan_lab("up", "--name", lab.name, "--inventory", str(dst / "inventory.kp.yaml")))
    return dst


def shorten_token_lifetime(root: Path) -> None:
    """One keystone option changed in the example: token_expiration 86400 -> 3600."""
    main = root / "main.kp.yaml"
    original = main.read_text()
    assert original.count("      processes: 1\n") == 1
    main.write_text(
        original.replace(
            "      processes: 1\n", "      processes: 1\n      token_expiration: 3600\n"
        )
    )


def sh(lab: Lab, i: int, command: str) -> str:
    """COMMAND's output on lab host I (0-based); it must succeed."""
    client = lab.ssh(lab.hosts[i])
    try:
        code, out, err = run_ssh(client, command)
    finally:
        client.close()
    assert code == 0, err
    return out


def started(lab: Lab, i: int, name: str) -> str:
    """When the container last started (changes on restart and on replace)."""
    return sh(lab, i, f"docker inspect -f '{{{{.State.StartedAt}}}}' {name}").strip()


def sensitive_output(root: Path, name: str) -> str:
    return run_kplan(root, "output", "-raw", "-show-sensitive", name, check=True).stdout


def issue(auth_url: str, password: str) -> tuple[str, dict[str, Any]]:
    """A project-scoped token for admin, asked for as any OpenStack client does: (id, body)."""
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": "admin", "domain": {"name": "Default"}, "password": password}
                },
            },
            "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}},
        }
    }
    req = urllib.request.Request(
        f"{auth_url}/auth/tokens",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 201
        found: dict[str, Any] = json.load(resp)["token"]
        return str(resp.headers["X-Subject-Token"]), found


def token(auth_url: str, password: str) -> dict[str, Any]:
    return issue(auth_url, password)[1]


def _admin_issue(root: Path) -> tuple[str, dict[str, Any]]:
    auth_url = run_kplan(root, "output", "-raw", "auth_url", check=True).stdout.strip()
    return issue(auth_url, sensitive_output(root, "admin_password").strip())


def admin_token(root: Path) -> dict[str, Any]:
    return _admin_issue(root)[1]


def changed(plan_json: str) -> dict[str, str]:
    """address -> kplan_action of every change in a JSON plan."""
    return {
        c["address"]: c["kplan_action"]
        for c in json.loads(plan_json)["resource_changes"]
        if c["kplan_action"] != "no-op"
    }


def _call(
    url: str, token_id: str, method: str = "GET", body: bytes | None = None, **headers: str
) -> tuple[int, bytes]:
    req = urllib.request.Request(
        url, data=body, method=method, headers={"X-Auth-Token": token_id, **headers}
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return resp.status, resp.read()


def scoped_token_id(root: Path) -> str:
    """An admin token's id, for the other services' APIs."""
    return _admin_issue(root)[0]


def upload_and_list_image(root: Path, data: bytes) -> list[dict[str, Any]]:
    """Glance v2, as the openstack client does it: create the image, upload its data, list."""
    image_url = run_kplan(root, "output", "-raw", "image_url", check=True).stdout.strip()
    tok = scoped_token_id(root)
    meta = {"name": "kplan-test", "disk_format": "raw", "container_format": "bare"}
    status, body = _call(
        f"{image_url}/v2/images",
        tok,
        "POST",
        json.dumps(meta).encode(),
        **{"Content-Type": "application/json"},
    )
    assert status == 201, body
    image_id = json.loads(body)["id"]
    status, _ = _call(
        f"{image_url}/v2/images/{image_id}/file",
        tok,
        "PUT",
        data,
        **{"Content-Type": "application/octet-stream"},
    )
    assert status == 204
    _, listed = _call(f"{image_url}/v2/images", tok)
    images: list[dict[str, Any]] = json.loads(listed)["images"]
    return images


def placement_answers(root: Path) -> dict[str, Any]:
    """Placement's resource providers, asked through its endpoint with a token."""
    url = run_kplan(root, "output", "-raw", "placement_url", check=True).stdout.strip()
    status, body = _call(f"{url}/resource_providers", scoped_token_id(root))
    assert status == 200
    found: dict[str, Any] = json.loads(body)
    return found


def concurrent_answers(root: Path, urls: list[str], each: int = 4) -> list[int]:
    """The statuses of EACH simultaneous admin GETs of every URL (a fresh keystone's first ones)."""
    import urllib.error
    from concurrent.futures import ThreadPoolExecutor

    tok = scoped_token_id(root)

    def get(url: str) -> int:
        try:
            return _call(url, tok)[0]
        except urllib.error.HTTPError as exc:
            return exc.code

    with ThreadPoolExecutor(max_workers=len(urls) * each) as pool:
        return list(pool.map(get, [u for u in urls for _ in range(each)]))


def delete_endpoint(root: Path, service_type: str, interface: str) -> None:
    """Delete one of keystone's endpoints by hand, through its API, as an operator might."""
    auth_url = run_kplan(root, "output", "-raw", "auth_url", check=True).stdout.strip()
    tok = scoped_token_id(root)
    _, body = _call(f"{auth_url}/services?type={service_type}", tok)
    (service,) = json.loads(body)["services"]
    query = f"service_id={service['id']}&interface={interface}"
    _, body = _call(f"{auth_url}/endpoints?{query}", tok)
    (endpoint,) = json.loads(body)["endpoints"]
    status, _ = _call(f"{auth_url}/endpoints/{endpoint['id']}", tok, "DELETE")
    assert status == 204


def wait_for(ok: Callable[[], bool], seconds: float) -> bool:
    """Whether OK() comes true within SECONDS (an HTTP or connection error counts as not yet)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if ok():
                return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(2)
