"""One proof point end to end: load, tokenize, build, evaluate both runners, report."""
from __future__ import annotations

import os
import shlex
import sys
from dataclasses import asdict, dataclass
from typing import Sequence

from ..backends import backend_module, distillation, versions_of
from ..backends.base import BuildOptions, Candidate, Runner
from ..backends.torch_ref import reference_runner
from ..builds import fidelity
from ..builds.cache import BuildCache
from ..host import gpu, interrupt
from ..host.errors import BuildFailed, BuildTooSlow, NoBuildLeft, UserError
from ..host.files import check_writable_target
from ..host.paths import ROOT
from ..host.provenance import started
from ..inputs.batching import make_batches, tokenize
from ..inputs.calibration import Calibration, draw_calibration
from ..inputs.checkpoints import Checkpoint, load_checkpoint
from ..inputs.examples import Columns, Examples, load_examples
from ..inputs.sources import calibration_wanted, data_wanted, looks_local, model_wanted, resolve
from . import handoff
from .cli import parse_command_line
from .evaluate import evaluate, run_metrics, time_both
from .flags import check_flags, seed
from .mismatches import write_mismatches
from .offers import candidates_for, compared_floats, with_accuracy_control
from .results import (RESULTS_SCHEMA_VERSION, environment, float_as_fast_line, format_notes,
                      format_table, int8_hint, write_json)
from .settings import Settings
from .spec import INTERRUPTED, ProofPoint
from .trial import Choice, cached_decisions, choose


def main(spec: ProofPoint, argv: Sequence[str] | None = None,
         args: Settings | None = None) -> int:
    """Run the proof point (on `args` where the launcher parsed them already); a user's mistake
    ends in one line on stderr and exit code 2."""
    # the original proof points' setting: no tokenizer threads, so no warning when a subprocess forks
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args is None:
        args = parse_command_line(spec, argv)
    try:
        run(spec, args)
    except (KeyboardInterrupt, Exception) as exc:
        interrupt.hold_to_the_end()  # the run's builds are freed as this block ends
        # A library may turn a Ctrl-C into an error of its own: OpenVINO's converter raises
        # RuntimeError("... KeyboardInterrupt") when one lands in a Python callback it calls.
        if isinstance(exc, KeyboardInterrupt) or interrupt.received():
            print(f"{spec.name}: {INTERRUPTED}", file=sys.stderr)
            return 130
        if isinstance(exc, UserError):
            print(f"{spec.name}: error: {exc}", file=sys.stderr)
            return 2
        raise
    return 0


def build_options(candidate: Candidate, args: Settings, spec: ProofPoint) -> BuildOptions:
    """The candidate's precision with the user's other choices (INT8's only for INT8)."""
    flags = None if args.compiler_flags is None else tuple(shlex.split(args.compiler_flags))
    int8 = candidate.int8
    return BuildOptions(precision=candidate.precision, remainder=candidate.remainder or "fp32",
                        min_agreement=args.min_agreement if int8 else None,
                        distill_steps=args.distill_steps if int8 else 0,
                        quantization=args.quantization,
                        device=candidate.device,
                        num_chips=args.num_chips or spec.num_chips, compiler_flags=flags,
                        max_length=args.max_length)


def forced_by(args: Settings) -> str:
    """The flags that narrowed the builds, as typed; "" when everything was left to auto."""
    flags = [f"--{name} {value}" for name, value in
             (("backend", args.backend), ("precision", args.precision))
             if value != "auto"]
    return " ".join(flags)


def slower_than_reference(choice: Choice, built: dict, args: Settings,
                          cache: BuildCache, model: str) -> str:
    """The line under the table when the float build chosen runs slower than PyTorch, and what
    does run faster here (INT8, if its proof point measured it) or how to find out."""
    speed = built["speedup"]["median"]
    if choice.record["trial"]:
        said = (f"no float build is faster than PyTorch on this CPU: the fastest in the trial, "
                f"{choice.candidate}, ran at {speed:.2f}× the reference")
    else:
        said = f"{choice.candidate} ran at {speed:.2f}× PyTorch on this CPU; --backend auto tries every build"
    hint = int8_hint(cached_decisions(cache, model, "int8"))
    if hint is None:
        command = f"python bert_quantize.py --model {args.model} --dataset {args.dataset}"
        if looks_local(args.dataset):
            command += " --calibration-dataset TRAIN_FILE"
        hint = f"INT8 may be: {command}"
    return f"{said}. {hint}"


