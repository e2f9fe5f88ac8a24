"""The plan from an empty state at scale, split: planning, the text renderer, the JSON renderer.

    python -m benchmarks.render                       # 1,000 hosts x 25 services x 4
    python -m benchmarks.render --hosts 100 --profile text

One process: the module of benchmarks/peers/scale.py is written under
``--workdir``, planned once (``make_plan`` with refresh, as ``kplan plan``), then
each renderer is timed alone, ``--repeat`` times (the median is printed), with
the collector tuned as ``kplan`` tunes it. Each output's SHA-256 is printed, so
a change to a renderer's speed can be checked to give the same bytes.
``--profile text|json|plan`` prints cProfile's top entries of that step instead.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.peers.scale import write_kplan
from benchmarks.scale import STATE_KEY


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--services", type=int, default=25)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/kplan-bench-render"))
    parser.add_argument("--profile", choices=["plan", "text", "json"])
    args = parser.parse_args(argv)

    root = args.workdir / "kplan"
    resources = write_kplan(root, args.hosts, args.services)
    os.environ["KPLAN_STATE_KEY"] = STATE_KEY
    os.chdir(root)
    gc.set_threshold(200_000, 50, 1000)  # as kplan.cli.main does

    from kplan.cli.common import run_options
    from kplan.plan.model import Plan, PlanMode
    from kplan.plan.planner import PlanOptions
    from kplan.plan.render_json import render_plan_json
    from kplan.plan.render_text import render_plan_text
    from kplan.plugins import ProviderRegistry
    from kplan.workflow import plan_command

    opts = run_options(".", None, None, False, "0s", 10, False)
    popts = PlanOptions(PlanMode.NORMAL, True, (), (), (), 10)
    registry = ProviderRegistry.from_entry_points()

    def plan() -> Plan:
        return plan_command(opts, popts, None, registry)[0]

    made = plan()
    steps: dict[str, Callable[[], object]] = {
        "plan": plan,
        "text": lambda: render_plan_text(made),
        "json": lambda: render_plan_json(made),
    }
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(steps[args.profile])
        pstats.Stats(profile, stream=sys.stdout).sort_stats("tottime").print_stats(25)
        return 0
    print(f"{resources:,} resources, median of {args.repeat}")
    for name, step in steps.items():
        times, out = [], None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            out = step()
            times.append(time.perf_counter() - t0)
        digest = hashlib.sha256(out.encode()).hexdigest()[:16] if isinstance(out, str) else "-"
        print(f"  {name:5} {statistics.median(times):6.2f} s   sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
