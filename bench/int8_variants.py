"""Which INT8 recipe: accuracy and speed of quantization variants, measured in one run.

Every variant is built by the product's own backend (`backend.build` with `BuildOptions.recipe`
overriding the backend's default recipe) on a real SST-2 checkpoint (default:
../shared/models/minilm-l6-sst2), calibrated on the same seeded training samples, and compared with
its PyTorch fp32 reference on the validation set. Speed is the median of --rounds passes, each
runner taking its turn in every round. The variant the product uses is marked `default`.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Sequence

from bench.harness import Inputs, load, model_arguments
from bench.report import variants_table
from common.backends import backend_module
from common.backends.base import BuildOptions
from common.backends.torch_ref import reference_runner
from common.builds.cache import BuildCache
from common.run.cli import DEFAULT_VALIDATION_SAMPLES
from common.backends.distillation import BATCH
from common.run.evaluate import evaluate, measure, run_metrics

# (label, BuildOptions fields over static INT8); the first of each backend is its default
VARIANTS = {
    "onnxruntime": [
        ("default: every MatMul, float outputs, per-channel", {}),
        ("... MatMul outputs quantized too", {"recipe": (("float_outputs", False),)}),
        ("... attention's QK^T and PV left in float", {"recipe": (("float_activation_matmuls", True),)}),
        ("... per-tensor weights", {"recipe": (("per_channel", False),)}),
        ("... quantizing ORT's fused graph", {"recipe": (("fused_graph", True),)}),
        ("dynamic INT8 (fused graph, MatMul + Attention)", {"quantization": "dynamic"}),
    ],
    "openvino": [
        ("default: mixed preset, SmoothQuant off, fast bias correction", {}),
        ("SmoothQuant alpha 0.95 (NNCF's default)", {"recipe": (("smooth_quant_alpha", 0.95),)}),
        ("SmoothQuant alpha 0.8", {"recipe": (("smooth_quant_alpha", 0.8),)}),
        ("SmoothQuant alpha 0.5", {"recipe": (("smooth_quant_alpha", 0.5),)}),
        ("preset performance", {"recipe": (("preset", "performance"),)}),
        ("full bias correction", {"recipe": (("fast_bias_correction", False),)}),
        ("no bias correction", {"recipe": (("bias_correction", False),)}),
        ("attention (fused SDPA) in float", {"recipe": (("float_attention", True),)}),
        ("classifier and pooler in float", {"recipe": (("ignored_patterns", (".*classifier.*", ".*pooler.*")),)}),
    ],
}
# --frontier: what --min-agreement trades, between plain INT8 and the float builds
MIN_AGREEMENTS = (0.99, 0.993, 0.995)
FLOATS = {"onnxruntime": ("fp32",), "openvino": ("fp32", "bf16")}


# --distill-steps: the distilled model kept at any agreement (a target every model shows), to
# measure it on the evaluated sentences whether or not it reaches the slice's target
ANY_AGREEMENT = 0.01


def frontier(backend: str, targets: Sequence[float], distill_steps: int = 0
             ) -> list[tuple[str, dict]]:
    distilled = [] if not distill_steps else (
        [(f"distilled, {distill_steps} steps (kept at any agreement)",
          {"min_agreement": ANY_AGREEMENT, "distill_steps": distill_steps})]
        + [(f"--min-agreement {a} --distill-steps {distill_steps}",
            {"min_agreement": a, "distill_steps": distill_steps}) for a in targets])
    return ([(f"{p} (no INT8)", {"precision": p}) for p in FLOATS[backend]]
            + [("plain INT8 (the default)", {})]
            + [(f"--min-agreement {a}", {"min_agreement": a}) for a in targets] + distilled)


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=tuple(VARIANTS), default="openvino")
    model_arguments(p)
    p.add_argument("--remainder", choices=("fp32", "bf16"), default="fp32",
                   help="OpenVINO: the precision INT8 leaves the rest in")
    p.add_argument("--frontier", action="store_true",
                   help="--min-agreement settings against plain INT8 and the float builds, instead "
                        "of the recipes")
    p.add_argument("--min-agreements", default=",".join(map(str, MIN_AGREEMENTS)),
                   help="--frontier: the comma-separated --min-agreement settings built")
    p.add_argument("--validation-samples", type=int, default=DEFAULT_VALIDATION_SAMPLES,
                   help="--frontier: the slice --min-agreement searches on")
    p.add_argument("--distill-steps", type=int, default=0,
                   help="--frontier, OpenVINO: also the distilled model and each target with "
                        "distillation tried first (common/backends/distillation.py)")
    p.add_argument("--rounds", type=int, default=3, help="timed passes per runner (median counts)")
    p.add_argument("--only", help="comma-separated variant numbers (0 = default) to build")


def run(args: argparse.Namespace) -> dict:
    if args.backend == "onnxruntime" and args.remainder != "fp32":
        raise SystemExit("--remainder: ONNX Runtime's INT8 leaves the rest in fp32")
    inputs = load(args, args.validation_samples if args.frontier else 0,
                  args.distill_steps * BATCH)
    variants = (frontier(args.backend, [float(a) for a in args.min_agreements.split(",")],
                         args.distill_steps)
                if args.frontier else VARIANTS[args.backend])
    if args.only:
        variants = [variants[int(i)] for i in args.only.split(",")]
    table = measured(args, inputs, variants)
    print(f"\n{args.backend}, {args.model}: {len(inputs.examples.sentences)} sentences, "
          f"{len(inputs.calibration.indices)} calibration samples (seed {args.seed}), median of "
          f"{args.rounds} rounds")
    print(variants_table(table))
    return {"backend": args.backend, "model": args.model, "dataset": args.dataset,
            "calibration_samples": len(inputs.calibration.indices), "seed": args.seed,
            "validation_samples": args.validation_samples if args.frontier else None,
            "distill_steps": args.distill_steps, "rounds": args.rounds,
            "versions": backend_module(args.backend).library_versions(), "rows": table}


def measured(args: argparse.Namespace, inputs: Inputs, variants: list) -> list[dict]:
    """Each variant built through the backend and scored, then every runner timed in turns,
    against the PyTorch fp32 reference."""
    backend, batches = backend_module(args.backend), inputs.batches
    reference = reference_runner(inputs.checkpoint.model)
    rows = [("pytorch fp32 (reference)", evaluate(reference, batches), reference, None, None)]
    with tempfile.TemporaryDirectory() as tmp:
        cache = BuildCache(Path(tmp))
        for label, fields in variants:
            options = BuildOptions(**{"precision": "int8", "remainder": args.remainder, **fields})
            start = time.perf_counter()
            runner = backend.build(inputs.checkpoint, batches.inputs[0], options=options,
                                   cache=cache, calibration=inputs.calibration)
            size = sum(runner.files.values())
            rows.append((label, evaluate(runner, batches), runner, time.perf_counter() - start, size))
        timings = measure([(runner, batches, None) for _, _, runner, _, _ in rows],
                          len(inputs.examples.sentences), args.rounds)
    (_, reference_evaluation, _, _, _), reference_timing = rows[0], timings[0]
    labels = inputs.examples.labels
    base = run_metrics(reference_evaluation, reference_timing, labels, "reference")
    table = []
    for (label, evaluation, runner, build_seconds, size), timing in zip(rows, timings):
        metrics = run_metrics(evaluation, timing, labels, "built", reference_evaluation,
                              reference_timing)
        table.append({"variant": label, "accuracy": metrics["accuracy"],
                      "delta_points": 100 * (metrics["accuracy"] - base["accuracy"]),
                      "agreement": metrics["agreement"], "speedup": metrics["speedup"],
                      "build_seconds": build_seconds, "precision": runner.precision,
                      "accuracy_control": runner.facts.get("accuracy_control"),
                      "megabytes": None if size is None else size / 1e6})
    return table
