"""The benchmark's work, written once per tool: the same files and containers on the same hosts.

N hosts x M services. Each service, on each host:

* a directory ``/etc/kolla/bench/svcNN`` (mode 0755);
* ``/etc/kolla/bench/svcNN/svcNN.conf``, rendered from ``templates/service.conf.j2``
  (the same template text for every tool) with the host's name and address, the
  service's port and the host's ``options`` map (``{service: {workers, debug, pool}}``);
* a container ``bench-svcNN`` of the lab's base image, host network, the
  directory bind-mounted read-only at ``/etc/bench``, restart policy
  ``unless-stopped``, which restarts when -- and only when -- its file changes.
  It has a health check, as every Kolla container has, with Kolla's timings:
  its config file is readable (``test -r /etc/bench/svcNN.conf``). kplan waits
  until the check passes before it calls a start done; the peers do not wait.

Every tool also makes sure the image is on the host (it is pulled before the
runs, so that the registry's speed is not measured).

The change measured is one option of one service on one host (``options`` of
the first host): every tool must rewrite that one file and restart that one
container.
"""

from __future__ import annotations

import json
import pprint
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TEMPLATE = Path(__file__).with_name("templates") / "service.conf.j2"
CONF_ROOT = "/etc/kolla/bench"
CONTAINER_PREFIX = "bench-"
# The service's process: reads nothing, stops at once on SIGTERM (a plain
# ``sleep`` as PID 1 ignores it, and every restart would wait out the stop timeout).
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; sleep infinity & wait"]
# The health check's timings: kolla-ansible's defaults (interval, retries, start
# period, timeout). Its test is HEALTH_TEST with the service's name.
HEALTH_TIMING = {"interval": "30s", "retries": 3, "start_period": "5s", "timeout": "30s"}
HEALTH_TEST = "test -r /etc/bench/{service}.conf"
# "kplan-server": the same kplan project, its commands run by a kplan server.
TOOLS = ("kplan", "kplan-server", "ansible", "pyinfra")

Options = Mapping[str, Mapping[str, Mapping[str, Any]]]  # host -> service -> option -> value


@dataclass(frozen=True)
class Host:
    name: str
    address: str


@dataclass(frozen=True)
class Work:
    hosts: Sequence[Host]
    services: int
    image: str  # registry/repository:tag
    ssh_key: str
    known_hosts: str
    options: Options = field(default_factory=dict)

    @property
    def service_names(self) -> list[str]:
        return [service_name(i) for i in range(self.services)]

    @property
    def service_ports(self) -> dict[str, int]:
        return {service_name(i): service_port(i) for i in range(self.services)}

    def host_options(self, host: str) -> dict[str, Any]:
        return {svc: dict(opts) for svc, opts in sorted(self.options.get(host, {}).items())}

    @property
    def label(self) -> str:
        return f"{len(self.hosts)}x{self.services}"


def service_name(i: int) -> str:
    return f"svc{i:02d}"


def service_port(i: int) -> int:
    return 9000 + i


def changed_options(work: Work, run: int) -> Work:
    """The work with one option of the first service on the first host changed; ``run``
    alternates the value, so that every run is a real change."""
    first = work.hosts[0].name
    opts = {h: dict(v) for h, v in work.options.items()}
    opts[first] = {**opts.get(first, {}), service_name(0): {"workers": 4 + run % 2 * 4}}
    return Work(work.hosts, work.services, work.image, work.ssh_key, work.known_hosts, opts)


def write(tool: str, work: Work, root: Path) -> Path:
    """Write ``tool``'s project for ``work`` under ``root``; return its folder.

    Writing again with other options changes only the inventory's data."""
    project = root / tool
    project.mkdir(parents=True, exist_ok=True)
    writer = {"kplan": _kplan, "kplan-server": _kplan, "ansible": _ansible, "pyinfra": _pyinfra}[
        tool
    ]
    writer(work, project)
    return project


def _yaml(value: Any) -> str:
    """A YAML flow value: JSON is YAML."""
    return json.dumps(value, sort_keys=True)


# -- kplan: a child module per host (for_each over the hosts), services inside it -----


