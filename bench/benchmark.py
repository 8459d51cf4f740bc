"""Every runner against PyTorch eager, in one run: speed and, on a real checkpoint, accuracy and
agreement.

Default: BERT-tiny and BERT-base shapes with random weights (speed does not depend on the weights)
on SST-2's sentences (../shared; synthetic ones with its length distribution otherwise).
`--model DIR --dataset FILE`: one real checkpoint on its data, so every runner also has its
accuracy and its agreement with eager. Every runner is built by the product's backends
(`backend.build`; the two measured alternatives to ONNX Runtime's default, its graph unoptimised and
its offline BERT fusions, are recipe overrides), timed with `evaluate.measure` (the runners take
turns each round) and scored with `evaluate.run_metrics`. Also this machine's matrix-multiply rate
per precision (fp32, bf16, int8; on a GPU host the GPU's fp32, bf16 and fp16 too), measured in the
same run, and each runner's achieved GFLOP/s as a share of the rate at its precision on its device.
On a GPU host the `-cuda` runners build for the GPU (PyTorch-compiled, its recipe's measured
alternatives, and eager fp16 as PyTorch gives it); elsewhere they are skipped, saying so.
"""
from __future__ import annotations

import argparse
import copy
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.report import rows_table
from common.backends import onnxruntime as ort_backend
from common.backends import openvino as ov_backend
from common.backends import torch_compile as tc_backend
from common import gpu
from common.backends.base import BuildOptions, Calibration, Runner
from common.backends.torch_ref import reference_runner
from common.batching import Encoded, make_batches, tokenize
from common.cache import BuildCache
from common.calibration import draw_calibration, draw_indices
from common.checkpoints import Checkpoint, checkpoint_of, load_checkpoint
from common.cpu import usable_cpus
from common.evaluate import evaluate, measure, run_metrics
from common.export import model_input_names
from common.paths import SHARED
from common.examples import load_examples

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


def sentences(max_length: int, seed: int) -> tuple[Encoded, Encoded, str]:
    """(evaluation, calibration) token ids: SST-2's when ../shared is here, else synthetic ones
    with its length distribution (mean 25 tokens, max 55)."""
    validation, train = SHARED / "data/sst2/validation.tsv", SHARED / "data/sst2/train.tsv"
    tokenizer_dir = SHARED / "models/bert-tiny-sst2"
    if validation.is_file() and train.is_file() and tokenizer_dir.is_dir():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        evaluation = tokenize(tokenizer, load_examples(str(validation)).sentences, max_length)
        rows = load_examples(str(train)).sentences
        picked = draw_indices(len(rows), 200, seed)
        return evaluation, tokenize(tokenizer, [rows[i] for i in picked], max_length), "SST-2 validation"
    rng = np.random.default_rng(seed)

    def synthetic(count: int) -> Encoded:
        lengths = np.clip(np.rint(rng.gamma(4.0, 25 / 4.0, count)), 4, 55).astype(int)
        ids = [np.concatenate([[101], rng.integers(1000, VOCAB, n - 2), [102]]).astype(np.int64)
               for n in lengths]
        return Encoded(ids=ids, type_ids=[np.zeros_like(x) for x in ids], max_length=max_length, pad_id=0)

    return synthetic(872), synthetic(200), "synthetic (gamma lengths, mean 25, max 55)"


def random_checkpoint(shape: str) -> Checkpoint:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=VOCAB, num_labels=2, **SHAPES[shape])
    model = BertForSequenceClassification(config).eval()
    return checkpoint_of(model, None)


def encoder_flops(config, batches) -> float:
    """Multiply-adds x2 of the encoder over the padded batches as executed (pooler/head ignored)."""
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    total = 0.0
    for batch in batches.inputs:
        b, length = batch["input_ids"].shape
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
    """The model in fp16 on the GPU, eager: what PyTorch gives there without compiling; the copies
    to and from the GPU timed, as the built runners'."""
    names = model_input_names(model)
    on_gpu = copy.deepcopy(model).to(device="cuda", dtype=torch.float16).eval()

    @torch.inference_mode()
    def predict(batch):
        inputs = {name: torch.from_numpy(batch[name]).to("cuda") for name in names}
        return on_gpu(**inputs).logits.float().cpu().numpy()

    return Runner(name="pytorch-fp16-cuda", backend="pytorch", device="cuda", precision="fp16",
                  predict=predict)


