"""Every runner against PyTorch eager, in one run: speed and, on a real checkpoint, accuracy and
agreement.

Default: BERT-tiny and BERT-base shapes with random weights (speed does not depend on the weights)
on the bundled SST-2's sentences (its validation split; 200 training rows for INT8 calibration).
`--model DIR --dataset FILE`: one real checkpoint on its data, so every runner also has its
accuracy and its agreement with eager. Every runner is built by the product's backends
(`backend.build`; the two measured alternatives to ONNX Runtime's default, its graph unoptimised and
its offline BERT fusions, are recipe overrides), timed with `evaluate.measure` (the runners take
turns each round) and scored with `evaluate.run_metrics`. Also this machine's matrix-multiply rate
per precision (fp32, bf16, int8; on a GPU host the GPU's fp32, bf16 and fp16 too), measured in the
same run, and each runner's achieved GFLOP/s as a share of the rate at its precision on its device.
On a GPU host the `-cuda` runners build for the GPU (PyTorch-compiled, its recipe's measured
alternatives, and eager fp16 as PyTorch gives it); elsewhere they are skipped, saying so, as is a
runner whose backend is not installed (a PyTorch GPU image has no OpenVINO).
"""
from __future__ import annotations

import argparse
import copy
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from bench.report import rows_table
from common.backends import onnxruntime as ort_backend
from common.backends import openvino as ov_backend
from common.backends import torch_compile as tc_backend
from common.host import gpu
from common.backends.base import BuildOptions, Runner
from common.inputs.calibration import Calibration
from common.backends.torch_ref import reference_runner
from common.inputs.batching import Encoded, make_batches, tokenize
from common.builds.cache import BuildCache
from common.inputs.calibration import draw_calibration, draw_indices
from common.inputs.checkpoints import Checkpoint, checkpoint_of, load_checkpoint
from common.host.cpu import usable_cpus
from common.run.evaluate import evaluate, measure, run_metrics
from common.backends.export import model_input_names
from common.host.paths import ROOT
from common.inputs.examples import load_examples

SHAPES = {"tiny": dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=2, intermediate_size=512),
          "base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072)}
FFN = ("feed-forward output", "feed-forward input")
FFN_SCORES = (*FFN, "attention scores")
# name -> (backend, build options): what the proof points build, and two measured alternatives
BUILDS = {
    "ort-fp32": (ort_backend, BuildOptions(recipe=(("optimize_session", False),))),
    "ort-fp32-optimized": (ort_backend, BuildOptions()),
    "ort-fp32-fused": (ort_backend, BuildOptions(recipe=(("fuse_fp32", True),))),
    "ort-int8-static": (ort_backend, BuildOptions(precision="int8", quantization="static")),
    "ort-int8-dynamic": (ort_backend, BuildOptions(precision="int8", quantization="dynamic")),
    "openvino-fp32": (ov_backend, BuildOptions(precision="fp32")),
    "openvino-bf16": (ov_backend, BuildOptions(precision="bf16")),
    "openvino-int8": (ov_backend, BuildOptions(precision="int8")),
    "openvino-int8+bf16": (ov_backend, BuildOptions(precision="int8", remainder="bf16")),
    # what --min-agreement kept in float on MiniLM (frontier-*.json), fixed
    "openvino-int8+bf16-ffn-out-float": (ov_backend, BuildOptions(
        precision="int8", remainder="bf16", recipe=(("float_kinds", FFN[:1]),))),
    "openvino-int8+bf16-ffn-float": (ov_backend, BuildOptions(
        precision="int8", remainder="bf16", recipe=(("float_kinds", FFN),))),
    "openvino-int8+bf16-ffn-scores-float": (ov_backend, BuildOptions(
        precision="int8", remainder="bf16", recipe=(("float_kinds", FFN_SCORES),))),
    "ort-int8-static-ffn-float": (ort_backend, BuildOptions(
        precision="int8", quantization="static", recipe=(("float_kinds", FFN),))),
    "torch_compile-fp32": (tc_backend, BuildOptions(precision="fp32")),
    "torch_compile-bf16": (tc_backend, BuildOptions(precision="bf16")),
    # on a GPU: what auto trials there, and the measured alternatives to its recipe
    "torch_compile-fp16-cuda": (tc_backend, BuildOptions(precision="fp16", device="cuda")),
    "torch_compile-bf16-cuda": (tc_backend, BuildOptions(precision="bf16", device="cuda")),
    "torch_compile-fp16-cuda-static": (tc_backend, BuildOptions(
        precision="fp16", device="cuda", recipe=(("dynamic", False),))),
    "torch_compile-fp16-cuda-no-graphs": (tc_backend, BuildOptions(
        precision="fp16", device="cuda", recipe=(("cuda_graphs", False),))),
    "torch_compile-fp16-cuda-unbucketed": (tc_backend, BuildOptions(
        precision="fp16", device="cuda", recipe=(("length_bucket", 1),))),
}
RUNNERS = ("pytorch-eager", "pytorch-bf16", "pytorch-fp16-cuda", *BUILDS)
VOCAB = 30522
CALIBRATION_SAMPLES = 1000


