"""Every measured figure, in one command: runs the proof points and the benchmarks on this machine
and writes their JSON files to bench/results/<date>-<cpu>/; then
`python bench/report.py bench/results/* --plots bench/results/plots --page docs/results.md` rewrites
the results page's tables and charts from them.

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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from common.paths import ROOT, SHARED  # noqa: E402
from common.cpu import cpu_info  # noqa: E402

MINILM = ["--model", "../shared/models/minilm-l6-sst2",  # relative to ROOT, where they run
          "--dataset", "../shared/data/sst2/validation.tsv"]
TRAIN = ["--calibration-dataset", "../shared/data/sst2/train.tsv"]
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
    "benchmark.json": ["bench/benchmark.py"],
    "benchmark-minilm.json": ["bench/benchmark.py", *MINILM, *TRAIN],
    "benchmark-base-min-agreement.json": [
        "bench/benchmark.py", "--models", "base", "--runners",
        "pytorch-eager,openvino-bf16,openvino-int8+bf16,openvino-int8+bf16-ffn-out-float,"
        "openvino-int8+bf16-ffn-float,openvino-int8+bf16-ffn-scores-float,ort-int8-static,"
        "ort-int8-static-ffn-float"],
    "variants-openvino.json": ["bench/int8_variants.py", "--backend", "openvino"],
    "variants-onnxruntime.json": ["bench/int8_variants.py", "--backend", "onnxruntime"],
    "frontier-openvino.json": ["bench/int8_variants.py", "--backend", "openvino", "--frontier",
                               "--remainder", "bf16"],
    "frontier-onnxruntime.json": ["bench/int8_variants.py", "--backend", "onnxruntime", "--frontier"],
    "layer-gaps.json": ["bench/layer_gaps.py"],
    "ov-buckets.json": ["bench/ov_buckets.py"],
    "trial-cost.json": ["bench/trial_cost.py"],
    "float-flips.json": ["bench/float_flips.py"],
    "decision-reuse.json": ["bench/decision_reuse.py"],
    "startup.json": ["bench/startup.py"],
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
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
            if not RUNS[name][0].startswith("bench/"):
                command += ["--cache-dir", cache]  # cold builds, measured
            print(f"== {name}: {' '.join(command[1:])}", flush=True)
            subprocess.run(command, cwd=ROOT, check=True)
    print(f"wrote {out}; now: python bench/report.py bench/results/<folders> "
          "--plots bench/results/plots --page docs/results.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
