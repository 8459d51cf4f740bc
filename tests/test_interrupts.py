"""Ctrl-C at any moment of a cold run ends it in one line with exit code 130, and leaves no table,
no results file and no half-written cache entry: 30 moments spread over a whole cold run (imports,
the ONNX export, OpenVINO's conversion, the trial, the passes), each in a fresh cache."""
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import bert_tiny
from bench.interrupt_window import COMMAND, send_ctrl_c, start_cold_run
from common.host import interrupt
from common.builds.cache import STATE_FILE, BuildCache
from common.run.proofpoint import main
from common.run.spec import CTRL_C_AFTER_THE_LAST_MOMENT, INTERRUPTED
from conftest import ROOT, requires_openvino

MOMENTS = 30
# the last moment, as a share of the first run's time: runs vary (once, 5 of 30 moments spread up
# to 0.95 of it came after their run had ended)
LAST_MOMENT = 0.8


# Ctrl-C sent to itself by a process whose thread has an alternate signal stack that is no longer
# mapped; exit 130 when the KeyboardInterrupt arrives, killed by SIGSEGV when the kernel tried to
# write the handler's frame on that stack
# (imported before the setup: an import's memory could land where the stack was, and hide it)
IMPORTS = """
import os, signal, sys, time
from common.host import interrupt
"""
SELF_INTERRUPT = """
interrupt.install()
try:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)
except KeyboardInterrupt:
    sys.exit(130)
"""
LEFT_BY_OPENVINO = """
import openvino
first, second = openvino.Core(), openvino.Core()
for core in (first, second):
    core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")  # each Core loads its own CPU plugin
del first, second, core  # in creation order: the thread gets back the first one's unmapped stack
"""
UNMAPPED_STACK = """
import ctypes, mmap
libc = ctypes.CDLL(None)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                      ctypes.c_long]
size = 64 * 1024
stack = libc.mmap(None, size, mmap.PROT_READ | mmap.PROT_WRITE,
                  mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
class Stack(ctypes.Structure):
    _fields_ = [("sp", ctypes.c_void_p), ("flags", ctypes.c_int), ("size", ctypes.c_size_t)]
assert libc.sigaltstack(ctypes.byref(Stack(stack, 0, size)), None) == 0
assert libc.munmap(ctypes.c_void_p(stack), ctypes.c_size_t(size)) == 0
"""


def self_interrupt(setup: str) -> int:
    return subprocess.run([sys.executable, "-c", IMPORTS + setup + SELF_INTERRUPT], cwd=ROOT,
                          capture_output=True, timeout=120).returncode


@pytest.mark.skipif(sys.platform != "linux" or platform.machine() not in ("x86_64", "aarch64"),
                    reason="the handler leaves the alternate stack on Linux x86-64 and AArch64")
def test_ctrl_c_with_an_unmapped_alternate_signal_stack_is_a_keyboard_interrupt():
    assert self_interrupt(UNMAPPED_STACK) == 130


@requires_openvino
def test_ctrl_c_after_openvino_plugins_freed_in_creation_order_is_a_keyboard_interrupt():
    assert self_interrupt(LEFT_BY_OPENVINO) == 130


def test_a_ctrl_c_in_a_held_step_is_raised_by_the_next_check_not_inside_it():
    previous = signal.getsignal(signal.SIGINT)
    steps = []
    try:
        interrupt.install()
        with pytest.raises(KeyboardInterrupt):
            with interrupt.held():
                signal.raise_signal(signal.SIGINT)
                steps.append("after the signal")
            steps.append("after the step")
            interrupt.check()
        with pytest.raises(KeyboardInterrupt):  # outside, it is raised where it lands, as Python does
            signal.raise_signal(signal.SIGINT)
            steps.append("never")
    finally:
        interrupt.install()  # forgets them
        signal.signal(signal.SIGINT, previous)
    assert steps == ["after the signal", "after the step"]


@requires_openvino
def test_a_ctrl_c_that_openvino_turns_into_its_own_error_ends_the_run_as_an_interrupt(
        tiny_checkpoint, data_file, tmp_path, monkeypatch, capsys):
    """Seen in the 30-moment test: a Ctrl-C landing in the Python telemetry callback that OpenVINO's
    converter calls from C++ came out as RuntimeError ("Converting input model\nKeyboardInterrupt"),
    and the run ended in a traceback, exit code 1."""
    Telemetry = pytest.importorskip("openvino_telemetry.main").Telemetry
    send_event, called_by_the_converter = Telemetry.send_event, []

    def ctrl_c_in_the_callback(self, *args, **kwargs):
        if Path(sys._getframe(1).f_code.co_filename).parts[-2:] == ("frontend", "frontend.py"):
            called_by_the_converter.append(True)
            signal.raise_signal(signal.SIGINT)
        return send_event(self, *args, **kwargs)

    monkeypatch.setattr(Telemetry, "send_event", ctrl_c_in_the_callback)
    cache = tmp_path / "cache"
    previous = signal.getsignal(signal.SIGINT)
    try:
        interrupt.install()
        code = main(bert_tiny.SPEC, ["--model", str(tiny_checkpoint), "--dataset", str(data_file),
                                     "--backend", "openvino", "--precision", "fp32",
                                     "--cache-dir", str(cache)])
    finally:
        interrupt.install()  # forgets it
        signal.signal(signal.SIGINT, previous)
    assert called_by_the_converter, "OpenVINO's converter no longer calls telemetry from C++"
    assert code == 130 and capsys.readouterr().err.strip().splitlines()[-1].endswith(INTERRUPTED)
    assert not any((cache / "tmp").iterdir()) and not any((cache / "entries").glob("ov-*"))


