"""Build here, execute there, timed as a user runs it: a proof point on one machine (a fresh
cache), then `--build` (another fresh cache), that cache copied to another folder, and
`--execute` from the copy; each one's wall-clock seconds, and the agreement and accuracy of the
one-machine and the executed runs (under `auto` each run's own trial decides which build runs,
so a near tie may choose another: `--flags` can force one)."""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import tempfile
from pathlib import Path

from bench.harness import model_arguments, proof_point


def arguments(p: argparse.ArgumentParser) -> None:
    model_arguments(p)
    p.add_argument("--script", default="bert_quantize.py",
                   choices=("bert_tiny.py", "bert_base.py", "bert_quantize.py"))
    p.add_argument("--limit", type=int, help="the first N sentences only")
    p.add_argument("--flags", default="", help="further flags for all three runs, e.g. "
                                              "'--backend openvino --precision int8+fp32'")


def run(args: argparse.Namespace) -> dict:
    common = ["--model", args.model, "--dataset", args.dataset]
    if args.script == "bert_quantize.py":
        common += ["--calibration-dataset", args.calibration_dataset, "--calibration-samples",
                   str(args.calibration_samples), "--seed", str(args.seed)]
    common += ["--limit", str(args.limit)] if args.limit else []
    common += shlex.split(args.flags)
    steps, runs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)

        def timed(name: str, *extra: str, cache: str, result: bool = True) -> None:
            out = folder / f"{name}.json"
            seconds, done = proof_point(args.script, *common, *extra, "--cache-dir",
                                        str(folder / cache), *(["--json", str(out)] if result
                                                               else []), check=False)
            steps[name] = {"seconds": seconds, "exit": done.returncode,
                           "stdout_tail": done.stdout.splitlines()[-8:],
                           "stderr_tail": done.stderr.splitlines()[-3:]}
            if result and done.returncode == 0:
                runs[name] = json.loads(out.read_text())["runs"][1]
            print(f"{name}: exit {done.returncode} after {seconds:.1f} s")

        timed("one machine", cache="one")
        timed("--build", "--build", cache="built", result=False)
        shutil.copytree(folder / "built", folder / "copied")
        shutil.rmtree(folder / "built")
        timed("--execute", "--execute", cache="copied")
    same = {key: runs.get("one machine", {}).get(key) == runs.get("--execute", {}).get(key)
            for key in ("name", "agreement", "accuracy", "max_abs_logit_diff")}
    for name, run in runs.items():
        print(f"{name}: {run['name']}, agreement {run['agreement']:.4f}, accuracy "
              f"{run['accuracy']:.4f}")
    print(f"the same answers: {same}")
    return {"script": args.script, "steps": steps,
            "runs": {name: {key: run[key] for key in ("name", "precision", "agreement",
                                                      "accuracy", "max_abs_logit_diff",
                                                      "build_seconds", "cache_hit")}
                     for name, run in runs.items()},
            "same": same}
