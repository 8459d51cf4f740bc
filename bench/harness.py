"""One harness for every experiment: `python -m bench NAME [options]`.

An experiment is a module of bench/ whose docstring says what it measures, with
`arguments(parser)` for its options and `run(args) -> dict` that measures, prints its table and
returns its figures. The harness parses, runs it, prints the CPU and, with --json, writes the
record: the figures beside the command, the commit, the start time and the CPU (`write_record`,
the one writer of a bench file, checked against docs/bench-record.schema.json). Experiments share
the inputs of the proof points (`model_arguments`, `load`) and one way to run a proof point script
and time it (`proof_point`).
"""
from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from common.run import schemas
from common.host.cpu import cpu_info, cpu_summary
from common.host.files import write_atomic
from common.host.paths import ROOT, SHARED
from common.host.provenance import started

RECORD_VERSION = 1
# experiment -> module of bench/, in the order `python -m bench` lists them
EXPERIMENTS = {
    "speed": "benchmark", "int8-variants": "int8_variants", "layer-gaps": "layer_gaps",
    "ov-buckets": "ov_buckets", "float-flips": "float_flips", "trial-cost": "trial_cost",
    "decision-reuse": "decision_reuse", "startup": "startup", "interrupt-window": "interrupt_window",
    "nncf-releases": "nncf_releases", "two-machines": "two_machines", "house": "house",
}
# commands that write no record of their own
COMMANDS = {"figures": "figures", "report": "report"}


def usage() -> str:
    lines = ["usage: python -m bench NAME [options]  (python -m bench NAME --help for its options)",
             "", "experiments (--json FILE writes the record):"]
    for name, module in EXPERIMENTS.items():
        lines.append(f"  {name:18} {_summary(module)}")
    lines += ["", "commands:"] + [f"  {name:18} {_summary(module)}"
                                   for name, module in COMMANDS.items()]
    return "\n".join(lines)


def _summary(module: str) -> str:
    doc = importlib.import_module(f"bench.{module}").__doc__ or ""
    return textwrap.shorten(doc.strip().split("\n\n")[0], 88, placeholder=" ...")


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    asked = not argv or argv[0] in ("-h", "--help")
    if asked or argv[0] not in {**EXPERIMENTS, **COMMANDS}:
        print(usage(), file=sys.stdout if asked else sys.stderr)
        return 0 if asked else 2
    name, rest = argv[0], argv[1:]
    if name in COMMANDS:
        return importlib.import_module(f"bench.{COMMANDS[name]}").main(rest)
    module = importlib.import_module(f"bench.{EXPERIMENTS[name]}")
    parser = argparse.ArgumentParser(prog=f"python -m bench {name}", description=module.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    module.arguments(parser)
    parser.add_argument("--json", metavar="FILE", help="write the figures as a record")
    args = parser.parse_args(rest)
    provenance = started(["python", "-m", "bench", name, *rest])
    figures = module.run(args)
    print(cpu_summary())
    if args.json:
        write_record(Path(args.json), name, provenance, figures)
    return 0


def write_record(path: Path, experiment: str, provenance: dict, figures: dict) -> None:
    """The experiment's figures with what ran, at which commit, when and on which CPU, written
    whole or not at all."""
    record = {"bench": experiment, "record_version": RECORD_VERSION, **provenance, **figures,
              "cpu": cpu_info(), "cpu_summary": cpu_summary()}
    schemas.check(record, schemas.BENCH_RECORD)
    write_atomic(path, json.dumps(record, indent=2) + "\n")


def model_arguments(p: argparse.ArgumentParser, calibration_samples: int = 1000) -> None:
    """The inputs of an experiment on a real checkpoint: the shared MiniLM and SST-2 by default."""
    p.add_argument("--model", default=str(SHARED / "models/minilm-l6-sst2"))
    p.add_argument("--dataset", default=str(SHARED / "data/sst2/validation.tsv"))
    p.add_argument("--calibration-dataset", default=str(SHARED / "data/sst2/train.tsv"))
    p.add_argument("--calibration-samples", type=int, default=calibration_samples)
    p.add_argument("--seed", type=int, default=0, help="of the calibration draw")


@dataclass
class Inputs:
    checkpoint: object  # common.inputs.checkpoints.Checkpoint
    examples: object  # common.inputs.examples.Examples
    batches: object  # the evaluated sentences, batches of 32 at max length 128
    calibration: object  # common.backends.base.Calibration


def load(args: argparse.Namespace, validation: int = 0, distillation: int = 0) -> Inputs:
    """The checkpoint, the evaluated sentences and the calibration samples (with a validation
    slice and distillation rows where asked), drawn as bert_quantize.py draws them."""
    from common.inputs.batching import make_batches, tokenize
    from common.inputs.calibration import draw_calibration
    from common.inputs.checkpoints import load_checkpoint
    from common.inputs.examples import load_examples

    checkpoint = load_checkpoint(args.model)
    examples = load_examples(args.dataset)
    batches = make_batches(tokenize(checkpoint.tokenizer, examples.sentences, 128), 32)
    calibration = draw_calibration(args.calibration_dataset, None, args.seed,
                                   args.calibration_samples, checkpoint.tokenizer, 128,
                                   examples.sentences, validation, distillation=distillation)
    return Inputs(checkpoint, examples, batches, calibration)


def proof_point(script: str, *args: str, check: bool = True, **popen) -> tuple[float, object]:
    """A proof point script run as a user runs it (this Python, in the project's folder), and
    its wall-clock seconds; output captured as text unless `popen` says otherwise."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, script, *args], cwd=ROOT, check=check,
                          **{"capture_output": True, "text": True, **popen})
    return time.perf_counter() - start, done
