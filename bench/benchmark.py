"""Throughput of every runner against PyTorch eager, in one run, on SST-2-shaped sentences.

BERT-tiny and BERT-base shapes with random weights (speed does not depend on the weights), batches
cut exactly as the proof points cut them. Prints sentences/s (median of the rounds, with min–max),
the ratio to PyTorch eager, and the achieved GFLOP/s as a share of this machine's matrix-multiply
rate at the runner's precision (fp32, bf16, int8), measured in the same run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.backends import onnxruntime as ort_backend  # noqa: E402
from common.backends import openvino as ov_backend  # noqa: E402
from common.backends.base import BuildOptions, Calibration, Runner  # noqa: E402
from common.backends.torch_ref import reference_runner  # noqa: E402
from common.batching import Encoded, make_batches  # noqa: E402
from common.cache import BuildCache  # noqa: E402
from common.checkpoints import Checkpoint, weights_digest  # noqa: E402
from common.cpu import cpu_info, cpu_summary  # noqa: E402
from common.evaluate import measure  # noqa: E402
from common.export import export_onnx  # noqa: E402
from common.files import write_atomic  # noqa: E402

SHARED = ROOT.parent / "shared"
SHAPES = {"tiny": dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=2, intermediate_size=512),
          "base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072)}
RUNNERS = ("pytorch-eager", "pytorch-bf16", "ort-fp32", "ort-fp32-optimized", "ort-fp32-fused",
           "ort-int8-static", "ort-int8-dynamic", "openvino-fp32", "openvino-bf16", "openvino-int8",
           "openvino-int8+bf16")
VOCAB = 30522


def sentences(max_length: int, seed: int) -> tuple[Encoded, Encoded, str]:
    """(evaluation, calibration) token ids: SST-2's when ../shared is here, else synthetic ones
    with its length distribution (mean 25 tokens, max 55)."""
    validation, train = SHARED / "data/sst2/validation.tsv", SHARED / "data/sst2/train.tsv"
    tokenizer_dir = SHARED / "models/bert-tiny-sst2"
    if validation.is_file() and train.is_file() and tokenizer_dir.is_dir():
        from transformers import AutoTokenizer

        from common.batching import tokenize
        from common.calibration import draw_indices
        from common.sst2 import load_examples

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
    return Checkpoint(model=model, tokenizer=None, digest=weights_digest(model))


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


def row_precision(runner: str) -> str:
    return "int8" if "int8" in runner else "bf16" if "bf16" in runner else "fp32"


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _plain(name: str, predict) -> Runner:
    return Runner(name=name, backend="bench", device="cpu", precision=row_precision(name),
                  predict=predict)


def pytorch_bf16(model: torch.nn.Module) -> Runner:
    """The reference under CPU autocast to bf16: what PyTorch itself gets from the matrix engines."""
    fp32 = reference_runner(model)

    def predict(batch):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return fp32(batch).astype(np.float32)

    return _plain("pytorch-bf16", predict)


def build_runners(shape: str, checkpoint: Checkpoint, batches, calibration: Encoded, folder: Path,
                  only: set[str]) -> dict[str, Runner]:
    """pytorch-eager: the reference. ort-fp32: the export run as stored (no graph optimisation).
    ort-fp32-optimized, ort-int8-*, openvino-*: what the proof points build. ort-fp32-fused: ORT's
    offline BERT fusions of the export (what the default would be if the fusions paid here)."""
    runners = {}
    if "pytorch-eager" in only:
        runners["pytorch-eager"] = reference_runner(checkpoint.model)
    if "pytorch-bf16" in only:
        runners["pytorch-bf16"] = pytorch_bf16(checkpoint.model)
    exported = folder / f"{shape}-exported.onnx"
    export_onnx(checkpoint.model, batches.inputs[0], exported)
    if "ort-fp32" in only:
        runners["ort-fp32"] = _plain("ort-fp32", ort_backend.make_session(exported, optimize=False)[0])
    if "ort-fp32-fused" in only:
        fused = folder / f"{shape}-fused.onnx"
        ort_backend.fuse_bert(exported, fused, checkpoint.model.config, BuildOptions())
        runners["ort-fp32-fused"] = _plain("ort-fp32-fused", ort_backend.make_session(fused)[0])
    cache = BuildCache(folder / "cache")
    calib = Calibration(source="benchmark", seed=0, indices=np.arange(len(calibration)),
                        encoded=calibration, requested=len(calibration))
    for name, backend, options in (
            ("ort-fp32-optimized", ort_backend, BuildOptions()),
            ("ort-int8-static", ort_backend, BuildOptions(precision="int8", quantization="static")),
            ("ort-int8-dynamic", ort_backend, BuildOptions(precision="int8", quantization="dynamic")),
            ("openvino-fp32", ov_backend, BuildOptions(precision="fp32")),
            ("openvino-bf16", ov_backend, BuildOptions(precision="bf16")),
            ("openvino-int8", ov_backend, BuildOptions(precision="int8")),
            ("openvino-int8+bf16", ov_backend, BuildOptions(precision="int8", remainder="bf16"))):
        if name not in only:
            continue
        wants_bf16 = "bf16" in (options.precision, options.remainder)
        if wants_bf16 and not any(c.precision == "bf16" for c in ov_backend.candidates("cpu", None)):
            print(f"{name}: skipped, this CPU has no bf16", file=sys.stderr)
            continue
        runners[name] = backend.build(checkpoint, batches.inputs[0], options=options, cache=cache,
                                      calibration=calib)
    return runners


def profile_ops(model_path: Path, batches, folder: Path) -> dict[str, float]:
    """Share of ONNX Runtime's kernel time per operator type, graph optimised at load."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = os.cpu_count() or 1
    so.enable_profiling = True
    so.profile_file_prefix = str(folder / f"profile-{model_path.stem}")
    session = ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])
    for batch in batches.inputs:
        session.run(None, batch)
    events = json.loads(Path(session.end_profiling()).read_text())
    totals: dict[str, float] = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op = event["args"]["op_name"]
            totals[op] = totals.get(op, 0.0) + event["dur"]
    whole = sum(totals.values())
    return {op: t / whole for op, t in sorted(totals.items(), key=lambda kv: -kv[1])}


