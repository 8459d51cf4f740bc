"""Where a result came from: the command, the project's commit, the exact inputs, the machine."""
from __future__ import annotations

import subprocess
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version

from .paths import ROOT


def git_commit() -> str:
    """The project's commit, with "-dirty" when files differ from it; "unknown" outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def package_versions(*packages: str) -> dict[str, str]:
    """Each installed package's version, or "not installed"."""
    versions = {}
    for package in packages:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def started(command: list[str]) -> dict:
    """The command, the project's commit and the start time: a result file's first fields."""
    return {"command": command, "git_commit": git_commit(),
            "start_time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
