"""One proof point end to end: load, tokenize, build, evaluate both runners, report."""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from dataclasses import asdict
from typing import Sequence

from . import fidelity, interrupt
from .backends import backend_module, candidates_for, versions_of
from .backends.base import BuildOptions, Candidate, Runner
from .backends.torch_ref import reference_runner
from .batching import make_batches, tokenize
from .cache import BuildCache
from .calibration import draw_calibration
from .checkpoints import load_checkpoint
from .cli import parse_command_line
from .errors import UserError
from .evaluate import evaluate, run_metrics, time_both
from .files import check_writable_target
from .flags import check_flags, seed
from .mismatches import write_mismatches
from .provenance import started
from .paths import ROOT
from .results import (environment, float_as_fast_line, format_notes, format_table, int8_hint,
                      write_json)
from .sources import calibration_wanted, data_wanted, looks_local, model_wanted, resolve
from .spec import INTERRUPTED, ProofPoint
from .sst2 import load_examples
from .trial import Choice, cached_decisions, choose


def main(spec: ProofPoint, argv: Sequence[str] | None = None,
         args: argparse.Namespace | None = None) -> int:
    """Run the proof point (on `args` where the launcher parsed them already); a user's mistake
    ends in one line on stderr and exit code 2."""
    # the original proof points' setting: no tokenizer threads, so no warning when a subprocess forks
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args is None:
        args = parse_command_line(spec, argv)
    try:
        run(spec, args)
    except UserError as exc:
        print(f"{spec.name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{spec.name}: {INTERRUPTED}", file=sys.stderr)
        return 130
    return 0


def build_options(candidate: Candidate, args: argparse.Namespace, spec: ProofPoint) -> BuildOptions:
    """The candidate's precision with the user's other choices (INT8's only for INT8)."""
    flags = None if args.compiler_flags is None else tuple(shlex.split(args.compiler_flags))
    int8 = candidate.precision == "int8"
    return BuildOptions(precision=candidate.precision, remainder=candidate.remainder or "fp32",
                        min_agreement=getattr(args, "min_agreement", None) if int8 else None,
                        quantization=getattr(args, "quantization", "static"), device=args.device,
                        num_chips=args.num_chips or spec.num_chips, compiler_flags=flags,
                        max_length=args.max_length)


def with_accuracy_control(candidates: list[Candidate], min_agreement: float | None,
                          quantization: str | None, validation_samples: int) -> list[Candidate]:
    """With --min-agreement, the builds of backends that can keep layers in float to meet it; its
    validation slice is drawn beside the calibration samples, so static INT8 only, and must be
    large enough to show the target at all."""
    if min_agreement is None:
        return candidates
    if quantization != "static":
        raise UserError("--min-agreement searches calibrated (static) INT8; dynamic INT8 has no "
                        "calibration: drop --quantization dynamic")
    fidelity.check_slice(min_agreement, validation_samples)
    kept = [c for c in candidates if getattr(backend_module(c.backend), "ACCURACY_CONTROL", False)]
    if not kept:
        names = " and ".join(dict.fromkeys(c.backend for c in candidates))
        raise UserError(f"--min-agreement: {names} cannot keep layers in float to meet it; "
                        "OpenVINO and ONNX Runtime can: --backend openvino or onnxruntime")
    return kept


def compared_floats(candidates: list[Candidate], device: str) -> list[Candidate]:
    """The float builds that an INT8 trial times beside its candidates (never chosen): those of
    the same host backends, so that the run can say when INT8 buys no speed here."""
    backends = [name for name in dict.fromkeys(c.backend for c in candidates)
                if not backend_module(name).STATIC_SHAPE]
    if len(candidates) < 2 or not backends or candidates[0].precision != "int8":
        return []
    return [c for name in backends for c in backend_module(name).candidates(device, None)]


def forced_by(args: argparse.Namespace) -> str:
    """The flags that narrowed the builds, as typed; "" when everything was left to auto."""
    flags = [f"--{name} {value}" for name, value in
             (("backend", args.backend), ("precision", getattr(args, "precision", "auto")))
             if value != "auto"]
    return " ".join(flags)


