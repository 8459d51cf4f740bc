"""How long `--help` and a mistyped flag take to answer: the command line is parsed before torch,
transformers or a runtime is imported. Median of 5 runs of each, wall clock, as a user sees it."""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from bench.record import write_record  # noqa: E402
from common.cpu import cpu_summary  # noqa: E402
from common.paths import ROOT  # noqa: E402

CASES = {"--help": ["--help"], "a bad flag": ["--bogus"]}


def seconds(script: str, args: list[str], runs: int) -> list[float]:
    taken = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, script, *args], cwd=ROOT, capture_output=True)
        taken.append(time.perf_counter() - start)
    return taken


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)
    results = {}
    for script in ("bert_tiny.py", "bert_base.py", "bert_quantize.py"):
        for case, extra in CASES.items():
            taken = seconds(script, extra, args.runs)
            results[f"{script} {case}"] = {"median_s": statistics.median(taken), "runs_s": taken}
            print(f"{script} {case}: {statistics.median(taken):.2f} s (median of {args.runs})")
    print(cpu_summary())
    if args.json:
        write_record(args.json, "bench/startup.py", argv, results=results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
