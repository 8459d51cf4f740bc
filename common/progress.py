"""Progress bars on a terminal only: redirected output (CI logs, files) stays a few lines long."""
from __future__ import annotations

from tqdm import tqdm


def progress_bar(desc: str, total: int, unit: str) -> tqdm:
    return tqdm(total=total, desc=desc, unit=unit, disable=None)  # None: off unless a terminal
