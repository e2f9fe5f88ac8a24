"""The README's first command must build every lab image the OpenStack example
pulls: `kplan lab images` alone builds only the defaults, and a newcomer's
first apply then failed on a missing keystone image."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from kplan.lab.images import DEFAULT_IMAGES

REPO = Path(__file__).parents[2]


def images_built_by(command: str) -> set[str]:
    built: set[str] = set()
    for part in command.split("&&"):
        argv = shlex.split(part)
        if argv[:3] != ["kplan", "lab", "images"]:
            continue
        only = [argv[i + 1] for i, a in enumerate(argv) if a == "--only"]
        built |= set(only or DEFAULT_IMAGES)
    return built


def images_pulled_by(example: str) -> set[str]:
    text = (REPO / "examples" / example / "main.kp.yaml").read_text()
    wanted: set[str] = set()
    for module in re.findall(r"source: kplan/(\w+)", text):
        body = (REPO / "modules" / module / "main.kp.yaml").read_text()
        wanted |= set(re.findall(r"name: .*/kplan/(\w+)", body))
    return wanted


def test_readme_first_command_builds_the_images_the_openstack_example_pulls() -> None:
    readme = (REPO / "README.md").read_text()
    first = next(line.strip() for line in readme.splitlines() if "kplan lab up" in line)
    pulled = images_pulled_by("openstack")
    assert {"keystone", "mariadb", "placement"} <= pulled  # the scan itself works
    assert pulled <= images_built_by(first), first
