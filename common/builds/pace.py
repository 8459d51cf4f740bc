"""When to stop a pass whose pace says it would take too long: a budget of so many times a
reference's seconds (at least a floor), and whether the work done so far projects past it. The one
rule of the trial's first pass and the --min-agreement search's slice passes."""
from __future__ import annotations

from typing import Optional


def budget(limit: float, floor_s: float, reference_s: float) -> float:
    """`limit` times the reference's seconds, and at least `floor_s`."""
    return max(floor_s, limit * reference_s)


def runs_past(budget_s: Optional[float], elapsed: float, done: int, more: int) -> bool:
    """Whether `more` units at the pace of the `done` ones (in `elapsed` seconds) would end past
    `budget_s` (None: no budget)."""
    return budget_s is not None and elapsed + elapsed / done * more > budget_s
