import json
import multiprocessing
import time

import pytest

from common.cache import BuildCache
from common.errors import UserError


def write_model(folder, payload=b"model bytes"):
    (folder / "model.bin").write_bytes(payload)
    return {"made": True}


def test_if_needed_reuses_always_rebuilds_never_fails_when_empty(cache_dir):
    with pytest.raises(UserError, match="--rebuild never: no usable cached build"):
        BuildCache(cache_dir, "never").get_or_build("m", "k" * 64, write_model)
    first = BuildCache(cache_dir).get_or_build("m", "k" * 64, write_model)
    assert not first.hit and (first.folder / "model.bin").read_bytes() == b"model bytes"
    again = BuildCache(cache_dir).get_or_build("m", "k" * 64, write_model)
    assert again.hit and again.folder == first.folder and again.state["facts"] == {"made": True}
    assert BuildCache(cache_dir, "never").get_or_build("m", "k" * 64, write_model).hit
    rebuilt = BuildCache(cache_dir, "always").get_or_build(
        "m", "k" * 64, lambda f: write_model(f, b"new"))
    assert not rebuilt.hit and (rebuilt.folder / "model.bin").read_bytes() == b"new"
    other = BuildCache(cache_dir).get_or_build("m", "j" * 64, write_model)
    assert not other.hit and other.folder != first.folder


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage-state", "no-state"])
def test_a_damaged_entry_is_rebuilt_with_one_line(cache_dir, capsys, damage):
    entry = BuildCache(cache_dir).get_or_build("m", "k" * 64, write_model).folder
    if damage == "truncate":
        (entry / "model.bin").write_bytes(b"model")
    elif damage == "flip":
        (entry / "model.bin").write_bytes(b"MODEL BYTES")
    elif damage == "garbage-state":
        (entry / "state.json").write_text("{not json")
    else:
        (entry / "state.json").unlink()
    capsys.readouterr()
    with pytest.raises(UserError, match="no usable cached build"):
        BuildCache(cache_dir, "never").get_or_build("m", "k" * 64, write_model)
    result = BuildCache(cache_dir).get_or_build("m", "k" * 64, write_model)
    assert not result.hit and (entry / "model.bin").read_bytes() == b"model bytes"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is unusable" in err[0] and "rebuilding" in err[0]


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_build_leaves_nothing_a_later_run_trusts(cache_dir, exc):
    def crash(folder):
        (folder / "model.bin").write_bytes(b"half")
        raise exc()

    with pytest.raises(exc):
        BuildCache(cache_dir).get_or_build("m", "k" * 64, crash)
    assert list((cache_dir / "entries").iterdir()) == []
    assert list((cache_dir / "tmp").iterdir()) == []
    assert not BuildCache(cache_dir).get_or_build("m", "k" * 64, write_model).hit


def _slow_build(folder):
    time.sleep(0.5)
    (folder / "model.bin").write_bytes(b"model bytes")
    (folder / "builder.txt").write_text(str(multiprocessing.current_process().pid))
    return {}


def _build_in_process(cache_dir, queue):
    result = BuildCache(cache_dir).get_or_build("m", "k" * 64, _slow_build)
    queue.put((result.hit, (result.folder / "model.bin").read_bytes()))


def test_two_processes_building_the_same_entry_both_finish(cache_dir):
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_build_in_process, args=(cache_dir, queue)) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    results = sorted(queue.get(timeout=5) for _ in workers)
    assert [w.exitcode for w in workers] == [0, 0]
    assert results == [(False, b"model bytes"), (True, b"model bytes")]  # one built, one reused
    state = json.loads((next((cache_dir / "entries").iterdir()) / "state.json").read_text())
    assert set(state["files"]) == {"model.bin", "builder.txt"}


def test_an_unwritable_cache_folder_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="cannot be written"):
        BuildCache(blocker / "cache").ensure_writable()
