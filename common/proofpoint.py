"""One proof point end to end: load, tokenize, build, evaluate both runners, report."""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import Sequence

from .backends import load_backend
from .backends.base import Backend, BuildOptions, choose_precision
from .backends.torch_ref import reference_runner
from .batching import make_batches, tokenize
from .cache import BuildCache
from .calibration import draw_calibration
from .checkpoints import load_checkpoint
from .cli import build_parser
from .errors import UserError
from .evaluate import evaluate, run_metrics, time_both
from .files import check_writable_target
from .launch import INTERRUPTED, ProofPoint
from .mismatches import write_mismatches
from .provenance import started
from .report import environment, format_notes, format_table, write_json
from .sources import ROOT, calibration_wanted, data_wanted, model_wanted, resolve
from .sst2 import load_examples


def main(spec: ProofPoint, argv: Sequence[str] | None = None) -> int:
    """Run the proof point; a user's mistake ends in one line on stderr and exit code 2."""
    # the original proof points' setting: no tokenizer threads, so no warning when a subprocess forks
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(f"{spec.name}.py", spec.description, spec.model, spec.num_chips,
                        spec.quantize).parse_args(argv)
    args.command = [f"{spec.name}.py", *argv]
    try:
        run(spec, args)
    except UserError as exc:
        print(f"{spec.name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{spec.name}: {INTERRUPTED}", file=sys.stderr)
        return 130
    return 0


def build_options(spec: ProofPoint, backend: Backend, args: argparse.Namespace) -> BuildOptions:
    """INT8 for the quantize script; otherwise the precision asked for, or the device's native one."""
    precision = choose_precision(backend, getattr(args, "precision", "auto"), args.device,
                                 spec.quantize)
    flags = None if args.compiler_flags is None else tuple(shlex.split(args.compiler_flags))
    return BuildOptions(precision=precision, quantization=getattr(args, "quantization", "static"),
                        device=args.device, num_chips=args.num_chips, compiler_flags=flags,
                        max_length=args.max_length)


def resolve_sources(spec: ProofPoint, args: argparse.Namespace, calibrate: bool) -> dict:
    """Model, evaluation data and (for static INT8) calibration data: local, hub or bundled."""
    bundled = ROOT / spec.bundled_model if spec.bundled_model else None
    wanted = {"model": model_wanted(args.model, spec.model, bundled),
              "dataset": data_wanted("dataset", args.dataset, args.split, "--dataset")}
    if calibrate:
        wanted["calibration"] = calibration_wanted(args.calibration_dataset, args.dataset)
    return dict(zip(wanted, resolve(list(wanted.values()))))


def run(spec: ProofPoint, args: argparse.Namespace) -> dict:
    provenance = started(args.command)
    for flag, path in (("--json", args.json), ("--mismatches", args.mismatches)):
        if path:
            check_writable_target(path, flag)
    cache = BuildCache(args.cache_dir, args.rebuild)
    backend, backend_note = load_backend(args.backend, args.device,
                                         args.quantization if spec.quantize else None)
    options = build_options(spec, backend, args)
    static_int8 = spec.quantize and options.quantization == "static"
    sources = resolve_sources(spec, args, static_int8)
    checkpoint = load_checkpoint(sources["model"].location)
    limit = checkpoint.model.config.max_position_embeddings
    if args.max_length > limit:
        raise UserError(f"--max-length {args.max_length} exceeds the model's {limit} positions")
    examples = load_examples(sources["dataset"].location, args.split, args.limit)
    calibration = None
    if static_int8:
        source = sources["calibration"]
        calibration = draw_calibration(source.location, source.split, args.seed,
                                       args.calibration_samples, checkpoint.tokenizer,
                                       args.max_length, examples.sentences)
    if args.rebuild != "never":
        cache.ensure_writable()
    if backend_note:
        print(f"backend: {backend.NAME} {options.precision} ({backend_note})", file=sys.stderr)
    print(f"{spec.name}: {sources['model'].location} on {sources['dataset'].location} "
          f"({len(examples.sentences)} sentences), "
          f"backend {backend.NAME}, seed {args.seed}", file=sys.stderr)

    encoded = tokenize(checkpoint.tokenizer, examples.sentences, args.max_length)
    batches = make_batches(encoded, args.batch_size)
    built_batches = make_batches(encoded, args.batch_size, static_shape=True) \
        if backend.STATIC_SHAPE else batches
    built = backend.build(checkpoint, built_batches.inputs[0], options=options, cache=cache,
                          calibration=calibration)
    reference = evaluate(reference_runner(checkpoint.model), batches)
    result = evaluate(built, built_batches)
    timings, timed = time_both(reference, result, encoded, args.batch_size, args.repeats,
                               backend.STATIC_SHAPE)
    runs = [run_metrics(reference, timings[0], examples.labels, "reference"),
            run_metrics(result, timings[1], examples.labels, "built", reference, timings[0])]
    document = {**provenance, "model": args.model, "dataset": args.dataset, "split": args.split,
                "samples": len(examples.sentences), "seed": args.seed,
                "batch_size": args.batch_size, "max_length": args.max_length,
                "sources": {what: source.record() for what, source in sources.items()},
                "inputs": {"weights_sha256": checkpoint.digest, "dataset": examples.identity},
                "timing": timed,
                "environment": environment(backend.library_versions()), "runs": runs}
    if calibration is not None:
        document["calibration"] = {**calibration.record(), "count": len(calibration.indices),
                                   "requested": calibration.requested,
                                   "overlap_with_evaluation_checked": True}
    print(format_table(runs))
    print(format_notes(document))
    if args.json:
        write_json(args.json, document)
    if args.mismatches:
        write_mismatches(args.mismatches, examples, reference, result)
    return document
