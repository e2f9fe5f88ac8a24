"""``kplan lab images``: service images built from Debian bookworm packages.

A debootstrap minbase of bookworm (plus BASE_PACKAGES and fresh apt lists)
is made once and cached as a tarball. Each image is a copy of it in which
its packages are installed in a chroot (/proc mounted, a policy-rc.d that
forbids service starts), trimmed, and turned into a one-layer image: the
layer (a gzip tar of the root), the image config and a schema 2 manifest
are cached under ~/.cache/kplan/lab/images/, keyed by a hash of the recipe
and of the rootfs it was built from, and pushed to the lab registry with its
HTTP API. A second run finds everything cached and only pushes (a blob the
registry already has is not sent again).

Adding an image is one entry in RECIPES.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kplan.lab.errors import LabError
from kplan.lab.registry import MANIFEST_V2, RegistryClient, registry_healthy
from kplan.lab.spec import DEFAULT_SUBNET, REGISTRY_PORT, LabRecord, LabSpec
from kplan.lab.system import Echo, ensure_packages, require_root, run

__all__ = ["RECIPES", "Recipe", "build_and_push", "build_image", "cache_dir", "catalog_text"]

SUITE = "bookworm"
TAG = SUITE
REPO_PREFIX = "kplan"
# Bump when the build procedure changes in a way that changes the images.
FORMAT = 1
BASE_PACKAGES = ("ca-certificates", "curl", "iproute2", "netbase", "procps")
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

MARIADB_ENTRYPOINT = r"""#!/bin/bash
# kplan lab: initialise an empty data directory, then run mariadbd in the foreground.
#
# Galera (GALERA_ADDRESS = this node's address, GALERA_NODES = every node's):
# join a peer that answers on 4567. With none answering, the node that may
# start a cluster does so: one whose state Galera marked safe_to_bootstrap
# (the last to leave a cluster stopped in order), or the GALERA_BOOTSTRAP=1
# node when it has never been in a cluster. After a crash (no node safe),
# every node reads its last committed position (mariadbd --wsrep-recover) and
# offers it to the others on GALERA_RECOVERY_PORT; the most advanced (ties:
# the lowest address) starts the cluster and the others join it.
set -e
datadir="${MARIADB_DATADIR:-/var/lib/mysql}"
mkdir -p "$datadir" /run/mysqld
chown mysql:mysql "$datadir" /run/mysqld
if [ ! -d "$datadir/mysql" ]; then
    mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db >/dev/null
fi
run() { exec mariadbd --user=mysql --datadir="$datadir" --skip-name-resolve "$@"; }
[ -n "$GALERA_NODES" ] || run "$@"

