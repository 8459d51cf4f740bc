"""Ctrl-C that always ends the run. Python raises KeyboardInterrupt where the signal lands, and
discards it there when that is a destructor, a callback or another thread ("Exception ignored
in: ... KeyboardInterrupt"): measured, 4 of 23 interrupts of a cold run were lost so, and the run
printed its table with exit code 0. The signal is therefore also recorded when it arrives, and
every stage boundary and progress update raises it again (`check`). The few steps that must not
be cut in two are `held()`, and so is all that follows a run's last moment (`hold_to_the_end`):
there the signal is only recorded.

The handler also runs on the thread's own stack, never on an alternate signal stack
(`off_the_alternate_stack`): OpenVINO's CPU plugin gives the thread that loads it an alternate
stack and, when two plugins are freed in the order they were made (a trial's losing builds),
hands the thread back the first one's stack after unmapping it. Python asks for its handlers to
run there (SA_ONSTACK), so a Ctrl-C then ended the run by SIGSEGV: 9 of 9 cold runs interrupted
just after ONNX Runtime won a trial against two OpenVINO builds (bench/interrupt_window.py), and
every time with two OpenVINO Cores freed in the order they were made (tests/test_interrupts.py)."""
from __future__ import annotations

import ctypes
import platform
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

_received = threading.Event()
_holding = 0  # held() regions entered, and hold_to_the_end(); the handler runs between bytecodes
SA_ONSTACK = 0x08000000  # Linux on x86-64 and AArch64


class _SigAction(ctypes.Structure):
    """glibc's struct sigaction on x86-64 and AArch64 Linux."""
    _fields_ = [("handler", ctypes.c_void_p), ("mask", ctypes.c_ulong * 16),
                ("flags", ctypes.c_int), ("restorer", ctypes.c_void_p)]


def _record_and_raise(signum, frame) -> None:
    _received.set()
    if not _holding:
        raise KeyboardInterrupt


def install() -> None:
    """Record every SIGINT from now on, and raise KeyboardInterrupt where it lands as Python does."""
    global _holding
    _received.clear()
    _holding = 0
    signal.signal(signal.SIGINT, _record_and_raise)
    off_the_alternate_stack(signal.SIGINT)


def off_the_alternate_stack(signum: int) -> None:
    """Run `signum`'s handler on the stack of the thread it lands on (clear SA_ONSTACK), so that
    an alternate stack a library left dangling is never written to. Linux on x86-64 and AArch64
    (where OpenVINO's CPU plugin sets one, and where _SigAction is glibc's layout)."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "aarch64"):
        return
    libc = ctypes.CDLL(None)
    action = _SigAction()
    if libc.sigaction(signum, None, ctypes.byref(action)) == 0 and action.flags & SA_ONSTACK:
        action.flags &= ~SA_ONSTACK
        libc.sigaction(signum, ctypes.byref(action), None)


@contextmanager
def held() -> Iterator[None]:
    """A step a Ctrl-C must not cut in two (publishing a build): a SIGINT that lands in it is
    recorded, not raised, and the next check() raises it."""
    global _holding
    _holding += 1
    try:
        yield
    finally:
        _holding -= 1


def hold_to_the_end() -> None:
    """From here to the process's exit a SIGINT is recorded, not raised: the run is past its last
    moment, and what remains (writing the table and files, freeing the runtimes: tens of ms, where
    a Ctrl-C ended in a traceback) must not be cut in two."""
    global _holding
    _holding += 1


def received() -> bool:
    """Whether a SIGINT came since install()."""
    return _received.is_set()


def check() -> None:
    """Raise KeyboardInterrupt if a SIGINT came, even one that Python discarded where it landed."""
    if received():
        raise KeyboardInterrupt
