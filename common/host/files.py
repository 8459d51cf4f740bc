"""File writes that never leave half a file behind, temporaries that never outlive the run, and
content hashes.

A temporary is named (and recorded) before it is made, and made inside the `try` whose `finally`
removes it: a Ctrl-C landing between the making and the `try` would otherwise leave it behind (seen
once in CI). A Ctrl-C can land in that `finally` too, so the launcher removes whatever is still
recorded on the way out (`remove_unfinished`), when Ctrl-C is ignored.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from contextlib import suppress
from pathlib import Path

from .errors import UserError

_unfinished: set[Path] = set()  # temporaries named by this process and not yet removed


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def temporary_name(folder: Path, prefix: str) -> Path:
    """A name in `folder` that no other process or call uses, recorded until remove_temporary();
    nothing is created."""
    path = Path(folder) / f"{prefix}.{uuid.uuid4().hex}"
    _unfinished.add(path)
    return path


def remove_temporary(path: Path) -> None:
    """Delete a temporary file or folder if it is there (renamed into place, it is not); one that
    stays (rmtree turns a Ctrl-C landing at the wrong line into an OSError) stays recorded."""
    with suppress(OSError):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if not os.path.lexists(path):
        _unfinished.discard(path)


def remove_unfinished() -> None:
    """Delete every temporary of this process still there: those whose `finally` a Ctrl-C cut."""
    for path in list(_unfinished):
        remove_temporary(path)


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and a rename: readers see the old content or the new, never half."""
    path = Path(path)
    tmp = temporary_name(path.parent, f".{path.name}")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        remove_temporary(tmp)


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