def sentences(max_length: int, seed: int, limit: Optional[int]) -> tuple[Encoded, Encoded, str]:
    """(evaluation, calibration) token ids of the bundled SST-2 (the first `limit` validation
    sentences, where given), tokenized by the bundled BERT-tiny's tokenizer (BERT's vocabulary)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(ROOT / "models/bert-tiny-sst2")
    validation = load_examples(str(ROOT / "data/sst2/validation.tsv")).sentences[:limit]
    rows = load_examples(str(ROOT / "data/sst2/train.tsv.xz")).sentences
    picked = draw_indices(len(rows), 200, seed)
    return (tokenize(tokenizer, validation, max_length),
            tokenize(tokenizer, [rows[i] for i in picked], max_length),
            f"SST-2 validation (bundled{f', first {limit}' if limit else ''})")


def random_checkpoint(shape: str) -> Checkpoint:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=VOCAB, num_labels=2, **SHAPES[shape])
    model = BertForSequenceClassification(config).eval()
    return checkpoint_of(model, None)


def encoder_flops(config, batches, bucket: int = 1, max_length: int = 128) -> float:
    """Multiply-adds x2 of the encoder over the batches at the widths that ran: each padded to
    a multiple of `bucket` tokens (at most max_length), as a bucketing build runs it (pooler and
    head ignored)."""
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    total = 0.0
    for batch in batches.inputs:
        b, width = batch["input_ids"].shape
        length = min(max(max_length, width), -(-width // bucket) * bucket)
        per_layer = 2 * length * (4 * h * h + 2 * h * i) + 2 * 2 * length * length * h
        total += b * layers * per_layer
    return total


def gemm_rates(n: int = 2048, repeats: int = 10) -> dict[str, float | None]:
    """Best of several large matrix multiplies on all cores per precision (torch): this machine's
    ceilings in GFLOP/s (GOP/s for int8). None where torch has no such kernel here."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    cases = {"fp32": lambda: torch.mm(a, b)}
    a16, b16 = a.bfloat16(), b.bfloat16()
    cases["bf16"] = lambda: torch.mm(a16, b16)
    a8 = torch.randint(-128, 127, (n, n), dtype=torch.int8)
    b8 = torch.randint(-128, 127, (n, n), dtype=torch.int8)
    cases["int8"] = lambda: torch._int_mm(a8, b8)
    rates: dict[str, float | None] = {}
    for precision, fn in cases.items():
        try:
            fn()
        except (RuntimeError, AttributeError):
            rates[precision] = None
            continue
        rates[precision] = 2 * n ** 3 / min(_timed(fn) for _ in range(repeats)) / 1e9
    return rates


def gpu_gemm_rates(n: int = 8192, repeats: int = 10) -> dict[str, float | None]:
    """The GPU's ceilings, as gemm_rates (TF32 off: fp32 is fp32), timed with the device
    synchronised; {} without a GPU."""
    if gpu.cuda_problem() is not None:
        return {}
    torch.backends.cuda.matmul.allow_tf32 = False
    rates = {}
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16),
                             ("fp16", torch.float16)):
        a, b = (torch.randn(n, n, device="cuda", dtype=dtype) for _ in range(2))

        def mm():
            torch.mm(a, b)
            torch.cuda.synchronize()

        mm()
        rates[precision] = 2 * n ** 3 / min(_timed(mm) for _ in range(repeats)) / 1e9
    return rates


