"""What a proof-point script is: the few facts that distinguish one from another. Imported by the
light launcher and by the pipeline, so neither imports the other's module at load."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

INTERRUPTED = "interrupted; no partial build or results file was left behind"
CTRL_C_AFTER_THE_LAST_MOMENT = "Ctrl-C came as the run was finishing; its table and files are whole"


@dataclass(frozen=True)
class ProofPoint:
    """What distinguishes one script from another."""
    name: str
    description: str
    model: str  # default checkpoint, a hub id
    num_chips: int
    quantize: bool = False
    bundled_model: Optional[str] = None  # folder in this repository used when the hub is unreachable