say() { echo "kplan-mariadb: $*" >&2; }
peers=$(for p in $GALERA_NODES; do [ "$p" = "$GALERA_ADDRESS" ] || echo "$p"; done)
offer=""
start() { [ -z "$offer" ] || kill "$offer" 2>/dev/null || true; run "$@"; }
peer_up() {
    for p in $peers; do
        if timeout 2 bash -c "echo > /dev/tcp/$p/4567" 2>/dev/null; then return 0; fi
    done
    return 1
}
grastate="$datadir/grastate.dat"
# Never in a cluster: no Galera state yet.
fresh=0
[ -f "$grastate" ] || fresh=1
safe=0
if grep -q '^safe_to_bootstrap: *1' "$grastate" 2>/dev/null; then safe=1; fi
port="${GALERA_RECOVERY_PORT:-4566}"
deadline=$(( $(date +%s) + ${GALERA_WAIT:-600} ))
mine=""
while [ "$(date +%s)" -lt "$deadline" ]; do
    if peer_up; then say "joining the running cluster"; start "$@"; fi
    if [ "$safe" = 1 ] || { [ "$fresh" = 1 ] && [ "${GALERA_BOOTSTRAP:-0}" = 1 ]; }; then
        say "no peer answers: starting a new cluster here"
        start --wsrep-new-cluster "$@"
    fi
    if [ "$fresh" = 0 ] && [ -z "$mine" ]; then
        mariadbd --user=mysql --datadir="$datadir" --wsrep-recover \
            --log-error=/run/mysqld/recover.log >/dev/null 2>&1 || true
        mine=$(sed -n 's/.*Recovered position: [^:]*:\(-\{0,1\}[0-9][0-9]*\).*/\1/p' \
            /run/mysqld/recover.log | tail -1)
        mine=${mine:--1}
        say "recovered position $mine; offering it on port $port"
        socat -T2 "TCP-LISTEN:$port,bind=$GALERA_ADDRESS,fork,reuseaddr" \
            SYSTEM:"echo $mine" 2>/dev/null &
        offer=$!
    fi
    if [ -n "$mine" ]; then
        best=1
        answered=0
        for p in $peers; do
            theirs=$(timeout 2 socat -T2 - "TCP:$p:$port" 2>/dev/null </dev/null || true)
            case "$theirs" in -[0-9]*|[0-9]*) ;; *) continue ;; esac
            answered=$((answered + 1))
            if [ "$theirs" -gt "$mine" ]; then best=0; fi
            if [ "$theirs" -eq "$mine" ] && \
                [ "$(printf '%s\n%s\n' "$p" "$GALERA_ADDRESS" | sort -V | head -1)" = "$p" ]; then
                best=0
            fi
        done
        if [ "$best" = 1 ] && [ "$answered" -eq "$(echo $peers | wc -w)" ]; then
            say "most advanced of all nodes (position $mine): starting the cluster here"
            sleep 3  # the others read this node's position before it stops offering it
            sed -i 's/^safe_to_bootstrap: *0/safe_to_bootstrap: 1/' "$grastate"
            start --wsrep-new-cluster "$@"
        fi
    fi
    sleep 2
done
say "no peer answered within ${GALERA_WAIT:-600} s, and this node may not start a cluster"
exit 1
"""

RABBITMQ_ENTRYPOINT = r"""#!/bin/bash
# kplan lab: RabbitMQ in the foreground as the rabbitmq user.
#
# The Erlang cookie is read from RABBITMQ_COOKIE_FILE (default
# /etc/rabbitmq/erlang.cookie: the mounted configuration directory) and
# copied into the rabbitmq user's home (owner rabbitmq, mode 0400), where the
# server and `docker exec -u rabbitmq IMAGE rabbitmqctl` both find it; without
# that file a random cookie is made once. A node that has never run (an empty
# mnesia directory) and is given RABBITMQ_SEED (the address of the node that
# starts the cluster) waits until the seed answers on its AMQP port before it
# starts, so that peer discovery joins the seed's cluster instead of
# starting a cluster of its own (nodes created together would race).
set -e
home=/var/lib/rabbitmq
cookie="${RABBITMQ_COOKIE_FILE:-/etc/rabbitmq/erlang.cookie}"
say() { echo "kplan-rabbitmq: $*" >&2; }
mkdir -p "$home/mnesia"
chown rabbitmq:rabbitmq "$home" "$home/mnesia"
if [ -f "$cookie" ]; then
    rm -f "$home/.erlang.cookie"
    install -o rabbitmq -g rabbitmq -m 0400 "$cookie" "$home/.erlang.cookie"