def row_precision(runner: str) -> str:
    """The precision whose matrix-multiply rate bounds the runner (INT8's float remainder aside)."""
    return next((p for p in ("int8", "bf16", "fp16") if p in runner), "fp32")


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def pytorch_bf16(model: torch.nn.Module) -> Runner:
    """The reference under CPU autocast to bf16: what PyTorch itself gets from the matrix engines."""
    fp32 = reference_runner(model)

    def predict(batch):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return fp32(batch).astype(np.float32)

    return Runner(name="pytorch-bf16", backend="pytorch", device="cpu", precision="bf16",
                  predict=predict, runtime=fp32.runtime)


def pytorch_fp16_cuda(model: torch.nn.Module) -> Runner:
    """The model in fp16 on the GPU, eager: what PyTorch gives there without compiling; inputs
    staged as the compiled runners' are (pinned once, one copy a call, unpadded), the copies to
    and from the GPU timed, as theirs."""
    names = model_input_names(model)
    device = gpu.torch_device("cuda")
    on_gpu = copy.deepcopy(model).to(device=device, dtype=torch.float16).eval()
    inputs = tc_backend.StagedInputs(names, device, bucket=1, limit=128, pad_id=0)

    @torch.inference_mode()
    def predict(batch):
        tensors = inputs.on_device(inputs.host(batch))
        return on_gpu(**dict(zip(names, tensors))).logits.float().cpu().numpy()

    return Runner(name="pytorch-fp16-cuda", backend="pytorch", device="cuda", precision="fp16",
                  predict=predict)


def skipped(name: str, backend) -> Optional[str]:
    """Why this host cannot run a runner of BUILDS (None where it can)."""
    ok, why = backend.available()
    if not ok:
        return why
    options = BUILDS[name][1]
    if options.device == "cuda":
        return gpu.cuda_problem()
    if backend is ov_backend and "bf16" in (options.precision, options.remainder) and not any(
            c.precision == "bf16" for c in ov_backend.offers("cpu", None).trialled):
        return "OpenVINO compiles no bf16 on this CPU"
    return None


def build_runners(checkpoint: Checkpoint, example, calibration: Calibration, cache: BuildCache,
                  only: set[str]) -> dict[str, Runner]:
    """pytorch-eager: the reference. The rest through the backends' own build; what this host
    cannot run is skipped, saying why."""
    runners = {}
    if "pytorch-eager" in only:
        runners["pytorch-eager"] = reference_runner(checkpoint.model)
    if "pytorch-bf16" in only:
        runners["pytorch-bf16"] = pytorch_bf16(checkpoint.model)
    if "pytorch-fp16-cuda" in only:
        no_gpu = gpu.cuda_problem()
        if no_gpu:
            print(f"pytorch-fp16-cuda: skipped, {no_gpu}", file=sys.stderr)
        else:
            runners["pytorch-fp16-cuda"] = pytorch_fp16_cuda(checkpoint.model)
    for name, (backend, options) in BUILDS.items():
        if name not in only:
            continue
        why = skipped(name, backend)
        if why:
            print(f"{name}: skipped, {why}", file=sys.stderr)
            continue
        runners[name] = backend.build(checkpoint, example, options=options, cache=cache,
                                      calibration=calibration)
    return runners


def bucket_of(name: str) -> int:
    """The token multiple a runner pads its batches to (PyTorch-compiled's length bucket)."""
    if name not in BUILDS or BUILDS[name][0] is not tc_backend:
        return 1
    return tc_backend.build_recipe(BUILDS[name][1])["length_bucket"]