def resolve_sources(spec: ProofPoint, args: Settings, calibrate: bool) -> dict:
    """Model, evaluation data and (for static INT8) calibration data: local, hub or bundled."""
    bundled = ROOT / spec.bundled_model if spec.bundled_model else None
    wanted = {"model": model_wanted(args.model, spec.model, bundled),
              "dataset": data_wanted("dataset", args.dataset, args.split, "--dataset")}
    if calibrate:
        wanted["calibration"] = calibration_wanted(args.calibration_dataset, args.dataset)
    return dict(zip(wanted, resolve(list(wanted.values()))))


def load_data(args: Settings, sources: dict, checkpoint,
              calibrate: bool) -> tuple[Examples, Calibration | None]:
    """The evaluated rows, read with the model's labels and the columns asked for (or found), and
    for static INT8 the calibration samples drawn from other rows with the same columns."""
    limit = checkpoint.model.config.max_position_embeddings
    if args.max_length > limit:
        raise UserError(f"--max-length {args.max_length} exceeds the model's {limit} positions")
    columns = Columns(args.text_column, args.text_pair_column, args.label_column)
    examples = load_examples(sources["dataset"].location, sources["dataset"].table_split,
                             args.limit, columns, checkpoint.labels, args.dataset_config)
    if not calibrate:
        return examples, None
    source = sources["calibration"]
    calibration = draw_calibration(source.location, source.table_split, seed(args),
                                   args.calibration_samples, checkpoint.tokenizer,
                                   args.max_length, examples.texts(),
                                   args.validation_samples if args.min_agreement else 0,
                                   Columns(examples.columns["text"], examples.columns["pair"]),
                                   None if looks_local(source.location) else args.dataset_config,
                                   distillation_rows(args))
    if args.min_agreement:  # the slice actually drawn may be smaller than asked
        fidelity.check_slice(args.min_agreement, len(calibration.validation_indices), drawn=True)
    return examples, calibration


def distillation_rows(args: Settings) -> int:
    """Training rows --distill-steps trains on: one batch per step, none reused when there are
    enough."""
    steps = args.distill_steps if args.min_agreement else 0
    return steps * distillation.BATCH


@dataclass
class Plan:
    """What a run works on, resolved and loaded before anything is built."""
    cache: BuildCache
    candidates: list
    backends_note: str
    device: str  # the run's accelerator: cuda, groqchip or cpu (the reference is always the CPU)
    fallback: list  # --device auto on a GPU: the CPU's builds, should every GPU build fail
    calibrate: bool
    flag_notes: list
    sources: dict
    checkpoint: Checkpoint
    examples: Examples
    calibration: Calibration | None
    manifest: dict | None  # --execute: what --build made, read from the cache


def resolve_plan(spec: ProofPoint, args: Settings) -> Plan:
    """Flags checked, candidates listed, inputs resolved and loaded: everything a user can get
    wrong fails here, before any build (each stage boundary also ends a discarded Ctrl-C)."""
    executing = args.stage == "execute"
    check_stage(args)
    for flag, path in (("--json", args.json), ("--mismatches", args.mismatches)):
        if path:
            check_writable_target(path, flag)
    cache = BuildCache(args.cache_dir, args.rebuild, stage=args.stage)
    quantization = args.quantization if spec.quantize else None
    offer = candidates_for(args.backend, args.device, quantization, args.precision,
                           building=args.stage == "build")
    candidates, backends_note = offer.candidates, offer.note
    fallback = offer.fallback if args.stage == "both" else []  # --build, --execute: no stand-in
    calibrate = spec.quantize and args.quantization == "static"
    candidates = with_accuracy_control(candidates, args.min_agreement,
                                       quantization, args.validation_samples)
    flag_notes = check_flags(args, candidates, calibrate)
    interrupt.check()
    sources = resolve_sources(spec, args, calibrate and not executing)
    checkpoint = load_checkpoint(sources["model"].location)
    interrupt.check()
    manifest = None
    if executing:  # what --build made: its calibration samples' identity, its host and versions
        manifest = handoff.read_manifest(cache, spec.name, checkpoint.identity,
                                         sources["model"].location,
                                         handoff.command_as(args.command, "--build"))
        flag_notes += handoff.check(manifest, versions_of(candidates))
    examples, calibration = load_data(args, sources, checkpoint, calibrate and not executing)
    if executing and calibrate:
        calibration = handoff.recorded_calibration(manifest, args.max_length)
    interrupt.check()
    if args.rebuild != "never":
        cache.ensure_writable()
    return Plan(cache, candidates, backends_note, offer.device, fallback, calibrate, flag_notes,
                sources, checkpoint, examples, calibration, manifest)


