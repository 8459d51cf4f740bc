"""Throughput of every runner against PyTorch eager, in one run, on SST-2-shaped sentences.

BERT-tiny and BERT-base shapes with random weights (speed does not depend on the weights), batches
cut exactly as the proof points cut them. Prints sentences/s, the ratio to PyTorch eager, and the
achieved GFLOP/s as a share of this machine's fp32 SGEMM rate measured in the same run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.backends import onnxruntime as ort_backend  # noqa: E402
from common.backends.base import BuildOptions, Calibration  # noqa: E402
from common.backends.torch_ref import reference_runner  # noqa: E402
from common.batching import Encoded, make_batches  # noqa: E402
from common.cache import BuildCache  # noqa: E402
from common.checkpoints import Checkpoint, weights_digest  # noqa: E402
from common.files import write_atomic  # noqa: E402

SHARED = ROOT.parent / "shared"
SHAPES = {"tiny": dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=2, intermediate_size=512),
          "base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072)}
RUNNERS = ("pytorch-eager", "ort-fp32", "ort-fp32-optimized", "ort-fp32-fused", "ort-int8-static",
           "ort-int8-dynamic")
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
        rows = load_examples(str(train), split="train").sentences
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


def sgemm_gflops(n: int = 2048, repeats: int = 10) -> float:
    """Best of several large fp32 matrix multiplies on all cores: this machine's fp32 ceiling."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def build_runners(shape: str, checkpoint: Checkpoint, batches, calibration: Encoded, folder: Path,
                  only: set[str]) -> dict:
    """pytorch-eager: the reference. ort-fp32: the export run as stored (no graph optimisation).
    ort-fp32-optimized, ort-int8-*: what the proof points build. ort-fp32-fused: ORT's offline
    BERT fusions of the export (what the default would be if the fusions paid here)."""
    runners = {}
    if "pytorch-eager" in only:
        runners["pytorch-eager"] = reference_runner(checkpoint.model)
    exported = folder / f"{shape}-exported.onnx"
    ort_backend.export_onnx(checkpoint.model, batches.inputs[0], exported)
    if "ort-fp32" in only:
        runners["ort-fp32"] = ort_backend.make_session(exported, optimize=False)
    if "ort-fp32-fused" in only:
        fused = folder / f"{shape}-fused.onnx"
        ort_backend.fuse_bert(exported, fused, checkpoint.model.config, BuildOptions())
        runners["ort-fp32-fused"] = ort_backend.make_session(fused)
    cache = BuildCache(folder / "cache")
    calib = Calibration(source="benchmark", seed=0, indices=np.arange(len(calibration)),
                        encoded=calibration, requested=len(calibration))
    for name, options in (("ort-fp32-optimized", BuildOptions()),
                          ("ort-int8-static", BuildOptions(precision="int8", quantization="static")),
                          ("ort-int8-dynamic", BuildOptions(precision="int8", quantization="dynamic"))):
        if name in only:
            runners[name] = ort_backend.build(checkpoint, batches.inputs[0], options=options,
                                              cache=cache, calibration=calib)
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


def measure(runners: dict, batches, rounds: int) -> dict[str, float]:
    """Best pass time per runner; runners take turns each round so drift hits them alike."""
    for run in runners.values():
        run(batches.inputs[0])
    best = {name: float("inf") for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            for batch in batches.inputs:
                run(batch)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--models", default="tiny,base", help="comma-separated: tiny, base")
    p.add_argument("--runners", default=",".join(RUNNERS), help="comma-separated subset of " + ", ".join(RUNNERS))
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3, help="timed passes per runner (best one counts)")
    p.add_argument("--profile", action="store_true",
                   help="also print ONNX Runtime's time per operator type (fp32 graphs)")
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    evaluation, calibration, source = sentences(128, seed=0)
    batches = make_batches(evaluation, args.batch_size)
    sgemm = sgemm_gflops()
    print(f"sentences: {len(evaluation)} ({source}), batch size {args.batch_size}, "
          f"{os.cpu_count()} threads; fp32 SGEMM 2048^3: {sgemm:.1f} GFLOP/s")
    rows, profiles = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.models.split(","):
            checkpoint = random_checkpoint(shape)
            runners = build_runners(shape, checkpoint, batches, calibration, Path(tmp),
                                    set(args.runners.split(",")))
            seconds = measure(runners, batches, args.rounds)
            flops = encoder_flops(checkpoint.model.config, batches)
            if args.profile:
                for graph in ("exported", "fused"):
                    path = Path(tmp) / f"{shape}-{graph}.onnx"
                    if path.exists():
                        profiles[f"{shape} {graph}"] = profile_ops(path, batches, Path(tmp))
            eager = seconds.get("pytorch-eager")
            for name, s in seconds.items():
                rows.append({"model": shape, "runner": name, "throughput": len(evaluation) / s,
                             "ratio_to_eager": eager / s if eager else None,
                             "gflops": flops / s / 1e9, "sgemm_share": flops / s / 1e9 / sgemm,
                             "seconds": s})
    print(f"{'model':<6}{'runner':<20}{'sent/s':>10}{'x eager':>9}{'GFLOP/s':>10}{'% SGEMM':>9}")
    for r in rows:
        ratio = f"{r['ratio_to_eager']:.2f}" if r["ratio_to_eager"] else "-"
        print(f"{r['model']:<6}{r['runner']:<20}{r['throughput']:>10.1f}{ratio:>9}"
              f"{r['gflops']:>10.1f}{100 * r['sgemm_share']:>8.1f}%")
    for shape, shares in profiles.items():
        top = ", ".join(f"{op} {100 * share:.1f}%" for op, share in list(shares.items())[:6])
        print(f"profile {shape} graph, kernel time: {top}")
    if args.json:
        write_atomic(Path(args.json), json.dumps({
            "sgemm_gflops": sgemm, "rows": rows, "sentences": source, "batch_size": args.batch_size,
            "rounds": args.rounds, "op_time_shares": profiles, "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "versions": ort_backend.library_versions()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