def pass_seconds(runners: dict[str, Runner], batches, rounds: int) -> dict[str, list[float]]:
    """Seconds of every pass per runner, after one untimed pass (OpenVINO compiles per input
    shape on first sight); the runners take turns each round (evaluate.measure)."""
    for runner in runners.values():
        runner.run_all(batches.inputs)
    timings = measure([(runner, batches, None) for runner in runners.values()], batches.count,
                      rounds)
    return {name: timing.round_seconds for name, timing in zip(runners, timings)}


def rows_table(rows: list[dict]) -> str:
    """Markdown, as the README shows it."""
    lines = ["| model | runner | sentences/s (min–max) | × eager (min–max) | GFLOP/s "
             "| share of the GEMM rate at its precision |", "|---|---|---|---|---|---|"]
    for r in rows:
        ratio = (f"{r['ratio_to_eager']:.2f} ({r['ratio_range'][0]:.2f}–{r['ratio_range'][1]:.2f})"
                 if r["ratio_to_eager"] else "-")
        share = f"{100 * r['gemm_share']:.0f}% of {r['precision']}" if r["gemm_share"] else "-"
        lines.append(f"| {r['model']} | {r['runner']} | {r['throughput']:.0f} "
                     f"({r['throughput_range'][0]:.0f}–{r['throughput_range'][1]:.0f}) | {ratio} "
                     f"| {r['gflops']:.0f} | {share} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--models", default="tiny,base", help="comma-separated: tiny, base")
    p.add_argument("--runners", default=",".join(RUNNERS), help="comma-separated subset of " + ", ".join(RUNNERS))
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3,
                   help="timed passes per runner (the median counts; min–max shown)")
    p.add_argument("--profile", action="store_true",
                   help="also print ONNX Runtime's time per operator type (fp32 graphs)")
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    evaluation, calibration, source = sentences(128, seed=0)
    batches = make_batches(evaluation, args.batch_size)
    gemm = gemm_rates()
    rates = ", ".join(f"{p} {r:.0f}" if r else f"{p} -" for p, r in gemm.items())
    print(f"sentences: {len(evaluation)} ({source}), batch size {args.batch_size}, "
          f"{args.rounds} rounds; GEMM 2048^3 (GFLOP/s, GOP/s for int8): {rates}\n{cpu_summary()}")
    rows, profiles = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.models.split(","):
            checkpoint = random_checkpoint(shape)
            runners = build_runners(shape, checkpoint, batches, calibration, Path(tmp),
                                    set(args.runners.split(",")))
            seconds = pass_seconds(runners, batches, args.rounds)
            flops = encoder_flops(checkpoint.model.config, batches)
            if args.profile:
                for graph in ("exported", "fused"):
                    path = Path(tmp) / f"{shape}-{graph}.onnx"
                    if path.exists():
                        profiles[f"{shape} {graph}"] = profile_ops(path, batches, Path(tmp))
            eager = seconds.get("pytorch-eager")
            for name, passes in seconds.items():
                median = statistics.median(passes)
                ceiling = gemm[row_precision(name)]
                ratios = [e / s for e, s in zip(eager, passes)] if eager else []
                rows.append({"model": shape, "runner": name, "precision": row_precision(name),
                             "throughput": len(evaluation) / median,
                             "throughput_range": [len(evaluation) / max(passes),
                                                  len(evaluation) / min(passes)],
                             "ratio_to_eager": statistics.median(ratios) if ratios else None,
                             "ratio_range": [min(ratios), max(ratios)] if ratios else None,
                             "gflops": flops / median / 1e9,
                             "gemm_share": flops / median / 1e9 / ceiling if ceiling else None,
                             "seconds": passes})
    print(rows_table(rows))
    for shape, shares in profiles.items():
        top = ", ".join(f"{op} {100 * share:.1f}%" for op, share in list(shares.items())[:6])
        print(f"profile {shape} graph, kernel time: {top}")
    if args.json:
        write_atomic(Path(args.json), json.dumps({
            "gemm_rates": gemm, "rows": rows, "sentences": source, "batch_size": args.batch_size,
            "rounds": args.rounds, "op_time_shares": profiles, "cpu": cpu_info(),
            "platform": platform.platform(),
            "versions": {**ort_backend.library_versions(), **ov_backend.library_versions()}},
            indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