def check_stage(args: Settings) -> None:
    """--build makes no results; --execute makes no builds."""
    if args.stage == "build" and (args.json or args.mismatches):
        raise UserError("--build evaluates nothing and writes no results: drop --json and "
                        "--mismatches (they are --execute's)")
    if args.stage == "execute" and args.rebuild == "always":
        raise UserError("--execute never builds: drop --rebuild always")


def announce(spec: ProofPoint, args: Settings, plan: Plan) -> None:
    """The line naming the inputs, the columns read and the candidate builds."""
    examples = plan.examples
    columns = ", ".join(f"{what} '{name}'" for what, name in examples.columns.items() if name)
    print(f"{spec.name}: {plan.sources['model'].location} on {plan.sources['dataset'].location} "
          f"({len(examples.sentences)} {'pairs' if examples.pairs else 'sentences'}; {columns})"
          + (f", calibration seed {seed(args)}" if plan.calibrate else "") + "; builds: "
          f"{', '.join(map(str, plan.candidates))}"
          + (f" ({plan.backends_note})" if plan.backends_note else ""), file=sys.stderr)


class Builds:
    """The run's batches, and each candidate's build on them with the user's options."""

    def __init__(self, spec: ProofPoint, args: Settings, plan: Plan):
        self.spec, self.args, self.plan = spec, args, plan
        examples = plan.examples
        self.encoded = tokenize(plan.checkpoint.tokenizer, examples.sentences, args.max_length,
                                examples.pairs)
        self.batches = make_batches(self.encoded, args.batch_size)
        self.static_batches = make_batches(self.encoded, args.batch_size, static_shape=True) \
            if any(self.static(c) for c in plan.candidates) else None

    @staticmethod
    def static(candidate: Candidate) -> bool:
        return backend_module(candidate.backend).STATIC_SHAPE

    def batches_for(self, candidate: Candidate):
        return self.static_batches if self.static(candidate) else self.batches

    def build(self, candidate: Candidate) -> Runner:
        return backend_module(candidate.backend).build(
            self.plan.checkpoint, self.batches_for(candidate).inputs[0],
            options=build_options(candidate, self.args, self.spec), cache=self.plan.cache,
            calibration=self.plan.calibration)

    def recipe_of(self, candidate: Candidate) -> dict:
        options = build_options(candidate, self.args, self.spec)
        return {"options": asdict(options),
                "recipe": backend_module(candidate.backend).build_recipe(options)}


def decide(args: Settings, plan: Plan, builds: Builds, reference) -> Choice:
    """The build that runs: forced by the flags, or the trial's (cached) choice."""
    forced = forced_by(args)
    min_agreement = args.min_agreement
    examples = plan.examples
    context = {"model": plan.checkpoint.identity, "batch_size": args.batch_size,
               "max_length": args.max_length,
               "data": {**examples.identity, "samples": len(examples.sentences)},
               "calibration": plan.calibration.cache_parts() if plan.calibration else None,
               **fidelity.rule_in_key(min_agreement)}
    if plan.manifest is not None:  # a later --build that makes more of them means a new trial
        context["built"] = sorted(plan.manifest["builds"])
    compared = compared_floats(plan.candidates, plan.device, bool(forced))
    if any(c.device == "cuda" for c in [*plan.candidates, *compared]):
        context["gpu"] = gpu.gpu_info()  # what a GPU build's speed was measured on
    described = f"{len(examples.sentences)} sentences of {plan.sources['dataset'].location}"
    why_single = f"as {forced} asks" if forced else "the only build offered here"
    try:
        return choose(plan.candidates, builds.build, reference, builds.batches, plan.cache,
                      context, compared=compared, recipe_of=builds.recipe_of,
                      min_agreement=min_agreement, described=described, why_single=why_single)
    except (NoBuildLeft, BuildFailed) as exc:
        if not plan.fallback:
            raise
        print(f"{exc}; the CPU's builds instead: {', '.join(map(str, plan.fallback))}",
              file=sys.stderr)
    return choose(plan.fallback, builds.build, reference, builds.batches, plan.cache, context,
                  recipe_of=builds.recipe_of, min_agreement=min_agreement, described=described,
                  why_single="the only CPU build offered here, every GPU build having failed")


