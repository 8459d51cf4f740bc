"""Library chatter a user cannot act on stays off the console."""
from __future__ import annotations

import contextlib
import io
import logging
import sys
from typing import Iterator


@contextlib.contextmanager
def loggers_at_error(*names: str) -> Iterator[None]:
    """Only errors from these loggers ("" is the root logger, where ONNX Runtime's quantizer
    writes its 'Please consider pre-processing' advice) while the block runs."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@contextlib.contextmanager
def stdout_to_progress() -> Iterator[None]:
    """A library's progress display written to stdout goes to stderr on a terminal and nowhere
    when redirected: stdout is for the results table."""
    target = sys.stderr if sys.stderr.isatty() else io.StringIO()
    with contextlib.redirect_stdout(target):
        yield


def telemetry_off() -> None:
    """OpenVINO's converter and NNCF send usage statistics (openvino_telemetry) unless the user has
    opted out. Offline, each try forks a process that waits on the network, and a Ctrl-C prints
    that process's traceback. Our processes answer its consent check with "declined", as its own
    opt-out file would, without writing that file into the user's home."""
    try:
        from openvino_telemetry.utils import opt_in_checker
    except ImportError:
        return
    declined = opt_in_checker.ConsentCheckResult.DECLINED
    opt_in_checker.OptInChecker.check = lambda self, *args, **kwargs: declined
