"""A benchmark's result file: what ran, at which commit, on which CPU, and its figures."""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from common.cpu import cpu_info, cpu_summary  # noqa: E402
from common.files import write_atomic  # noqa: E402
from common.provenance import started  # noqa: E402


def write_record(path: str, script: str, argv, **figures) -> None:
    """Write `figures` with the command, the commit, the start time and the CPU, atomically."""
    command = [script, *(sys.argv[1:] if argv is None else argv)]
    write_atomic(Path(path), json.dumps({"bench": Path(script).stem, **started(command), **figures,
                                         "cpu": cpu_info(), "cpu_summary": cpu_summary()},
                                        indent=2) + "\n")