def notes_for(spec: ProofPoint, args: Settings, plan: Plan, choice: Choice,
              built: dict) -> list[str]:
    """The lines under the table beyond the timing and the CPU."""
    notes = [f"labels: {plan.examples.labels_rule}"] if plan.examples.labels_rule else []
    notes += plan.flag_notes
    if choice.runner.facts.get("accuracy_control"):
        notes.append(fidelity.summary(choice.runner.facts["accuracy_control"]))
    if not spec.quantize and choice.runner.device == "cpu" and built["speedup"]["median"] < 1.0:
        notes.append(slower_than_reference(choice, built, args, plan.cache,
                                           plan.checkpoint.identity))
    if choice.record.get("float_as_fast"):
        notes.append(float_as_fast_line(choice.record["float_as_fast"]))
    return notes


def results_document(args: Settings, plan: Plan, provenance: dict, choice: Choice,
                     timed: dict, notes: list, runs: list) -> dict:
    """The results JSON (docs/json.md)."""
    examples, calibration = plan.examples, plan.calibration
    document = {"schema_version": RESULTS_SCHEMA_VERSION, **provenance, "model": args.model,
                "dataset": args.dataset,
                "split": plan.sources["dataset"].split, "samples": len(examples.sentences),
                "labels": examples.labels_rule or "class ids as in the file",
                "num_labels": plan.checkpoint.labels.count, "columns": examples.columns,
                "seed": seed(args) if plan.calibrate else None,
                "batch_size": args.batch_size, "max_length": args.max_length,
                "sources": {what: source.record() for what, source in plan.sources.items()},
                "inputs": {"weights_sha256": plan.checkpoint.digest,
                           "model_identity": plan.checkpoint.identity,
                           "dataset": examples.identity},
                "choice": choice.record, "timing": timed, "notes": notes,
                "environment": environment(versions_of(plan.candidates)), "runs": runs}
    if calibration is not None:
        document["calibration"] = {**calibration.record(), "count": len(calibration.indices),
                                   "requested": calibration.requested,
                                   "overlap_with_evaluation_checked": True}
    return document


def build_stage(spec: ProofPoint, args: Settings, plan: Plan, builds: Builds) -> dict:
    """--build: every build the flags leave, and the float builds an INT8 trial times beside
    them, made or found; a manifest of them beside them; nothing evaluated, no results."""
    compared = compared_floats(plan.candidates, plan.device, bool(forced_by(args)))
    built = {}
    for candidate in [*plan.candidates, *compared]:
        try:
            built[candidate] = builds.build(candidate)
        except (BuildFailed, BuildTooSlow) as exc:  # --execute then runs the others
            print(f"{candidate}: not built ({exc})", file=sys.stderr)
        interrupt.check()
    if not any(c in built for c in plan.candidates):
        raise UserError("--build: no build could be made (see above)")
    versions = versions_of(list(built))
    path = handoff.write_manifest(plan.cache, spec.name, args.command, plan.checkpoint.identity,
                                  built, versions, plan.calibration)
    print(handoff.report(plan.cache, path, versions, plan.device,
                         handoff.command_as(args.command, "--execute")))
    return {"manifest": str(path), "built": [str(c) for c in built]}


def run(spec: ProofPoint, args: Settings) -> dict:
    """Resolve, build, measure, report."""
    provenance = started(args.command)
    plan = resolve_plan(spec, args)
    announce(spec, args, plan)
    builds = Builds(spec, args, plan)
    if args.stage == "build":
        return build_stage(spec, args, plan, builds)
    reference = evaluate(reference_runner(plan.checkpoint.model), builds.batches)
    choice = decide(args, plan, builds, reference)
    interrupt.check()
    print(choice.banner(), file=sys.stderr)
    result = evaluate(choice.runner, builds.batches_for(choice.candidate))
    timings, timed = time_both(reference, result, builds.encoded, args.batch_size, args.repeats,
                               builds.static(choice.candidate))
    interrupt.check()
    labels = plan.examples.labels
    runs = [run_metrics(reference, timings[0], labels, "reference"),
            run_metrics(result, timings[1], labels, "built", reference, timings[0])]
    notes = notes_for(spec, args, plan, choice, runs[1])
    executed = None
    if plan.manifest is not None:
        executed = handoff.executed(plan.cache, plan.manifest, choice.runner, reference.runner,
                                    plan.calibration, args.min_agreement)
        notes += handoff.said(executed, choice.runner)
    document = results_document(args, plan, provenance, choice, timed, notes, runs)
    if executed is not None:
        document["build"] = executed
    interrupt.check()  # the last moment: after it the table and the files are written, all of them
    interrupt.hold_to_the_end()  # and the runtimes freed as this function returns
    print(format_table(runs))
    print(format_notes(document))
    if args.json:
        write_json(args.json, document)
    if args.mismatches:
        write_mismatches(args.mismatches, plan.examples, reference, result)
    return document