def build_runners(checkpoint: Checkpoint, example, calibration: Calibration, cache: BuildCache,
                  only: set[str]) -> dict[str, Runner]:
    """pytorch-eager: the reference. The rest through the backends' own build."""
    runners = {}
    if "pytorch-eager" in only:
        runners["pytorch-eager"] = reference_runner(checkpoint.model)
    if "pytorch-bf16" in only:
        runners["pytorch-bf16"] = pytorch_bf16(checkpoint.model)
    no_gpu = gpu.cuda_problem()
    if "pytorch-fp16-cuda" in only and not no_gpu:
        runners["pytorch-fp16-cuda"] = pytorch_fp16_cuda(checkpoint.model)
    bf16_here = any(c.precision == "bf16" for c in ov_backend.candidates("cpu", None))
    for name, (backend, options) in BUILDS.items():
        if name not in only:
            continue
        if backend is ov_backend and "bf16" in (options.precision, options.remainder) \
                and not bf16_here:
            print(f"{name}: skipped, OpenVINO compiles no bf16 on this CPU", file=sys.stderr)
            continue
        if options.device == "cuda" and no_gpu:
            print(f"{name}: skipped, {no_gpu}", file=sys.stderr)
            continue
        runners[name] = backend.build(checkpoint, example, options=options, cache=cache,
                                      calibration=calibration)
    return runners


def measured_rows(model: str, checkpoint: Checkpoint, batches, labels, calibration: Calibration,
                  cache: BuildCache, only: set[str], rounds: int, gemm: dict,
                  gpu_gemm: dict) -> list[dict]:
    """Each runner's accuracy pass (after a warm-up batch), then the runners timed in turns;
    run_metrics against pytorch-eager. Accuracy only where the labels mean something."""
    runners = build_runners(checkpoint, batches.inputs[0], calibration, cache, only)
    evaluations = {name: evaluate(runner, batches) for name, runner in runners.items()}
    timings = dict(zip(runners, measure([(r, batches, None) for r in runners.values()],
                                        batches.count, rounds)))
    flops = encoder_flops(checkpoint.model.config, batches)
    eager = "pytorch-eager" if "pytorch-eager" in runners else None
    rows = []
    for name, evaluation in evaluations.items():
        role = "reference" if name == eager else "built"
        row = run_metrics(evaluation, timings[name], labels if labels is not None else
                          np.zeros(batches.count, np.int64), role,
                          evaluations[eager] if eager and role == "built" else None,
                          timings[eager] if eager and role == "built" else None)
        seconds_per_pass = batches.count / row["throughput"]["median"]
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
    p.add_argument("--dataset", metavar="FILE", default=str(SHARED / "data/sst2/validation.tsv"),
                   help="its evaluation data (with --model)")
    p.add_argument("--calibration-dataset", metavar="FILE",
                   default=str(SHARED / "data/sst2/train.tsv"),
                   help=f"training data for the INT8 builds' {CALIBRATION_SAMPLES} samples (with --model)")
    p.add_argument("--runners", default=",".join(RUNNERS), help="comma-separated subset of " + ", ".join(RUNNERS))
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3,
                   help="timed passes per runner (the median counts; min–max shown)")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="the build cache, kept for another run (default: a temporary one)")


def run(args: argparse.Namespace) -> dict:
    only = set(args.runners.split(","))
    if args.model:
        checkpoint = load_checkpoint(args.model)
        examples = load_examples(args.dataset)
        evaluation = tokenize(checkpoint.tokenizer, examples.sentences, 128)
        calibration = draw_calibration(args.calibration_dataset, None, 0, CALIBRATION_SAMPLES,
                                       checkpoint.tokenizer, 128, examples.sentences)
        models, labels, source = [(args.model, checkpoint)], examples.labels, args.dataset
    else:
        evaluation, encoded, source = sentences(128, seed=0)
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
    print(rows_table(rows))
    return {"gemm_rates": gemm, "gpu_gemm_rates": gpu_gemm, "gpu": gpu.gpu_info(), "rows": rows,
            "sentences": source, "batch_size": args.batch_size, "rounds": args.rounds,
            "model": args.model, "threads": usable_cpus(), "platform": platform.platform(),
            "versions": {**ort_backend.library_versions(), **ov_backend.library_versions(),
                         **tc_backend.library_versions()}}
