"""INT8 fidelity across NNCF releases, same recipe and data: for each NNCF release, a virtual
environment with requirements.txt, that NNCF and the OpenVINO of its release, then
bert_quantize.py on the shared MiniLM with the bf16 remainder (about 4 minutes per release).

Each run's results JSON goes to --out as quantize-nncf-<release>.json; the record holds each
release's exit, agreement and accuracy.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common.host.paths import ROOT

RELEASES = (("2.15.0", "2025.0.0"), ("2.16.0", "2025.1.0"), ("2.18.0", "2025.3.0"))
QUANTIZE = ["bert_quantize.py", "--model", "../shared/models/minilm-l6-sst2",
            "--dataset", "../shared/data/sst2/validation.tsv",
            "--calibration-dataset", "../shared/data/sst2/train.tsv",
            "--backend", "openvino", "--precision", "int8+bf16"]


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="folder for each release's results JSON")
    p.add_argument("--releases", default=",".join(f"{n}:{o}" for n, o in RELEASES),
                   help="comma-separated NNCF:OpenVINO version pairs")


def installed(venv: Path, nncf: str, openvino: str) -> bool:
    python = str(venv / "bin" / "python")
    steps = [[sys.executable, "-m", "venv", str(venv)],
             [python, "-m", "pip", "install", "-q", "torch==2.13.0"],
             [python, "-m", "pip", "install", "-q", "-r", "requirements.txt"],
             [python, "-m", "pip", "install", "-q", f"nncf=={nncf}", f"openvino=={openvino}"]]
    return all(subprocess.run(step, cwd=ROOT).returncode == 0 for step in steps)


def run(args: argparse.Namespace) -> dict:
    args.out.mkdir(parents=True, exist_ok=True)
    releases = []
    with tempfile.TemporaryDirectory() as work:
        for pair in args.releases.split(","):
            nncf, openvino = pair.split(":")
            venv, out = Path(work) / f"nncf-{nncf}", args.out / f"quantize-nncf-{nncf}.json"
            row = {"nncf": nncf, "openvino": openvino, "file": out.name}
            if not installed(venv, nncf, openvino):
                releases.append({**row, "exit": None, "failed": "install"})
                print(f"nncf {nncf}: install failed")
                continue
            done = subprocess.run([str(venv / "bin" / "python"), *QUANTIZE, "--json", str(out),
                                   "--cache-dir", str(Path(work) / f"cache-{nncf}")],
                                  cwd=ROOT, stdout=subprocess.DEVNULL)
            row["exit"] = done.returncode
            if done.returncode == 0:
                built = json.loads(out.read_text())["runs"][1]
                row.update(agreement=built["agreement"], accuracy=built["accuracy"])
            releases.append(row)
            print(f"nncf {nncf}: exit {done.returncode}" + (
                f", agreement {row['agreement']:.4f}" if "agreement" in row else ""))
    return {"releases": releases}