def _kplan(work: Work, project: Path) -> None:
    inv = ["# The lab hosts (written by benchmarks/peers).", "hosts:"]
    for h in work.hosts:
        inv += [
            f"  {h.name}:",
            f"    address: {h.address}",
            "    user: root",
            f"    ssh_key: {work.ssh_key}",
            f"    known_hosts: {work.known_hosts}",
            f"    vars: {{options: {_yaml(work.host_options(h.name))}}}",
        ]
    (project / "hosts.kp.yaml").write_text("\n".join(inv) + "\n", encoding="utf-8")
    (project / "main.kp.yaml").write_text(
        f"""\
# N hosts x M services: one module instance per host, one set of resources per service.
variables:
  services: {{type: map(number), default: {_yaml(work.service_ports)}}}
  image: {{type: string, default: {_yaml(work.image)}}}

modules:
  node:
    source: ./node
    for_each: ${{hosts}}
    hosts: ${{[each.key]}}
    inputs:
      services: ${{var.services}}
      image: ${{var.image}}
""",
        encoding="utf-8",
    )
    node = project / "node"
    node.mkdir(exist_ok=True)
    (node / "service.conf.j2").write_text(TEMPLATE.read_text(encoding="utf-8"), encoding="utf-8")
    image, tag = work.image.rsplit(":", 1)
    (node / "node.kp.yaml").write_text(
        f"""\
# One host's services (name: port). `hosts` is this module instance's one host.
variables:
  services: {{type: map(number)}}
  image: {{type: string}}

locals:
  node: ${{hosts[0]}}

resources:
  docker_image.base:
    host: ${{local.node}}
    name: {image}
    tag: {tag}
    keep_locally: true

  host_directory.conf:
    for_each: ${{var.services}}
    host: ${{local.node}}
    path: {CONF_ROOT}/${{each.key}}
    mode: "0755"

  host_file.conf:
    for_each: ${{var.services}}
    host: ${{local.node}}
    path: ${{host_directory.conf[each.key].path}}/${{each.key}}.conf
    template: ${{file("service.conf.j2")}}
    vars:
      service: ${{each.key}}
      node: ${{local.node}}
      address: ${{host[local.node].address}}
      port: ${{each.value}}
      options: ${{host[local.node].vars.options}}

  docker_container.svc:
    for_each: ${{var.services}}
    host: ${{local.node}}
    name: {CONTAINER_PREFIX}${{each.key}}
    image: ${{docker_image.base.repo_digest}}
    command: {_yaml(COMMAND)}
    binds: ["${{host_directory.conf[each.key].path}}:/etc/bench:ro"]
    healthcheck: {_yaml(_health("${each.key}"))}
    restart_on: ["host_file.conf[each.key]"]
""",
        encoding="utf-8",
    )


# -- ansible-playbook with community.docker, tuned as kolla-ansible advises ----------


def _ansible(work: Work, project: Path) -> None:
    (project / "ansible.cfg").write_text(
        f"""\
[defaults]
inventory = inventory.ini
forks = {max(5, len(work.hosts))}
interpreter_python = /usr/bin/python3
gathering = implicit
retry_files_enabled = False

[ssh_connection]
pipelining = True
ssh_args = -o ControlMaster=auto -o ControlPersist=60s
  -o UserKnownHostsFile={work.known_hosts} -o StrictHostKeyChecking=yes
control_path_dir = {project / "cp"}
""",
        encoding="utf-8",
    )
    lines = ["[bench]"]
    lines += [
        f"{h.name} ansible_host={h.address} ansible_user=root "
        f"ansible_ssh_private_key_file={work.ssh_key}"
        for h in work.hosts
    ]
    (project / "inventory.ini").write_text("\n".join(lines) + "\n", encoding="utf-8")
    host_vars = project / "host_vars"
    host_vars.mkdir(exist_ok=True)
    for h in work.hosts:
        (host_vars / f"{h.name}.yml").write_text(
            f"options: {_yaml(work.host_options(h.name))}\n", encoding="utf-8"
        )
    templates = project / "templates"
    templates.mkdir(exist_ok=True)
    (templates / "service.conf.j2").write_text(TEMPLATE.read_text(encoding="utf-8"))
    container = {
        "name": f"{CONTAINER_PREFIX}{{{{ item }}}}",
        "image": work.image,
        "command": COMMAND,
        "network_mode": "host",
        "volumes": [f"{CONF_ROOT}/{{{{ item }}}}:/etc/bench:ro"],
        "restart_policy": "unless-stopped",
        "healthcheck": _health("{{ item }}"),
        "state": "started",
    }
    restart = {**container, "name": f"{CONTAINER_PREFIX}{{{{ item.item }}}}", "restart": True}
    restart["volumes"] = [f"{CONF_ROOT}/{{{{ item.item }}}}:/etc/bench:ro"]
    restart["healthcheck"] = _health("{{ item.item }}")
    (project / "site.yml").write_text(
        f"""\
# N hosts x M services, in kolla-ansible's shape: config directories and
# templates in loops, containers by community.docker.docker_container, and a
# restart of exactly the containers whose config file changed.
- hosts: bench
  gather_facts: true
  vars:
    services: {_yaml(work.service_names)}
  tasks:
    - name: the image is on the host
      community.docker.docker_image_pull:
        name: {_yaml(work.image)}
        pull: not_present

    - name: config directories
      ansible.builtin.file:
        path: "{CONF_ROOT}/{{{{ item }}}}"
        state: directory
        mode: "0755"
      loop: "{{{{ services }}}}"

    - name: config files
      ansible.builtin.template:
        src: service.conf.j2
        dest: "{CONF_ROOT}/{{{{ item }}}}/{{{{ item }}}}.conf"
        mode: "0644"
      vars:
        service: "{{{{ item }}}}"
        node: "{{{{ inventory_hostname }}}}"
        address: "{{{{ ansible_host }}}}"
        port: "{{{{ 9000 + services.index(item) }}}}"
      loop: "{{{{ services }}}}"
      register: configs

    - name: containers
      community.docker.docker_container: {_yaml(container)}
      loop: "{{{{ services }}}}"
      register: containers

    - name: restart the containers whose config changed (and that were not just started)
      community.docker.docker_container: {_yaml(restart)}
      loop: "{{{{ configs.results }}}}"
      loop_control:
        index_var: i
      when: item.changed and not containers.results[i].changed
""",
        encoding="utf-8",
    )


