"""``kplan lab``: disposable test hosts on one Linux machine.

A lab (``kplan lab up --name NAME --hosts N --subnet CIDR``, root only) is:

- a bridge in the root namespace holding the subnet's first address (kplan on
  the machine reaches the hosts through it; the registry listens on it);
- per host ``nodeI`` (address ``.10+I``; node1 in group ``control``, the others
  in ``compute``): a network namespace ``kplan-NAME-nodeI`` with ``lo`` and
  ``eth0`` (a veth into the bridge), and no default route, so nothing leaves
  the machine; one supervisor process (supervisor.py), entered with
  ``nsenter --net=… unshare --mount --uts --propagation private``, which
  mounts a copy-on-write overlay over /etc (the host's own /etc/hosts,
  resolv.conf with ``nameserver 127.0.0.1``, hostname, /etc/kolla,
  /etc/docker/daemon.json) and a private /run, /tmp and /srv (every other
  path is the machine's, shared by all hosts: keep host data under /etc,
  /srv or in Docker volumes), then runs the host's sshd
  (key auth only, on ADDRESS:22) and dockerd (``bridge none``, no iptables,
  its own data root, socket /run/docker.sock, the lab registry as insecure);
- Debian's docker-registry on ``GATEWAY:5000``;
- under /var/lib/kplan-lab/NAME (``KPLAN_LAB_ROOT`` overrides the parent):
  lab.json (every process started, by pid and start time), the SSH key pair,
  known_hosts, inventory.kp.yaml (a ``hosts:`` block for a root module) and
  per host its files, logs and Docker data root.

``status`` checks every recorded pid and probes sshd (banner) and dockerd
(``/_ping`` on its socket). ``down`` stops the supervisors (which stop sshd and
dockerd), then every recorded pid, then any process still in a lab network
namespace (SIGTERM, then SIGKILL), deletes the namespaces, veths, bridge,
cgroup parents and the lab directory — nothing else. ``up`` and ``down`` are
idempotent; ``up`` also repairs a host whose processes died.

``kplan lab images`` (images.py) builds one-layer images from a cached
debootstrap of bookworm and pushes them with the registry's HTTP API as
``GATEWAY:5000/kplan/NAME:bookworm``.

Modules: spec (names, paths, the record), system (commands, apt, pids),
net (bridge and namespaces), lifecycle (up/status/down), registry, images,
supervisor (a stand-alone script).
"""
