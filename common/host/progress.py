"""Progress bars on a terminal only: redirected output (CI logs, files) stays a few lines long.
Every update is also a point where a Ctrl-C that Python discarded ends the run (interrupt.py)."""
from __future__ import annotations

from tqdm import tqdm

from . import interrupt


class _Bar(tqdm):
    def update(self, n=1):
        interrupt.check()
        return super().update(n)


def progress_bar(desc: str, total: int, unit: str) -> tqdm:
    return _Bar(total=total, desc=desc, unit=unit, disable=None)  # None: off unless a terminal