elif [ ! -s "$home/.erlang.cookie" ]; then
    say "no $cookie: making a random Erlang cookie (enough for a single node)"
    (umask 0277 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$home/.erlang.cookie")
    chown rabbitmq:rabbitmq "$home/.erlang.cookie"
fi
if [ -n "$RABBITMQ_SEED" ] && [ -z "$(ls -A "$home/mnesia")" ]; then
    port="${RABBITMQ_SEED_PORT:-5672}"
    deadline=$(( $(date +%s) + ${RABBITMQ_SEED_WAIT:-300} ))
    say "a new node: waiting for the seed $RABBITMQ_SEED:$port"
    until timeout 2 bash -c "echo > /dev/tcp/$RABBITMQ_SEED/$port" 2>/dev/null; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            say "the seed $RABBITMQ_SEED:$port did not answer within ${RABBITMQ_SEED_WAIT:-300} s"
            exit 1
        fi
        sleep 2
    done
    say "the seed answers: starting, to join its cluster"
fi
export HOME="$home"
cd "$home"
exec setpriv --reuid rabbitmq --regid rabbitmq --init-groups \
    /usr/lib/rabbitmq/bin/rabbitmq-server "$@"
"""

KEYSTONE_UWSGI = """[uwsgi]
# kplan lab: keystone's public API in the foreground, logs to stdout.
plugins = python3
http-socket = :5000
wsgi-file = /usr/bin/keystone-wsgi-public
processes = 2
threads = 2
uid = keystone
gid = keystone
master = true
die-on-term = true
add-header = Connection: close
"""


@dataclass(frozen=True)
class Recipe:
    """One image: its Debian packages, its command, and files written into it."""

    packages: tuple[str, ...]
    cmd: tuple[str, ...]
    files: tuple[tuple[str, int, str], ...] = ()  # (path, mode, content)
    setup: str = ""  # a shell script run in the chroot after the install
    # (name, id): a system user and group made with this fixed id before the
    # install, so that the package's own `adduser --system` keeps it.
    users: tuple[tuple[str, int], ...] = ()
    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()  # `docker run IMAGE ARGS` passes ARGS to it
    description: str = ""  # one line for `kplan lab images --help`; not part of the key

    def key(self, rootfs_key: str) -> str:
        blob = json.dumps(
            {
                "format": FORMAT,
                "rootfs": rootfs_key,
                "packages": sorted(self.packages),
                "cmd": self.cmd,
                "files": self.files,
                "setup": self.setup,
                "users": self.users,
                "env": self.env,
                "entrypoint": self.entrypoint,
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# Each service's user and group id in the images: Kolla's, so that files a
# module writes for a service (owned by this id) are right at plan time, and a
# host that kolla-ansible deployed keeps its files' owners.
SERVICE_IDS: dict[str, int] = {
    "glance": 42415,
    "keystone": 42425,
    "mysql": 42434,
    "rabbitmq": 42439,
    "haproxy": 42454,
    "memcache": 42457,
    "placement": 42482,
}

# name -> recipe. Adding an image is one entry here.
RECIPES: dict[str, Recipe] = {
    "base": Recipe((), ("bash",), description="Debian bookworm with the base packages; runs bash"),
    "memcached": Recipe(
        ("memcached",),
        ("memcached", "-u", "memcache", "-m", "64", "-v"),
        users=(("memcache", SERVICE_IDS["memcache"]),),
        description="memcached with 64 MB, in the foreground",
    ),
    # jq: kplan/common's collector reads Docker's config.v2.json files with it
    # (container id -> name) for its container log lookup table.
    "rsyslog": Recipe(
        ("rsyslog", "jq"),
        ("rsyslogd", "-n", "-iNONE"),
        description="rsyslogd in the foreground (imfile, mmjsonparse; jq beside it)",
    ),
    "cron": Recipe(
        ("cron", "logrotate"),
        ("cron", "-f"),
        description="Debian's cron in the foreground, with logrotate",
    ),
    "toolbox": Recipe(
        ("python3-openstackclient", "mariadb-client"),
        ("sleep", "infinity"),
        description="openstack and mariadb clients for `docker exec`; sleeps",
    ),
    "mariadb": Recipe(
        ("mariadb-server", "galera-4", "rsync", "socat"),
        (),
        entrypoint=("/usr/local/bin/kplan-mariadb",),
        files=(("/usr/local/bin/kplan-mariadb", 0o755, MARIADB_ENTRYPOINT),),
        users=(("mysql", SERVICE_IDS["mysql"]),),
        # The package's postinst makes a data directory; a new volume would copy it
        # in and look like a node that has run before. The entrypoint makes its own.
        setup="rm -rf /var/lib/mysql/*",
        description="MariaDB server with Galera; sets up an empty data directory",
    ),
    "rabbitmq": Recipe(
        ("rabbitmq-server",),
        (),
        entrypoint=("/usr/local/bin/kplan-rabbitmq",),
        files=(("/usr/local/bin/kplan-rabbitmq", 0o755, RABBITMQ_ENTRYPOINT),),
        users=(("rabbitmq", SERVICE_IDS["rabbitmq"]),),
        # The package's postinst makes an Erlang cookie: every container of the
        # image would share it. The entrypoint takes the one it is given.
        setup="rm -f /var/lib/rabbitmq/.erlang.cookie && rm -rf /var/lib/rabbitmq/mnesia/*",
        description="RabbitMQ server; the Erlang cookie from /etc/rabbitmq/erlang.cookie",
    ),
    "haproxy": Recipe(
        ("haproxy",),
        ("haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"),
        users=(("haproxy", SERVICE_IDS["haproxy"]),),
        description="HAProxy reading /etc/haproxy/haproxy.cfg (mount yours)",
    ),
    "keepalived": Recipe(
        ("keepalived",),
        ("keepalived", "--dont-fork", "--log-console"),
        description="keepalived in the foreground, logging to the console",
    ),
    "keystone": Recipe(
        ("keystone", "uwsgi-plugin-python3", "python3-pymysql", "python3-memcache"),
        ("uwsgi", "--ini", "/etc/kplan/keystone-uwsgi.ini"),
        files=(("/etc/kplan/keystone-uwsgi.ini", 0o644, KEYSTONE_UWSGI),),
        users=(("keystone", SERVICE_IDS["keystone"]),),
        description="OpenStack Keystone's public API under uWSGI on port 5000",
    ),
    "placement": Recipe(
        ("placement-api", "uwsgi-plugin-python3", "python3-pymysql", "python3-memcache"),
        ("uwsgi", "--ini", "/etc/placement/placement-uwsgi.ini"),
        users=(("placement", SERVICE_IDS["placement"]),),
        description="OpenStack Placement's API under uWSGI (mount its config at /etc/placement)",
    ),
    "glance": Recipe(
        ("glance-api", "python3-pymysql", "python3-memcache"),
        ("glance-api",),
        users=(("glance", SERVICE_IDS["glance"]),),
        description="OpenStack Glance API",
    ),
}
# What `kplan lab images` builds without --only.
DEFAULT_IMAGES = ("base", "memcached", "rsyslog", "mariadb")


def catalog_text() -> str:
    """The images that can be built, one line each, for ``kplan lab images --help``."""
    width = max(map(len, RECIPES))
    return "\n".join(
        f"  {name.ljust(width)}  {recipe.description}"
        + (" (default)" if name in DEFAULT_IMAGES else "")
        for name, recipe in RECIPES.items()
    )


# Kolla's fixed ids lie above Debian's system range (100-999), where a package's
# `adduser --system` would refuse an existing user ("not a system user"): widen it.
_ADDUSER_RANGES = (
    "LAST_SYSTEM_UID=59999\nLAST_SYSTEM_GID=59999\n"
    "FIRST_UID=60000\nFIRST_GID=60000\nLAST_UID=60999\nLAST_GID=60999\n"
)


def _users_script(users: tuple[tuple[str, int], ...]) -> str:
    """Shell that makes each service user and group with its fixed id."""
    lines = [f"printf '{_ADDUSER_RANGES}' >> /etc/adduser.conf"]
    for name, uid in users:
        lines.append(f"groupadd --system --gid {uid} {name}")
        lines.append(
            f"useradd --system --uid {uid} --gid {uid} --no-create-home "
            f"--home-dir /var/lib/{name} --shell /usr/sbin/nologin {name}"
        )
    return " && ".join(lines)


# Trimmed from every image after the install.
_TRIM = (
    "/var/lib/apt/lists/*",
    "/var/cache/apt/*.bin",
    "/var/cache/apt/archives/*.deb",
    "/var/cache/debconf/*-old",
    "/var/log/apt/*",
    "/var/log/dpkg.log",
    "/var/log/alternatives.log",
    "/usr/share/doc/*",
    "/usr/share/man/*",
    "/usr/share/info/*",
    "/usr/share/locale/*",
    "/usr/share/lintian/*",
)


def cache_dir() -> Path:
    base = os.environ.get("KPLAN_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kplan"
    )
    return Path(base) / "lab"


# ---------------------------------------------------------------- apt sources


def _machine_sources() -> tuple[str, str]:
    """(mirror URL for debootstrap, deb822 sources for the images) as the machine has them."""
    deb822 = Path("/etc/apt/sources.list.d/debian.sources")
    mirror = "http://deb.debian.org/debian"
    if deb822.exists():
        text = deb822.read_text()
        for line in text.splitlines():
            if line.startswith("URIs:") and "security" not in line:
                mirror = line.split()[1]
                break
        return mirror, text
    sources = (
        f"Types: deb\nURIs: {mirror}\nSuites: {SUITE} {SUITE}-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        f"Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: {SUITE}-security\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
    return mirror, sources


APT_OPTS = ("-o", "Acquire::Check-Valid-Until=false", "-o", "Acquire::Retries=3")


@contextlib.contextmanager
def _chroot(root: Path) -> Iterator[None]:
    """/proc mounted, the machine's resolv.conf, and no service starts."""
    (root / "proc").mkdir(exist_ok=True)
    run(["mount", "-t", "proc", "proc", str(root / "proc")])
    resolv = root / "etc" / "resolv.conf"
    resolv.unlink(missing_ok=True)
    shutil.copyfile("/etc/resolv.conf", resolv)
    policy = root / "usr" / "sbin" / "policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    try:
        yield
    finally:
        run(["umount", str(root / "proc")], check=False)
        if os.path.ismount(root / "proc"):
            run(["umount", "-l", str(root / "proc")], check=False)
        policy.unlink(missing_ok=True)
        resolv.write_text("")


def _in_chroot(root: Path, script: str, timeout: float = 900) -> None:
    env = {
        "PATH": PATH_ENV.split("=", 1)[1],
        "DEBIAN_FRONTEND": "noninteractive",
        "LC_ALL": "C",
        "HOME": "/root",
    }
    run(["chroot", str(root), "/bin/sh", "-ec", script], env=env, timeout=timeout)


# ---------------------------------------------------------------- rootfs


def _rootfs_key() -> str:
    mirror, sources = _machine_sources()
    blob = json.dumps([FORMAT, SUITE, "minbase", mirror, sources, BASE_PACKAGES])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _rootfs(echo: Echo) -> tuple[Path, str]:
    """The cached minbase tarball (made when missing) and its key."""
    key = _rootfs_key()
    tarball = cache_dir() / f"rootfs-{SUITE}-{key}.tar"
    if tarball.exists():
        return tarball, key
    mirror, sources = _machine_sources()
    work = cache_dir() / "build" / f"rootfs-{key}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    echo(f"debootstrap --variant=minbase {SUITE} ({mirror}) ...")
    t0 = time.monotonic()
    try:
        run(["debootstrap", "--variant=minbase", SUITE, str(work), mirror], timeout=1200)
        (work / "etc" / "apt" / "sources.list").unlink(missing_ok=True)
        (work / "etc" / "apt" / "sources.list.d" / "debian.sources").write_text(sources)
        with _chroot(work):
            opts = " ".join(APT_OPTS)
            _in_chroot(
                work,
                f"apt-get {opts} update -q && apt-get {opts} install -y -q "
                f"--no-install-recommends {' '.join(BASE_PACKAGES)} && apt-get clean",
            )
        tmp = tarball.with_suffix(".tmp")
        run(["tar", "--numeric-owner", "--xattrs", "-C", str(work), "-cf", str(tmp), "."])
        tmp.replace(tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    echo(f"rootfs cached: {tarball} ({time.monotonic() - t0:.0f} s)")
    return tarball, key


# ---------------------------------------------------------------- one image


@dataclass(frozen=True)
class CachedImage:
    name: str
    key: str
    layer: Path  # gzip tar
    layer_digest: str
    layer_size: int
    config: bytes
    built_seconds: float = 0.0

    @property
    def config_digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.config).hexdigest()

    def manifest(self) -> bytes:
        doc = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_V2,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(self.config),
                "digest": self.config_digest,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": self.layer_size,
                    "digest": self.layer_digest,
                }
            ],
        }
        return json.dumps(doc, indent=2).encode()