def start(tmp_path, name):
    cache, out = tmp_path / f"{name}-cache", tmp_path / f"{name}.json"
    return start_cold_run(cache, out), cache, out


def intact_entries(cache) -> bool:
    """Every published entry verifies against its own state file; nothing is left in tmp/."""
    if not cache.exists():
        return True
    store = BuildCache(cache, "never")
    for entry in (cache / "entries").glob("*"):
        name, key = entry.name.rsplit("-", 1)[0], json.loads((entry / STATE_FILE).read_text())["key"]
        if store.find(name, key) is None:
            return False
    return not any((cache / "tmp").glob("*"))


def test_a_ctrl_c_as_a_run_finishes_leaves_its_table_and_files_whole(tmp_path, monkeypatch):
    """Seen: a Ctrl-C 10-20 ms after the table's first line, while the run's runtimes were freed,
    ended in a traceback and exit code 1 (2 of 6 tries). Past its last moment a run finishes."""
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")  # the table's first line as soon as it is printed
    cache, out = tmp_path / "cache", tmp_path / "out.json"
    for delay in (0.0, 0.01, 0.02, 0.03):  # the first run builds, the others find its builds
        out.unlink(missing_ok=True)
        proc = start_cold_run(cache, out)
        assert proc.stdout.readline().startswith("runner ")  # the table's header
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0 and "Traceback" not in stderr, (delay, stderr)
        assert json.loads(out.read_text())["runs"], delay
    # whether each landed while the run was still listening (it then says so) depends on this
    # machine's pace: the next test makes one land there by construction


def test_a_ctrl_c_that_lands_while_the_results_are_written_is_said_and_changes_nothing(
        tmp_path):
    """The signal sent by the run itself as it starts writing its results file (no timing
    window): recorded, not raised; the table and the file are whole, exit 0, and the last line
    says a Ctrl-C came as the run was finishing."""
    out = tmp_path / "out.json"
    lands = ("import os, runpy, signal, sys; import common.run.proofpoint as run; "
             "write = run.write_json; "
             "run.write_json = lambda *a: (os.kill(os.getpid(), signal.SIGINT), write(*a)); "
             "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", lands, *COMMAND, "--cache-dir",
                           str(tmp_path / "c"), "--json", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9"})
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == f"bert_tiny: {CTRL_C_AFTER_THE_LAST_MOMENT}"
    assert proc.stdout.startswith("runner ") and json.loads(out.read_text())["runs"]


@pytest.mark.skipif(not os.environ.get("PROOF_POINTS_INTERRUPT_MOMENTS"),
                    reason="30 cold runs, minutes: PROOF_POINTS_INTERRUPT_MOMENTS=1 (docs/testing.md)")
def test_ctrl_c_at_30_moments_of_a_cold_run(tmp_path):
    proc, _, out = start(tmp_path, "whole")
    begun = time.monotonic()
    stdout, stderr = proc.communicate(timeout=600)
    whole = time.monotonic() - begun
    assert proc.returncode == 0 and out.exists(), stderr
    outcomes, in_a_build = [], 0
    for i, moment in enumerate(np.linspace(0.3, LAST_MOMENT * whole, MOMENTS)):
        proc, cache, out = start(tmp_path, f"m{i}")
        time.sleep(moment)
        if proc.poll() is not None:
            outcomes.append((moment, "ended before the interrupt", proc.returncode))
            continue
        in_a_build += any((cache / "tmp").glob("*"))
        stdout, stderr, finished = send_ctrl_c(proc, out)
        lines = stderr.strip().splitlines()
        if finished:
            outcomes.append((moment, "ended before the interrupt", 0))
            continue
        ok = (proc.returncode == 130 and lines[-1] == f"bert_tiny: {INTERRUPTED}"
              and "Traceback" not in stderr and not stdout.strip() and not out.exists()
              and intact_entries(cache))
        outcomes.append((moment, "ok" if ok else f"exit {proc.returncode}: stderr {stderr[-3000:]!r} "
                                                 f"stdout {stdout[:80]!r}", proc.returncode))
    print(f"{sum(o[1] == 'ok' for o in outcomes)} of {MOMENTS} moments over a {whole:.1f} s run "
          f"interrupted cleanly, {in_a_build} inside a build: {outcomes}")
    failed = [o for o in outcomes if o[1] not in ("ok", "ended before the interrupt")]
    assert not failed, f"of {MOMENTS} moments over a {whole:.1f} s run: {failed}"
    assert sum(o[1] == "ok" for o in outcomes) >= MOMENTS - 3, outcomes
    assert in_a_build, "no moment landed inside a build"
