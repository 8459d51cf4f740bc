"""How Ctrl-C ends a cold `bert_tiny.py` run in the moments after its `backend:` line, where the
trial's losing builds have just been freed and the timing begins: each run is interrupted a set
delay after that line (spread evenly over --after), and its exit is counted by the chosen backend.
Exit 130 with the interrupted line is the promise ("finished first": exit 0 with its results
written before the signal was sent, or whole as it came past the run's last moment); -11 is a
crash (the window where two freed OpenVINO builds left the thread a dangling alternate signal
stack, common/host/interrupt.py)."""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from common.host.paths import ROOT
from common.run.spec import CTRL_C_AFTER_THE_LAST_MOMENT, INTERRUPTED

COMMAND = ["bert_tiny.py", "--model", "models/bert-tiny-sst2", "--dataset",
           "data/sst2/validation.tsv", "--limit", "96", "--repeats", "1"]


def as_in_a_terminal() -> None:
    """Ctrl-C's default action, as a foreground process has it (a CI runner may start its jobs
    with SIGINT ignored, and the child would inherit that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_cold_run(cache: Path, results: Path) -> subprocess.Popen:
    """COMMAND in a fresh cache, offline, as a terminal would start it; stdout and stderr piped."""
    return subprocess.Popen([sys.executable, *COMMAND, "--cache-dir", str(cache), "--json",
                             str(results)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=as_in_a_terminal,
                            env={**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9"})


def send_ctrl_c(proc: subprocess.Popen, results: Path) -> tuple[str, str, bool]:
    """SIGINT to a run, then its stdout, its stderr and whether it had finished first: exit 0 with
    its results written before the signal was sent, or as the signal came past the run's last
    moment (and it says so)."""
    sent = time.time()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    finished = proc.returncode == 0 and results.exists() and (
        results.stat().st_mtime < sent or CTRL_C_AFTER_THE_LAST_MOMENT in stderr)
    return stdout, stderr, finished


def interrupted_after_backend_line(delay: float, folder: str) -> dict:
    """One cold run, SIGINT `delay` seconds after it names its backend."""
    results = Path(folder, "out.json")
    proc = start_cold_run(Path(folder, "cache"), results)
    backend = None
    for line in proc.stderr:
        if line.startswith("backend:"):
            backend = line.split(",")[0].removeprefix("backend: ")
            break
    time.sleep(delay)
    _, rest, finished = send_ctrl_c(proc, results)
    lines = rest.strip().splitlines()
    clean = proc.returncode == 130 and bool(lines) and lines[-1].endswith(INTERRUPTED)
    outcome = ("interrupted" if clean else "finished first" if finished
               else f"exit {proc.returncode}")
    return {"delay_s": round(delay, 3), "backend": backend, "exit": proc.returncode,
            "outcome": outcome}


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--after", type=float, nargs=2, default=(0.05, 0.3), metavar=("FROM", "TO"),
                   help="seconds after the backend: line (default 0.05 0.3)")


def run(args: argparse.Namespace) -> dict:
    runs = []
    for delay in np.linspace(*args.after, args.runs):
        with tempfile.TemporaryDirectory() as folder:
            runs.append(interrupted_after_backend_line(float(delay), folder))
        print(f"{len(runs)}/{args.runs}: {runs[-1]}", flush=True)
    counts = Counter((run["backend"], run["outcome"]) for run in runs)
    for (backend, outcome), count in sorted(counts.items()):
        print(f"{backend}: {outcome} {count}")
    return {"runs": runs, "counts": [{"backend": b, "outcome": o, "runs": n}
                                     for (b, o), n in sorted(counts.items())]}
