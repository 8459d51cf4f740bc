"""How long `--help` and a mistyped flag take to answer: the command line is parsed before torch,
transformers or a runtime is imported. Median of 5 runs of each, wall clock, as a user sees it."""
from __future__ import annotations

import argparse

from bench.harness import proof_point
from common.builds.metrics import spread

CASES = {"--help": ["--help"], "a bad flag": ["--bogus"]}


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs", type=int, default=5)


def run(args: argparse.Namespace) -> dict:
    results = {}
    for script in ("bert_tiny.py", "bert_base.py", "bert_quantize.py"):
        for case, extra in CASES.items():
            taken = [proof_point(script, *extra, check=False)[0] for _ in range(args.runs)]
            median = spread(taken)["median"]
            results[f"{script} {case}"] = {"median_s": median, "runs_s": taken}
            print(f"{script} {case}: {median:.2f} s (median of {args.runs})")
    return {"results": results}
