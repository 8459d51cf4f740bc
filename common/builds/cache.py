"""Build folders on disk: keyed, locked, verified, and only ever published whole.

A build is written into a private temporary folder and renamed into place after its state file
records every file's size and hash; a later run trusts an entry only if all of them still match.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ..host import interrupt
from ..host.errors import NotBuilt, UserError
from ..host.files import file_sha256, remove_temporary, temporary_name, write_atomic

REBUILD_POLICIES = ("if_needed", "always", "never")
STATE_FILE = "state.json"
FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bert-proof-points"


def cache_key(parts: dict) -> str:
    """A stable hash of everything a build depends on (weights digest, options, versions)."""
    text = json.dumps({"format": FORMAT_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class CachedBuild:
    folder: Path
    hit: bool
    seconds: float  # build time, or the time to find and verify a cached build
    state: dict

    @property
    def file_sizes(self) -> dict[str, int]:
        """Each built file's bytes, as the state file records them."""
        return {name: meta["bytes"] for name, meta in self.state["files"].items()}


class BuildCache:
    def __init__(self, root: Path, rebuild: str = "if_needed", stage: str = "both"):
        """`stage`: the run's in the two-machine workflow: both (one machine), build (--build:
        built, never run) or execute (--execute: builds are loaded, never made, so `rebuild` is
        "never", while what the run measures here, a trial's decision, is made and cached)."""
        if rebuild not in REBUILD_POLICIES:
            raise UserError(f"--rebuild must be one of {', '.join(REBUILD_POLICIES)}")
        self.root = Path(root).expanduser()
        self.stage = stage
        self.rebuild = "never" if self.executing else rebuild
        self._this_run: dict[str, CachedBuild] = {}  # entries built or verified through this object
        self.seconds_building = 0.0  # spent building entries through this object

    def ensure_writable(self) -> None:
        """Fail before any work if the cache folder cannot be created or written."""
        probe = temporary_name(self.root / "tmp", "probe")
        try:
            for sub in ("entries", "tmp", "locks"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
            probe.touch(exist_ok=False)
        except OSError as exc:
            raise UserError(f"cache folder '{self.root}' cannot be written ({exc.strerror or exc}); "
                            "choose another with --cache-dir DIR") from None
        finally:
            remove_temporary(probe)

    def get_or_build(self, name: str, key: str, build: Callable[[Path], dict]) -> CachedBuild:
        """Return a verified entry for `key`, building it with `build(folder) -> facts` if needed.
        Asked again for the same entry (builds that share one, like the ONNX export), the answer
        is the first one: built in this run, with its build time, not rebuilt or hashed again."""
        entry = self.root / "entries" / f"{name}-{key[:16]}"
        if entry.name not in self._this_run:
            self._this_run[entry.name] = self._get_or_build(entry, key, build)
        return self._this_run[entry.name]

    def _get_or_build(self, entry: Path, key: str, build: Callable[[Path], dict]) -> CachedBuild:
        start = time.perf_counter()
        if self.rebuild != "always":
            state, problem = self._verify(entry, key)
            if state is not None:
                return CachedBuild(entry, True, time.perf_counter() - start, state)
            if self.rebuild == "never":
                raise NotBuilt(f"{self.never_flag}: no usable cached build '{entry.name}' in "
                               f"'{self.root}' ({problem})")
            if problem != "not built yet":
                print(f"cache entry '{entry.name}' is unusable ({problem}); rebuilding", file=sys.stderr)
        self.ensure_writable()
        with self._lock(entry.name):
            if self.rebuild != "always":  # another process may have built it while we waited
                state, _ = self._verify(entry, key)
                if state is not None:
                    return CachedBuild(entry, True, time.perf_counter() - start, state)
            state = self._build_into(entry, key, build, start)
        self.seconds_building += state["build_seconds"]
        return CachedBuild(entry, False, state["build_seconds"], state)

    @property
    def executing(self) -> bool:
        """--execute: builds are loaded, never made."""
        return self.stage == "execute"

    @property
    def never_flag(self) -> str:
        """The flag that forbids building here, as a message names it."""
        return "--execute" if self.executing else "--rebuild never"

    def touched(self) -> list[Path]:
        """The entries built or found through this object: what this run's builds are on disk."""
        return [entry.folder for entry in self._this_run.values()]

    def find(self, name: str, key: str) -> dict | None:
        """The state of an intact entry for `key`, or None; reads only (--rebuild never's
        decisions on a read-only cache)."""
        state, _ = self._verify(self.root / "entries" / f"{name}-{key[:16]}", key)
        return state

    def records(self, name: str) -> list[dict]:
        """The facts of every intact entry called `name`, whatever its key (e.g. every cached
        trial decision, to find one made by another proof point)."""
        found = []
        for entry in sorted((self.root / "entries").glob(f"{name}-*")):
            try:
                key = json.loads((entry / STATE_FILE).read_text())["key"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            state, _ = self._verify(entry, key)
            if state is not None:
                found.append(state["facts"])
        return found

    def _build_into(self, entry: Path, key: str, build: Callable[[Path], dict], start: float) -> dict:
        work = temporary_name(self.root / "tmp", entry.name)
        old = temporary_name(self.root / "tmp", "old")
        try:
            work.mkdir()
            facts = build(work)
            interrupt.check()  # a Ctrl-C that Python discarded during the build publishes nothing
            files = {p.name: {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
                     for p in sorted(work.iterdir()) if p.is_file()}
            state = {"key": key, "files": files, "facts": facts,
                     "build_seconds": time.perf_counter() - start, "created": time.time()}
            write_atomic(work / STATE_FILE, json.dumps(state, indent=2))
            with interrupt.held():  # the entry is the old one or the new one, never neither
                if entry.exists():  # stale, damaged or rebuilt on purpose: moved aside, then deleted
                    os.rename(entry, old)
                os.rename(work, entry)
            return state
        except OSError as exc:  # disk full, permissions: the user's to fix, not a bug
            raise UserError(f"cannot write build '{entry.name}' in '{self.root}': "
                            f"{exc.strerror or exc}") from None
        finally:
            remove_temporary(work)
            remove_temporary(old)

    @staticmethod
    def _verify(entry: Path, key: str) -> tuple[dict | None, str]:
        """(state, "") for a complete entry of this key; (None, why not) otherwise."""
        if not entry.is_dir():
            return None, "not built yet"
        try:
            state = json.loads((entry / STATE_FILE).read_text())
            files = state["files"]
            if state["key"] != key:
                return None, "built for another key"
            for file, meta in files.items():
                path = entry / file
                if not path.is_file() or path.stat().st_size != meta["bytes"]:
                    return None, f"{file} is missing or truncated"
                if file_sha256(path) != meta["sha256"]:
                    return None, f"{file} does not match its recorded hash"
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None, "its state file is missing or unreadable"
        return state, ""

    @contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        """The entry's lock between processes: flock, released by the kernel however the holder
        ends. Not filelock (installed with transformers): measured with its 4.3.2, a Ctrl-C at
        some lines of a build (tests/test_cache.py, every line) left its instance registered as
        holding the lock, and the next build in the process failed "Deadlock: ... already held by a
        different FileLock instance"; dropped after each use instead, its __del__ ran where the
        Ctrl-C landed, which Python prints as "Exception ignored" and swallows."""
        with open(self.root / "locks" / f"{name}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
