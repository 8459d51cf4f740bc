"""File writes that never leave half a file behind, and content hashes."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .errors import UserError


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and a rename: readers see the old content or the new, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_results_file(path: Path, text: str) -> None:
    """write_atomic for a file the user named: failure is a UserError."""
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise UserError(f"cannot write '{path}': {exc.strerror or exc}") from None


def check_writable_target(path: Path, flag: str) -> None:
    """Fail before any work when an output file's folder is missing or not writable."""
    folder = Path(path).expanduser().resolve().parent
    if not folder.is_dir():
        raise UserError(f"{flag} '{path}': folder '{folder}' does not exist")
    if not os.access(folder, os.W_OK):
        raise UserError(f"{flag} '{path}': folder '{folder}' is not writable")