# -- pyinfra: files.template, docker.container, a restart on the template's change ----


def _pyinfra(work: Work, project: Path) -> None:
    hosts = [
        (
            h.address,
            {
                "node": h.name,
                "ssh_user": "root",
                "ssh_key": work.ssh_key,
                "ssh_known_hosts_file": work.known_hosts,
                "ssh_strict_host_key_checking": "yes",
                "options": work.host_options(h.name),
            },
        )
        for h in work.hosts
    ]
    (project / "inventory.py").write_text(
        "# The lab hosts (written by benchmarks/peers).\n"
        f"bench = {pprint.pformat(hosts, sort_dicts=True)}\n",
        encoding="utf-8",
    )
    templates = project / "templates"
    templates.mkdir(exist_ok=True)
    (templates / "service.conf.j2").write_text(TEMPLATE.read_text(encoding="utf-8"))
    command = shlex.join(COMMAND)
    # pyinfra's docker.container has no health check argument: docker's own flags.
    health_args = ["--health-cmd", HEALTH_TEST]  # an f-string in deploy.py: {service}
    health_args += [
        f"--health-{key.replace('_', '-')}={value}" for key, value in HEALTH_TIMING.items()
    ]
    (project / "deploy.py").write_text(
        f'''\
"""N hosts x M services: config directory, templated file, container, restart on change."""

from pyinfra import host
from pyinfra.operations import docker, files, server

IMAGE = {work.image!r}
SERVICES = {work.service_names!r}

docker.image(name="the image is on the host", image=IMAGE, present=True)

for port, service in enumerate(SERVICES, start=9000):
    conf_dir = f"{CONF_ROOT}/{{service}}"
    files.directory(name=f"{{service}} config directory", path=conf_dir, mode="755")
    conf = files.template(
        name=f"{{service}} config file",
        src="templates/service.conf.j2",
        dest=f"{{conf_dir}}/{{service}}.conf",
        mode="644",
        service=service,
        node=host.data.node,
        address=host.name,
        port=port,
        options=host.data.options,
    )
    container = docker.container(
        name=f"{{service}} container",
        container=f"{CONTAINER_PREFIX}{{service}}",
        image=IMAGE,
        networks=["host"],
        volumes=[f"{{conf_dir}}:/etc/bench:ro"],
        restart_policy="unless-stopped",
        command={command!r},
        extra_args=[{", ".join(f"f{a!r}" if "{" in a else repr(a) for a in health_args)}],
    )
    server.shell(
        name=f"restart {CONTAINER_PREFIX}{{service}} if its config changed",
        commands=[f"docker restart {CONTAINER_PREFIX}{{service}}"],
        _if=lambda conf=conf, container=container: conf.did_change() and not container.did_change(),
    )
''',
        encoding="utf-8",
    )


def _health(service: str) -> dict[str, Any]:
    """The health check of a service's container, ``service`` as each tool names it."""
    return {"test": HEALTH_TEST.format(service=service), **HEALTH_TIMING}