def _images_dir() -> Path:
    return cache_dir() / "images"


def _load_cached(name: str, key: str) -> CachedImage | None:
    meta = _images_dir() / f"{name}-{key}.json"
    layer = _images_dir() / f"{name}-{key}.tar.gz"
    if not (meta.exists() and layer.exists()):
        return None
    raw = json.loads(meta.read_text())
    if layer.stat().st_size != raw["layer_size"]:
        return None
    return CachedImage(
        name=name,
        key=key,
        layer=layer,
        layer_digest=raw["layer_digest"],
        layer_size=raw["layer_size"],
        config=raw["config"].encode(),
    )


def _tar_layer(root: Path, out: Path) -> tuple[str, str, int]:
    """Write a gzip tar of ``root``; return (diff_id, digest, size)."""
    proc = subprocess.Popen(
        ["tar", "--numeric-owner", "--xattrs", "-C", str(root), "-c", "."],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    raw_hash, gz_hash = hashlib.sha256(), hashlib.sha256()
    comp = zlib.compressobj(1, zlib.DEFLATED, 31)
    size = 0
    with open(out, "wb") as f:

        def emit(data: bytes) -> None:
            nonlocal size
            if data:
                gz_hash.update(data)
                f.write(data)
                size += len(data)

        while chunk := proc.stdout.read(1 << 20):
            raw_hash.update(chunk)
            emit(comp.compress(chunk))
        emit(comp.flush())
    if proc.wait() != 0:
        raise LabError(f"tar of {root} failed ({proc.returncode})")
    return "sha256:" + raw_hash.hexdigest(), "sha256:" + gz_hash.hexdigest(), size


def build_image(name: str, echo: Echo, force: bool = False) -> CachedImage:
    """The image from the cache, or built (and cached) when missing."""
    if name not in RECIPES:
        raise LabError(f"no lab image {name!r}: known are {', '.join(sorted(RECIPES))}")
    recipe = RECIPES[name]
    rootfs, rootfs_key = _rootfs(echo)
    key = recipe.key(rootfs_key)
    cached = None if force else _load_cached(name, key)
    if cached is not None:
        return cached
    t0 = time.monotonic()
    echo(f"building {name} ({' '.join(recipe.packages) or 'base packages only'}) ...")
    work = cache_dir() / "build" / f"{name}-{key}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    out_dir = _images_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        run(["tar", "--numeric-owner", "--xattrs", "-C", str(work), "-xf", str(rootfs)])
        with _chroot(work):
            opts = " ".join(APT_OPTS)
            if recipe.users:
                _in_chroot(work, _users_script(recipe.users))
            if recipe.packages:
                pkgs = " ".join(recipe.packages)
                install = f"apt-get {opts} install -y -q --no-install-recommends {pkgs}"
                # Lists cached with the rootfs may have gone stale: update once and retry.
                _in_chroot(work, f"{install} || (apt-get {opts} update -q && {install})")
            for path, mode, content in recipe.files:
                target = work / path.lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content)
                target.chmod(mode)
            if recipe.setup:
                _in_chroot(work, recipe.setup)
            _in_chroot(work, "apt-get clean; rm -rf " + " ".join(_TRIM))
        (work / "etc" / "hostname").unlink(missing_ok=True)
        layer = out_dir / f"{name}-{key}.tar.gz"
        tmp = layer.with_suffix(".tmp")
        diff_id, digest, size = _tar_layer(work, tmp)
        tmp.replace(layer)
    finally:
        if os.path.ismount(work / "proc"):
            run(["umount", "-l", str(work / "proc")], check=False)
        shutil.rmtree(work, ignore_errors=True)
    created = "1970-01-01T00:00:00Z"
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": created,
            "config": {
                "Cmd": list(recipe.cmd) or None,
                "Entrypoint": list(recipe.entrypoint) or None,
                "Env": [PATH_ENV, *recipe.env],
                "Labels": {"org.kplan.lab.image": name, "org.kplan.lab.key": key},
            },
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [
                {"created": created, "created_by": f"kplan lab images: {name} from {SUITE}"}
            ],
        },
        sort_keys=True,
    ).encode()
    seconds = time.monotonic() - t0
    meta = {"layer_digest": digest, "layer_size": size, "config": config.decode()}
    (out_dir / f"{name}-{key}.json").write_text(json.dumps(meta, indent=2) + "\n")
    echo(f"built {name} in {seconds:.0f} s ({size / 1e6:.0f} MB compressed)")
    return CachedImage(
        name=name,
        key=key,
        layer=layer,
        layer_digest=digest,
        layer_size=size,
        config=config,
        built_seconds=seconds,
    )


