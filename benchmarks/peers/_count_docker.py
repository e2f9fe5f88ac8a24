"""Run kplan, counting the Docker API requests it sends to each host over SSH.

    python benchmarks/peers/_count_docker.py OUT.json plan -no-color

Each Docker API request over SSH is a round trip that sshd's log does not show
(they travel on a long-lived ``docker system dial-stdio`` channel): this
wrapper counts them at the client, per host address, and writes the counts to
OUT.json when kplan exits. Used only for the round-trip figures.
"""

from __future__ import annotations

import atexit
import json
import runpy
import sys
from collections import Counter

import requests.adapters

counts: Counter[str] = Counter()
_send = requests.adapters.HTTPAdapter.send


def _counting_send(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
    counts[str(getattr(self, "ssh_host", "local"))] += 1
    return _send(self, request, *args, **kwargs)


requests.adapters.HTTPAdapter.send = _counting_send  # type: ignore[method-assign]
out = sys.argv.pop(1)


def _write() -> None:
    with open(out, "w") as f:
        f.write(json.dumps(dict(counts), sort_keys=True))


atexit.register(_write)
sys.argv[0] = "kplan"
runpy.run_module("kplan", run_name="__main__", alter_sys=True)