def measured_rows(model: str, checkpoint: Checkpoint, batches, labels, calibration: Calibration,
                  cache: BuildCache, only: set[str], rounds: int, gemm: dict,
                  gpu_gemm: dict) -> list[dict]:
    """Each runner's accuracy pass (after a warm-up batch), then the runners timed in turns;
    run_metrics against pytorch-eager. Accuracy only where the labels mean something."""
    runners = build_runners(checkpoint, batches.inputs[0], calibration, cache, only)
    evaluations = {name: evaluate(runner, batches) for name, runner in runners.items()}
    timings = dict(zip(runners, measure([(r, batches, None) for r in runners.values()],
                                        batches.count, rounds)))
    eager = "pytorch-eager" if "pytorch-eager" in runners else None
    rows = []
    for name, evaluation in evaluations.items():
        role = "reference" if name == eager else "built"
        row = run_metrics(evaluation, timings[name], labels if labels is not None else
                          np.zeros(batches.count, np.int64), role,
                          evaluations[eager] if eager and role == "built" else None,
                          timings[eager] if eager and role == "built" else None)
        seconds_per_pass = batches.count / row["throughput"]["median"]
        flops = encoder_flops(checkpoint.model.config, batches, bucket_of(name))
        ceiling = (gpu_gemm if row["device"] == "cuda" else gemm).get(row_precision(name))
        row.update(model=model, runner=name, precision=row_precision(name),
                   accuracy=row["accuracy"] if labels is not None else None,
                   gflops=flops / seconds_per_pass / 1e9,
                   gemm_share=flops / seconds_per_pass / 1e9 / ceiling if ceiling else None)
        rows.append(row)
    return rows


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", default="tiny,base",
                   help="comma-separated random-weight shapes: tiny, base (without --model)")
    p.add_argument("--model", metavar="DIR", help="a real checkpoint instead of the random shapes")
    p.add_argument("--dataset", metavar="FILE", default=str(ROOT / "data/sst2/validation.tsv"),
                   help="its evaluation data (with --model)")
    p.add_argument("--calibration-dataset", metavar="FILE",
                   default=str(ROOT / "data/sst2/train.tsv.xz"),
                   help=f"training data for the INT8 builds' {CALIBRATION_SAMPLES} samples (with --model)")
    p.add_argument("--runners", default=",".join(RUNNERS), help="comma-separated subset of " + ", ".join(RUNNERS))
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--limit", type=int, metavar="N", help="the first N sentences only")
    p.add_argument("--rounds", type=int, default=3,
                   help="timed passes per runner (the median counts; min–max shown)")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="the build cache, kept for another run (default: a temporary one)")


def run(args: argparse.Namespace) -> dict:
    only = set(args.runners.split(","))
    if args.model:
        checkpoint = load_checkpoint(args.model)
        examples = load_examples(args.dataset, limit=args.limit)
        evaluation = tokenize(checkpoint.tokenizer, examples.sentences, 128)
        calibration = draw_calibration(args.calibration_dataset, None, 0, CALIBRATION_SAMPLES,
                                       checkpoint.tokenizer, 128, examples.sentences)
        models, labels, source = [(args.model, checkpoint)], examples.labels, args.dataset
    else:
        evaluation, encoded, source = sentences(128, seed=0, limit=args.limit)
        calibration = Calibration(source="benchmark", seed=0, indices=np.arange(len(encoded)),
                                  encoded=encoded, requested=len(encoded))
        models = [(shape, random_checkpoint(shape)) for shape in args.models.split(",")]
        labels = None
    batches = make_batches(evaluation, args.batch_size)
    gemm, gpu_gemm = gemm_rates(), gpu_gemm_rates()
    rates = ", ".join(f"{p} {r:.0f}" if r else f"{p} -" for p, r in gemm.items())
    gpu_rates = ", ".join(f"{p} {r:.0f}" for p, r in gpu_gemm.items())
    print(f"sentences: {len(evaluation)} ({source}), batch size {args.batch_size}, "
          f"{args.rounds} rounds; GEMM 2048^3 (GFLOP/s, GOP/s for int8): {rates}"
          + (f"\nGPU GEMM 8192^3 (GFLOP/s): {gpu_rates}\n{gpu.gpu_summary(gpu.gpu_info())}"
             if gpu_gemm else ""))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = BuildCache(Path(args.cache_dir or tmp))
        for model, checkpoint in models:
            rows += measured_rows(model, checkpoint, batches, labels, calibration, cache, only,
                                  args.rounds, gemm, gpu_gemm)
    print(rows_table(rows) if rows else "no runner ran here")
    return {"gemm_rates": gemm, "gpu_gemm_rates": gpu_gemm, "gpu": gpu.gpu_info(), "rows": rows,
            "sentences": source, "batch_size": args.batch_size, "rounds": args.rounds,
            "model": args.model, "threads": usable_cpus(), "platform": platform.platform(),
            "versions": {**ort_backend.library_versions(), **ov_backend.library_versions(),
                         **tc_backend.library_versions()}}
