"""The command line every proof-point script shares."""
from __future__ import annotations

import argparse
import sys
from typing import NoReturn, Sequence

from ..backends import CHOICES
from ..backends.base import QUANTIZATIONS
from ..builds.cache import REBUILD_POLICIES, default_cache_dir
from ..builds.precision import flag_choices
from ..host.gpu import DEVICES
from ..inputs.examples import DEFAULT_DATASET
from .flags import DEFAULT_SEED
from .settings import (DEFAULT_CALIBRATION_SAMPLES, DEFAULT_VALIDATION_SAMPLES, Settings,
                       settings_from)

DEFAULT_BATCH_SIZE = 32
DEFAULT_MAX_LENGTH = 128


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), like every other failure."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def int_in(low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range [{low}, {high}]")
        return value
    return parse


def share(text: str) -> float:
    """A share in (0, 1], as 0.995."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{value} is not a share in (0, 1], e.g. 0.995")
    return value


def build_parser(prog: str, description: str, default_model: str, num_chips: int,
                 quantize: bool) -> argparse.ArgumentParser:
    p = OneLineParser(prog=prog, description=description)
    add_input_flags(p, default_model)
    add_build_flags(p, num_chips)
    if quantize:
        add_int8_flags(p)
    else:
        p.add_argument("--precision", choices=flag_choices(int8=False), default="auto",
                       help="the built model's precision; auto: every precision the backends "
                            "offer here is timed on a few of the run's batches and the fastest "
                            "that agrees with the reference runs (cached per host)")
    return p


def add_input_flags(p: argparse.ArgumentParser, default_model: str) -> None:
    """What runs on what: the model, the data and its columns."""
    p.add_argument("--model", default=default_model,
                   help=f"hub id or local checkpoint folder (default: {default_model})")
    p.add_argument("--dataset", default=DEFAULT_DATASET,
                   help="hub dataset id or local .tsv/.csv/.parquet/.jsonl file with a text (or "
                        "sentence-pair) column and a label column (class ids or the model's label "
                        "names; for 2 labels also sentiment in [0, 1], positive above 0.5); sst: "
                        "the original proof points' stanfordnlp/sst test split "
                        f"(default: {DEFAULT_DATASET})")
    p.add_argument("--split", help="split of a hub dataset (default: validation; test for sst); "
                                   "for a local file, the value of its 'split' column to keep "
                                   "(default: the whole file)")
    p.add_argument("--dataset-config", metavar="NAME",
                   help="configuration of a hub dataset, e.g. mrpc for nyu-mll/glue")
    p.add_argument("--text-column", metavar="NAME",
                   help="the column of the text (default: sentence or text, or the first of a "
                        "GLUE pair: sentence1/sentence2, question/sentence, premise/hypothesis, "
                        "question1/question2)")
    p.add_argument("--text-pair-column", metavar="NAME",
                   help="the column of a pair's second text, tokenized with the first as a pair")
    p.add_argument("--label-column", metavar="NAME",
                   help="the column of the label: the class id, or its name in the model's "
                        "label2id (default: label)")
    p.add_argument("--limit", type=int_in(1, 10_000_000), help="evaluate only the first N sentences")


def add_build_flags(p: argparse.ArgumentParser, num_chips: int) -> None:
    """Which build, its cache, the batching and the timing, and where results go."""
    p.add_argument("--backend", choices=CHOICES, default="auto",
                   help="auto: GroqFlow where GroqWare and a GroqChip are here; else the fastest "
                        "build of OpenVINO, ONNX Runtime and PyTorch-compiled (torch_compile) "
                        "that agrees with the reference, measured on this host")
    p.add_argument("--device", choices=DEVICES, default="auto",
                   help="where the built model runs (the reference: always the CPU); auto "
                        "(default): a GroqChip, else a CUDA GPU torch can use, else the CPU; "
                        "cuda: torch_compile (fp16, bf16, fp32), ONNX Runtime with onnxruntime-gpu")
    p.add_argument("--num-chips", type=int_in(1, 64),
                   help=f"GroqFlow: GroqChip processors to build for, 1, 2, 4, 8, 16, 32 or 64 "
                        f"(default: {num_chips})")
    p.add_argument("--compiler-flags", metavar="'FLAGS'",
                   help="GroqFlow: the Groq compiler's flags, replacing the defaults (INT8: "
                        "--large-program, as the original proof points); e.g. "
                        "--compiler-flags='--large-program --effort=high'")
    p.add_argument("--batch-size", type=int_in(1, 4096), default=DEFAULT_BATCH_SIZE,
                   help=f"sentences per batch (default: {DEFAULT_BATCH_SIZE})")
    p.add_argument("--max-length", type=int_in(8, 512), default=DEFAULT_MAX_LENGTH,
                   help=f"tokens per sentence after truncation (default: {DEFAULT_MAX_LENGTH})")
    p.add_argument("--rebuild", choices=REBUILD_POLICIES, default="if_needed",
                   help="reuse a cached build if_needed (default), always rebuild, or never build")
    p.add_argument("--cache-dir", default=str(default_cache_dir()),
                   help="build cache folder (default: %(default)s)")
    stage = p.add_mutually_exclusive_group()
    stage.add_argument("-b", "--build", dest="stage", action="store_const", const="build",
                       help="build (or find in the cache) and stop: no reference, no evaluation; "
                            "prints what to copy to the machine that runs --execute")
    stage.add_argument("-e", "--execute", dest="stage", action="store_const", const="execute",
                       help="never build: load what --build made (this cache, or a copy of "
                            "another machine's), then evaluate as a one-machine run does")
    p.set_defaults(stage="both")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    p.add_argument("--mismatches", metavar="FILE",
                   help="write a TSV of every sentence where the build and the reference disagree")
    p.add_argument("--repeats", type=int_in(1, 100), default=3,
                   help="timing rounds: the runners take turns, each round timing the same "
                        "sentences; median and range are reported (default: 3)")


def add_int8_flags(p: argparse.ArgumentParser) -> None:
    """bert_quantize.py's: the INT8 build, its calibration and --min-agreement."""
    p.add_argument("--precision", choices=flag_choices(int8=True), default="auto",
                   help="INT8 and the precision of what stays in float; auto: measured as "
                        "for the float scripts")
    p.add_argument("--quantization", choices=QUANTIZATIONS, default="static",
                   help="static: calibrated INT8 (default); dynamic: no calibration")
    p.add_argument("--calibration-samples", type=int_in(1, 100_000),
                   default=DEFAULT_CALIBRATION_SAMPLES,
                   help=f"training sentences drawn for calibration (default: {DEFAULT_CALIBRATION_SAMPLES})")
    p.add_argument("--seed", type=int_in(0, 2**32 - 1),
                   help="seed of the calibration draw; printed and saved "
                        f"(default: {DEFAULT_SEED})")
    p.add_argument("--min-agreement", type=share, metavar="A",
                   help="INT8 that answers as the float model does on at least this share of "
                        "sentences, as a validation slice of the training data (none of it "
                        "calibrated on or evaluated) shows with 95%% confidence: the kinds of "
                        "layer whose INT8 error is largest stay in float until it does "
                        "(OpenVINO, ONNX Runtime; static INT8); e.g. 0.995")
    p.add_argument("--distill-steps", type=int_in(0, 100_000), default=0, metavar="N",
                   help="with --min-agreement: first train INT8 for N steps of 32 "
                        "training sentences to give the float model's logits, and keep every "
                        "layer INT8 if that reaches the target; measured on MiniLM it did not "
                        "(docs/int8.md), hence 0, off, by default")
    p.add_argument("--validation-samples", type=int_in(10, 100_000),
                   default=DEFAULT_VALIDATION_SAMPLES,
                   help="size of that validation slice, drawn with --seed + 1 "
                        f"(default: {DEFAULT_VALIDATION_SAMPLES})")
    p.add_argument("--calibration-dataset", metavar="ID|FILE",
                   help="where to draw calibration sentences (default: the 'train' split of "
                        "--dataset's hub dataset; a local file offline)")



def parse_command_line(spec, argv: Sequence[str] | None = None) -> Settings:
    """The script's settings (`spec`: its ProofPoint), with the command as typed kept for the
    results JSON."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(f"{spec.name}.py", spec.description, spec.model, spec.num_chips,
                        spec.quantize).parse_args(argv)
    args.command = [f"{spec.name}.py", *argv]
    return settings_from(args)
