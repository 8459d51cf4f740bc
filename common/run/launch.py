"""A proof-point script's start: light enough to import before torch, so that Ctrl-C while the
heavy libraries load still ends in one line."""
from __future__ import annotations

import os
import signal
import sys
import warnings
from typing import Optional, Sequence

from ..host import interrupt
from ..host.files import remove_unfinished
from .spec import CTRL_C_AFTER_THE_LAST_MOMENT, INTERRUPTED, ProofPoint


def launch(spec: ProofPoint, argv: Optional[Sequence[str]] = None) -> int:
    """Parse the command line, import the pipeline (seconds: torch, transformers), then run it;
    exit code 130 on Ctrl-C."""

    def interrupted_while_importing(signum, frame) -> None:
        # A KeyboardInterrupt raised inside an extension module's initialisation is printed as
        # "Exception ignored ... Traceback" and the import goes on; nothing is written yet, so
        # leave at once instead.
        print(f"{spec.name}: {INTERRUPTED}", file=sys.stderr, flush=True)
        os._exit(130)

    # library deprecation notices say nothing a user of the proof points can act on
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    previous = signal.signal(signal.SIGINT, interrupted_while_importing)
    try:
        # the command line first: --help and a bad flag answer before torch is imported
        from .cli import parse_command_line

        args = parse_command_line(spec, argv)
        from .proofpoint import main
    finally:
        signal.signal(signal.SIGINT, previous)
    interrupt.install()
    try:
        code = main(spec, argv, args)
    finally:
        # Everything is printed and written; what remains is the interpreter's teardown, where a
        # Ctrl-C would end it by the signal, silently and with no exit code of ours, and the
        # temporaries whose removal a Ctrl-C cut short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        remove_unfinished()
    if code == 0 and interrupt.received():
        print(f"{spec.name}: {CTRL_C_AFTER_THE_LAST_MOMENT}", file=sys.stderr)
    return code
