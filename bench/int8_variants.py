"""Which operators to quantize: accuracy and speed of static INT8 variants, measured in one run.

On a real SST-2 checkpoint (default: ../shared/models/minilm-l6-sst2) against its PyTorch fp32
reference on the validation set, calibrated on seeded training samples. The variant the product
uses is marked `default`. Evidence for the choice documented in the README.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.backends import onnxruntime as ort_backend  # noqa: E402
from common.backends.base import BuildOptions, Runner  # noqa: E402
from common.backends.ort_quantize import (STATIC_OPTIONS, CalibrationReader,  # noqa: E402
                                          quantize_dynamic_int8)
from common.backends.torch_ref import reference_runner  # noqa: E402
from common.batching import make_batches, tokenize  # noqa: E402
from common.calibration import draw_calibration  # noqa: E402
from common.checkpoints import load_checkpoint  # noqa: E402
from common.evaluate import evaluate  # noqa: E402
from common.sst2 import load_examples  # noqa: E402

SHARED = ROOT.parent / "shared"


def activation_matmuls(model: onnx.ModelProto) -> list[str]:
    """MatMul nodes with no weight input: attention scores and context (QK^T, PV)."""
    weights = {init.name for init in model.graph.initializer}
    return [node.name for node in model.graph.node
            if node.op_type == "MatMul" and not any(name in weights for name in node.input)]


def static(source: Path, target: Path, calibration, exclude_activation_matmuls: bool = False,
           per_channel: bool = True, float_outputs: bool = True) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    model = onnx.load(str(source))
    quantize_static(str(source), str(target),
                    CalibrationReader(calibration, {i.name for i in model.graph.input}),
                    quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=["MatMul"],
                    nodes_to_exclude=activation_matmuls(model) if exclude_activation_matmuls else [],
                    extra_options=STATIC_OPTIONS if float_outputs
                    else {"DefaultTensorType": onnx.TensorProto.FLOAT})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default=str(SHARED / "models/minilm-l6-sst2"))
    p.add_argument("--dataset", default=str(SHARED / "data/sst2/validation.tsv"))
    p.add_argument("--calibration-dataset", default=str(SHARED / "data/sst2/train.tsv"))
    p.add_argument("--calibration-samples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    checkpoint = load_checkpoint(args.model)
    examples = load_examples(args.dataset)
    batches = make_batches(tokenize(checkpoint.tokenizer, examples.sentences, 128), 32)
    calibration = draw_calibration(args.calibration_dataset, args.seed, args.calibration_samples,
                                   checkpoint.tokenizer, 128)
    reference = evaluate(reference_runner(checkpoint.model), batches)
    rows = [("pytorch fp32 (reference)", reference, 0.0, None)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        exported, fused = folder / "exported.onnx", folder / "fused.onnx"
        ort_backend.export_onnx(checkpoint.model, batches.inputs[0], exported)
        ort_backend.fuse_bert(exported, fused, checkpoint.model.config, BuildOptions())
        variants = {
            "fp32, ORT-fused graph (no INT8)": None,
            "default: all MatMuls, float outputs, per-channel": lambda t: static(exported, t, calibration),
            "... MatMul outputs quantized too": lambda t: static(exported, t, calibration, float_outputs=False),
            "... attention's QK^T and PV left in float": lambda t: static(exported, t, calibration, True),
            "... per-tensor weights": lambda t: static(exported, t, calibration, per_channel=False),
            "... on the ORT-fused graph": lambda t: static(fused, t, calibration),
            "dynamic INT8 (fused graph, MatMul + Attention)": lambda t: quantize_dynamic_int8(fused, t),
        }
        for i, (name, quantize) in enumerate(variants.items()):
            target = fused if quantize is None else folder / f"variant{i}.onnx"
            start = time.perf_counter()
            if quantize is not None:
                quantize(target)
            seconds = time.perf_counter() - start
            runner = Runner(name=name, backend="onnxruntime", device="cpu", precision="int8",
                            predict=ort_backend.make_session(target))
            rows.append((name, evaluate(runner, batches), seconds, target.stat().st_size))
    print(f"\n{args.model}: {len(examples.sentences)} sentences, {len(calibration.indices)} calibration "
          f"samples (seed {args.seed})")
    print(f"{'variant':<52}{'accuracy':>9}{'Δ points':>9}{'agreement':>10}{'sent/s':>8}{'x ref':>7}{'build s':>8}{'MB':>7}")
    base_acc = (reference.predictions == examples.labels).mean()
    for name, ev, seconds, size in rows:
        acc = (ev.predictions == examples.labels).mean()
        agree = (ev.predictions == reference.predictions).mean()
        speed = len(examples.sentences) / ev.eval_seconds
        print(f"{name:<52}{acc:>9.4f}{100 * (acc - base_acc):>+9.2f}{agree:>10.4f}{speed:>8.1f}"
              f"{reference.eval_seconds / ev.eval_seconds:>7.2f}{seconds:>8.1f}"
              f"{(size or 0) / 1e6:>7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