def slower_than_reference(choice: Choice, built: dict, args: argparse.Namespace,
                          cache: BuildCache, weights: str) -> str:
    """The line under the table when the float build chosen runs slower than PyTorch, and what
    does run faster here (INT8, if its proof point measured it) or how to find out."""
    speed = built["speedup"]["median"]
    if choice.record["trial"]:
        said = (f"no float build is faster than PyTorch on this CPU: the fastest in the trial, "
                f"{choice.candidate}, ran at {speed:.2f}× the reference")
    else:
        said = f"{choice.candidate} ran at {speed:.2f}× PyTorch on this CPU; --backend auto tries every build"
    hint = int8_hint(cached_decisions(cache, weights, "int8"))
    if hint is None:
        command = f"python bert_quantize.py --model {args.model} --dataset {args.dataset}"
        if looks_local(args.dataset):
            command += " --calibration-dataset TRAIN_FILE"
        hint = f"INT8 may be: {command}"
    return f"{said}. {hint}"


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
    quantization = args.quantization if spec.quantize else None
    candidates, backends_note = candidates_for(args.backend, args.device, quantization,
                                               getattr(args, "precision", "auto"))
    calibrate = spec.quantize and args.quantization == "static"
    candidates = with_accuracy_control(candidates, getattr(args, "min_agreement", None),
                                       quantization, getattr(args, "validation_samples", 0))
    flag_notes = check_flags(args, candidates, calibrate)
    interrupt.check()  # each stage boundary: a Ctrl-C that Python discarded still ends the run
    sources = resolve_sources(spec, args, calibrate)
    checkpoint = load_checkpoint(sources["model"].location)
    interrupt.check()
    limit = checkpoint.model.config.max_position_embeddings
    if args.max_length > limit:
        raise UserError(f"--max-length {args.max_length} exceeds the model's {limit} positions")
    examples = load_examples(sources["dataset"].location, sources["dataset"].table_split,
                             args.limit)
    calibration = None
    if calibrate:
        source = sources["calibration"]
        calibration = draw_calibration(source.location, source.table_split, seed(args),
                                       args.calibration_samples, checkpoint.tokenizer,
                                       args.max_length, examples.sentences,
                                       args.validation_samples if args.min_agreement else 0)
        if args.min_agreement:  # the slice actually drawn may be smaller than asked
            fidelity.check_slice(args.min_agreement, len(calibration.validation_indices),
                                 drawn=True)
    interrupt.check()
    if args.rebuild != "never":
        cache.ensure_writable()
    print(f"{spec.name}: {sources['model'].location} on {sources['dataset'].location} "
          f"({len(examples.sentences)} sentences)"
          + (f", calibration seed {seed(args)}" if calibrate else "") + "; builds: "
          f"{', '.join(map(str, candidates))}" + (f" ({backends_note})" if backends_note else ""),
          file=sys.stderr)

    encoded = tokenize(checkpoint.tokenizer, examples.sentences, args.max_length)
    batches = make_batches(encoded, args.batch_size)
    static_batches = make_batches(encoded, args.batch_size, static_shape=True) \
        if any(backend_module(c.backend).STATIC_SHAPE for c in candidates) else None

    def batches_for(candidate: Candidate):
        return static_batches if backend_module(candidate.backend).STATIC_SHAPE else batches

    def build(candidate: Candidate) -> Runner:
        return backend_module(candidate.backend).build(
            checkpoint, batches_for(candidate).inputs[0],
            options=build_options(candidate, args, spec),
            cache=cache, calibration=calibration)

    def recipe_of(candidate: Candidate) -> dict:
        options = build_options(candidate, args, spec)
        return {"options": asdict(options),
                "recipe": backend_module(candidate.backend).build_recipe(options)}

    reference = evaluate(reference_runner(checkpoint.model), batches)
    forced = forced_by(args)
    min_agreement = getattr(args, "min_agreement", None)
    context = {"weights": checkpoint.digest, "batch_size": args.batch_size,
               "max_length": args.max_length,
               "data": {**examples.identity, "samples": len(examples.sentences)},
               "calibration": calibration.cache_parts() if calibration else None,
               **fidelity.rule_in_key(min_agreement)}
    choice = choose(candidates, build, reference, batches, cache, context,
                    compared=compared_floats(candidates, args.device), recipe_of=recipe_of,
                    min_agreement=min_agreement,
                    described=f"{len(examples.sentences)} sentences of {sources['dataset'].location}",
                    why_single=f"as {forced} asks" if forced else "the only build offered here")
    interrupt.check()
    print(choice.banner(), file=sys.stderr)
    static_shape = backend_module(choice.candidate.backend).STATIC_SHAPE
    built_batches = batches_for(choice.candidate)
    result = evaluate(choice.runner, built_batches)
    timings, timed = time_both(reference, result, encoded, args.batch_size, args.repeats,
                               static_shape)
    interrupt.check()
    runs = [run_metrics(reference, timings[0], examples.labels, "reference"),
            run_metrics(result, timings[1], examples.labels, "built", reference, timings[0])]
    notes = ([f"labels: {examples.labels_rule}"] if examples.labels_rule else []) + flag_notes
    if choice.runner.facts.get("accuracy_control"):
        notes.append(fidelity.summary(choice.runner.facts["accuracy_control"]))
    if not spec.quantize and choice.runner.device == "cpu" and runs[1]["speedup"]["median"] < 1.0:
        notes.append(slower_than_reference(choice, runs[1], args, cache, checkpoint.digest))
    if choice.record.get("float_as_fast"):
        notes.append(float_as_fast_line(choice.record["float_as_fast"]))
    document = {**provenance, "model": args.model, "dataset": args.dataset,
                "split": sources["dataset"].split, "samples": len(examples.sentences),
                "labels": examples.labels_rule or "0/1 as in the file",
                "seed": seed(args) if calibrate else None,
                "batch_size": args.batch_size, "max_length": args.max_length,
                "sources": {what: source.record() for what, source in sources.items()},
                "inputs": {"weights_sha256": checkpoint.digest, "dataset": examples.identity},
                "choice": choice.record, "timing": timed, "notes": notes,
                "environment": environment(versions_of(candidates)), "runs": runs}
    if calibration is not None:
        document["calibration"] = {**calibration.record(), "count": len(calibration.indices),
                                   "requested": calibration.requested,
                                   "overlap_with_evaluation_checked": True}
    interrupt.check()  # the last moment: after it the table and the files are written
    print(format_table(runs))
    print(format_notes(document))
    if args.json:
        write_json(args.json, document)
    if args.mismatches:
        write_mismatches(args.mismatches, examples, reference, result)
    return document
