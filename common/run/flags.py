"""Flags that only some builds use: checked before any work where they apply, and a note under
the table where they did nothing, instead of being silently ignored."""
from __future__ import annotations

from typing import Sequence

from ..backends import backend_module
from ..backends.base import Candidate
from .settings import Settings

DEFAULT_SEED = 0


def seed(args: Settings) -> int:
    """The calibration seed: --seed, or DEFAULT_SEED."""
    return DEFAULT_SEED if args.seed is None else args.seed


def check_flags(args: Settings, candidates: Sequence[Candidate],
                calibrate: bool) -> list[str]:
    """Refuse a GroqFlow chip count groqit would refuse (where GroqFlow may build); return a note
    for each flag given that no build here uses."""
    groqflow = any(c.backend == "groqflow" for c in candidates)
    if groqflow and args.num_chips is not None:
        backend_module("groqflow").check_num_chips(args.num_chips)
    notes = []
    given = [flag for flag, value in (("--num-chips", args.num_chips),
                                      ("--compiler-flags", args.compiler_flags)) if value is not None]
    if given and not groqflow:
        notes.append(f"{' and '.join(given)}: GroqFlow's; ignored by "
                     f"{' and '.join(sorted({c.backend for c in candidates}))}")
    if args.seed is not None and not calibrate:
        notes.append("--seed: it draws calibration samples, and dynamic INT8 draws none; ignored")
    if args.distill_steps and not args.min_agreement:
        notes.append("--distill-steps: a lever of --min-agreement, which is not set; ignored")
    return notes
