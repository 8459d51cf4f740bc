"""What a proof-point script is, and its start: light enough to import before torch, so that
Ctrl-C while the heavy libraries load still ends in one line."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Optional, Sequence

INTERRUPTED = "interrupted; no partial build or results file was left behind"


@dataclass(frozen=True)
class ProofPoint:
    """What distinguishes one script from another."""
    name: str
    description: str
    model: str  # default checkpoint, a hub id
    num_chips: int
    quantize: bool = False
    bundled_model: Optional[str] = None  # folder in this repository used when the hub is unreachable


def launch(spec: ProofPoint, argv: Optional[Sequence[str]] = None) -> int:
    """Import the pipeline (seconds: torch, transformers), then run it; exit code 130 on Ctrl-C."""
    try:
        from .proofpoint import main
    except KeyboardInterrupt:
        print(f"{spec.name}: {INTERRUPTED}", file=sys.stderr)
        return 130
    return main(spec, argv)
