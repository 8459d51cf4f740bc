"""Every measured figure, in one command: runs the proof points and the experiments on this machine
and writes their JSON files to bench/results/<date>-<cpu>/; then
`python -m bench report bench/results/* --plots bench/results/plots --page docs/results.md`
rewrites the results page's tables and charts from them.

Needs ../shared (the MiniLM SST-2 checkpoint and SST-2 train); BERT-tiny and the validation set are
the bundled copies. Takes about 30 minutes on a 2-core machine.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

from common.host.paths import ROOT, SHARED
from common.host.cpu import cpu_info

MINILM = ["--model", "../shared/models/minilm-l6-sst2",  # relative to ROOT, where they run
          "--dataset", "../shared/data/sst2/validation.tsv"]
TRAIN = ["--calibration-dataset", "../shared/data/sst2/train.tsv"]
BENCH = ["-m", "bench"]  # an experiment of the harness (bench/harness.py)
RUNS = {  # JSON file -> command (the script's own --json and --cache-dir are added)
    "tiny.json": ["bert_tiny.py", "--model", "models/bert-tiny-sst2",
                  "--dataset", "data/sst2/validation.tsv"],
    "base.json": ["bert_base.py", *MINILM],
    "base-fp32.json": ["bert_base.py", *MINILM, "--precision", "fp32"],
    "quantize.json": ["bert_quantize.py", *MINILM, *TRAIN],
    "quantize-ort.json": ["bert_quantize.py", *MINILM, *TRAIN, "--backend", "onnxruntime"],
    "quantize-int8-fp32.json": ["bert_quantize.py", *MINILM, *TRAIN, "--backend", "openvino",
                                "--precision", "int8+fp32"],
    "quantize-min-agreement.json": ["bert_quantize.py", *MINILM, *TRAIN, "--min-agreement", "0.995"],
    "benchmark.json": [*BENCH, "speed"],
    "benchmark-minilm.json": [*BENCH, "speed", *MINILM, *TRAIN],
    "benchmark-base-min-agreement.json": [
        *BENCH, "speed", "--models", "base", "--runners",
        "pytorch-eager,openvino-bf16,openvino-int8+bf16,openvino-int8+bf16-ffn-out-float,"
        "openvino-int8+bf16-ffn-float,openvino-int8+bf16-ffn-scores-float,ort-int8-static,"
        "ort-int8-static-ffn-float"],
    "variants-openvino.json": [*BENCH, "int8-variants", "--backend", "openvino"],
    "variants-onnxruntime.json": [*BENCH, "int8-variants", "--backend", "onnxruntime"],
    "frontier-openvino.json": [*BENCH, "int8-variants", "--backend", "openvino", "--frontier",
                               "--remainder", "bf16"],
    "frontier-onnxruntime.json": [*BENCH, "int8-variants", "--backend", "onnxruntime", "--frontier"],
    "layer-gaps.json": [*BENCH, "layer-gaps"],
    "ov-buckets.json": [*BENCH, "ov-buckets"],
    "trial-cost.json": [*BENCH, "trial-cost"],
    "float-flips.json": [*BENCH, "float-flips"],
    "decision-reuse.json": [*BENCH, "decision-reuse"],
    "startup.json": [*BENCH, "startup"],
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench figures", description=__doc__)
    p.add_argument("--only", help=f"comma-separated subset of {', '.join(RUNS)}")
    p.add_argument("--out", type=Path, help="folder for the JSON files (default: "
                                            "bench/results/<date>-<cpu>)")
    args = p.parse_args(argv)
    if not (SHARED / "models/minilm-l6-sst2").is_dir():
        raise SystemExit(f"{SHARED} (the MiniLM checkpoint and SST-2 train) is not here")
    info = cpu_info()  # "AMD EPYC family 26 model 2": a VM may name different CPUs alike
    slug = re.sub(r"[^a-z0-9]+", "-", f"{info['model']} {info['family']}".lower()).strip("-")
    out = args.out or ROOT / "bench" / "results" / f"{date.today().isoformat()}-{slug}"
    out.mkdir(parents=True, exist_ok=True)
    names = args.only.split(",") if args.only else list(RUNS)
    with tempfile.TemporaryDirectory() as cache:
        for name in names:
            command = [sys.executable, *RUNS[name], "--json", str(out / name)]
            if RUNS[name][:2] != BENCH:
                command += ["--cache-dir", cache]  # cold builds, measured
            print(f"== {name}: {' '.join(command[1:])}", flush=True)
            subprocess.run(command, cwd=ROOT, check=True)
    print(f"wrote {out}; now: python -m bench report bench/results/<folders> "
          "--plots bench/results/plots --page docs/results.md")
    return 0
