"""Rolling batches: sizes, order, what rolls, and that a saved plan keeps them."""

from __future__ import annotations

from pathlib import Path

import pytest

from kplan.addrs import ROOT
from kplan.plan.model import Action, Plan, ResourceChange, Roll
from kplan.plan.planfile import read_planfile, write_planfile
from kplan.plan.rolling import batch_size, plan_rolls
from kplan.state.crypto import Cipher


@pytest.mark.parametrize(
    ("serial", "count", "size"),
    [(1, 5, 1), (2, 5, 2), (10, 3, 10), ("40%", 5, 2), ("30%", 3, 1), ("100%", 4, 4), ("1%", 9, 1)],
)
def test_batch_size(serial: int | str, count: int, size: int) -> None:
    assert batch_size(serial, count) == size


def _change(name: str, key: object, action: Action = Action.RESTART) -> ResourceChange:
    return ResourceChange(ROOT.resource("t", name, key), "p", action, {}, {})  # type: ignore[arg-type]


def test_only_changes_of_rolling_blocks_roll_in_key_order() -> None:
    changes = [
        _change("svc", "c"),
        _change("svc", "a"),
        _change("svc", "b", Action.DELETE),  # deletes go first, outside the roll
        _change("svc", "f", Action.CREATE),  # a new instance serves nobody: not rolled
        _change("svc", "d", Action.NOOP),
        _change("svc", "e", Action.REPLACE),
        _change("other", "a"),
        _change("single", None),
        _change("count", 10),
        _change("count", 2),
    ]
    rolling = {"svc": {"serial": 2}, "single": {"serial": 1}, "count": {"serial": 1}}
    rolls = plan_rolls(changes, lambda a: rolling.get(a.name))
    assert [(r.resource, r.serial) for r in rolls] == [("t.count", 1), ("t.svc", 2)]
    assert [[a.key for a in b] for b in rolls[0].batches] == [[2], [10]]
    assert [[a.key for a in b] for b in rolls[1].batches] == [["a", "c"], ["e"]]


def test_instances_that_are_not_running_start_together_outside_the_roll() -> None:
    def stopped(key: str) -> ResourceChange:
        return ResourceChange(
            ROOT.resource("t", "db", key), "p", Action.UPDATE, {"running": False}, {"running": True}
        )

    rolling = {"db": {"serial": 1}}
    # A whole cluster stopped by hand: nothing rolls, every node starts at once.
    assert (
        plan_rolls([stopped("a"), stopped("b"), stopped("c")], lambda a: rolling.get(a.name)) == ()
    )
    # Some stopped, some running with a change (an upgrade while a node is down):
    # the stopped ones go first, together, then the running ones one at a time,
    # so never more running members are down at once than the roll allows.
    changes = [stopped("d"), _change("db", "c"), stopped("b"), _change("db", "a")]
    (roll,) = plan_rolls(changes, lambda a: rolling.get(a.name))
    assert [[a.key for a in b] for b in roll.batches] == [["b", "d"], ["a"], ["c"]]


def test_a_saved_plan_keeps_its_rolls(tmp_path: Path) -> None:
    addrs = [ROOT.child("db").resource("t", "svc", k) for k in ("a", "b")]
    plan = Plan(
        changes=tuple(ResourceChange(a, "p", Action.RESTART, {}, {}) for a in addrs),
        lineage="l",
        rolls=(Roll("module.db.t.svc", "50%", ((addrs[0],), (addrs[1],))),),
    )
    box = Cipher(b"k" * 32)
    write_planfile(str(tmp_path / "p"), plan, box)
    assert read_planfile(str(tmp_path / "p"), box, "l").rolls == plan.rolls
