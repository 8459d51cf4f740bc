import json
import multiprocessing
import shutil
import time

import pytest

from common.builds.cache import BuildCache
from common.host.errors import UserError
from common.host.files import remove_unfinished, write_atomic
from conftest import ctrl_c_at_each_line


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


@pytest.mark.parametrize("existing", [False, True], ids=["first build", "rebuild"])
def test_a_ctrl_c_at_any_line_of_a_build_leaves_no_temporary_and_an_entry_whole_or_none(
        tmp_path, existing):
    """Seen in CI once: a Ctrl-C landing just after the build folder was made left it in tmp/."""
    root = tmp_path / "cache"

    def prepare():
        shutil.rmtree(root, ignore_errors=True)
        if existing:
            BuildCache(root).get_or_build("m", "k" * 64, write_model)

    def rebuild():
        BuildCache(root, "always").get_or_build("m", "k" * 64, lambda f: write_model(f, b"new"))

    for n in ctrl_c_at_each_line(prepare, rebuild):
        remove_unfinished()  # as the launcher does on the way out
        assert list(root.glob("tmp/*")) == [], f"Ctrl-C at line {n}"
        entry = BuildCache(root).find("m", "k" * 64)
        if existing or list(root.glob("entries/*")):
            assert entry is not None, f"Ctrl-C at line {n}"
    assert n > 100  # the whole build was walked, not only its first lines
    assert BuildCache(root).find("m", "k" * 64) is not None


def test_a_ctrl_c_at_any_line_of_a_write_leaves_the_old_file_or_the_new_one(tmp_path):
    target = tmp_path / "results.json"

    def prepare():
        target.write_text("old")

    for n in ctrl_c_at_each_line(prepare, lambda: write_atomic(target, "new")):
        remove_unfinished()  # as the launcher does on the way out
        assert [p.name for p in tmp_path.iterdir()] == ["results.json"], f"Ctrl-C at line {n}"
        assert target.read_text() in ("old", "new"), f"Ctrl-C at line {n}"
    assert n > 5 and target.read_text() == "new"


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