# ---------------------------------------------------------------- all images


@dataclass
class ImagesResult:
    lines: list[str] = field(default_factory=list)
    seconds: float = 0.0


def push_image(client: RegistryClient, img: CachedImage) -> tuple[str, bool]:
    repo = f"{REPO_PREFIX}/{img.name}"
    sent = client.push_blob(repo, img.layer_digest, img.layer_size, img.layer)
    client.push_blob(repo, img.config_digest, len(img.config), img.config)
    digest = client.put_manifest(repo, TAG, img.manifest())
    return digest, sent


def build_and_push(
    lab: str, only: list[str] | None, push: bool, echo: Echo, force: bool = False
) -> ImagesResult:
    require_root("images")
    t0 = time.monotonic()
    names = list(dict.fromkeys(only or DEFAULT_IMAGES))
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        raise LabError(f"no lab image {', '.join(unknown)}: known are {', '.join(sorted(RECIPES))}")
    spec: LabSpec | None = None
    if push:
        record = LabRecord.load(LabSpec.make(lab, 1, DEFAULT_SUBNET).record_path)
        spec = record.spec if record else None
        if spec is None or not registry_healthy(spec):
            raise LabError(f"the registry of lab {lab} is not up: run `kplan lab up` first")
    ensure_packages(echo, ("debootstrap",))
    res = ImagesResult()
    client = RegistryClient(spec.gateway, REGISTRY_PORT, timeout=300) if spec else None
    for name in names:
        img = build_image(name, echo, force=force)
        how = f"built in {img.built_seconds:.0f} s" if img.built_seconds else "cached"
        if client is not None and spec is not None:
            t1 = time.monotonic()
            digest, sent = push_image(client, img)
            res.lines.append(
                f"{spec.registry}/{REPO_PREFIX}/{name}:{TAG}  {how}, "
                f"{'pushed' if sent else 'already in the registry'} in "
                f"{time.monotonic() - t1:.1f} s  {digest}"
            )
        else:
            res.lines.append(f"{REPO_PREFIX}/{name}:{TAG}  {how}  {img.layer}")
    res.seconds = time.monotonic() - t0
    return res
