"""INT8 with ONNX Runtime's own quantization tools: static (QDQ, per-channel, MinMax) or dynamic.

Static default, chosen by measurement on the shared MiniLM SST-2 checkpoint (README, "INT8"):
only the weight MatMuls are quantized. Attention's activation-by-activation MatMuls (QK^T, PV),
the embeddings, LayerNorm, Softmax, the pooler and the classifier head (Gemm) stay in float.
"""
from __future__ import annotations

from pathlib import Path

import onnx
from tqdm import tqdm

from ..batching import make_batches
from .base import BuildOptions, Calibration

FLOAT = onnx.TensorProto.FLOAT


class CalibrationReader:
    """Feeds one calibration sentence per pass, with a progress bar over the passes."""

    def __init__(self, calibration: Calibration, input_names: set[str]):
        self._inputs = make_batches(calibration.encoded, batch_size=1).inputs
        self._names = input_names
        self._bar = tqdm(total=len(self._inputs), desc="calibrate int8", unit="sample")
        self._next = 0

    def get_next(self):
        if self._next >= len(self._inputs):
            self._bar.close()
            return None
        batch = self._inputs[self._next]
        self._next += 1
        self._bar.update()
        return {name: batch[name] for name in self._names}

    def rewind(self):
        self._next = 0
        self._bar.reset()


def activation_matmuls(model: onnx.ModelProto) -> list[str]:
    """MatMul nodes with no weight input: attention scores and context (QK^T, PV)."""
    weights = {init.name for init in model.graph.initializer}
    return [node.name for node in model.graph.node
            if node.op_type == "MatMul" and not any(name in weights for name in node.input)]


def quantize_static_int8(source: Path, target: Path, calibration: Calibration) -> dict:
    """Static QDQ INT8 of the exported (unfused) graph, calibrated with MinMax."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    model = onnx.load(str(source))
    names = {i.name for i in model.graph.input}
    excluded = activation_matmuls(model)
    quantize_static(str(source), str(target), CalibrationReader(calibration, names),
                    quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=["MatMul"],
                    nodes_to_exclude=excluded, extra_options={"DefaultTensorType": FLOAT})
    return {"float_matmuls": len(excluded)}


def quantize_dynamic_int8(source: Path, target: Path) -> dict:
    """Dynamic INT8 of the fused graph: weights INT8, activation ranges computed per batch."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul", "Attention"],
                     extra_options={"DefaultTensorType": FLOAT})
    return {}
