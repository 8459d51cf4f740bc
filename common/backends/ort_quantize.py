"""INT8 with ONNX Runtime's own quantization tools: static (QDQ, per-channel, MinMax) or dynamic.

Static default, chosen by measurement on the shared MiniLM SST-2 checkpoint (README, "INT8",
bench/int8_variants.py): every MatMul is quantized (weights per channel), with its output left in
float: ONNX Runtime then runs each as one integer MatMul with a float result, instead of a
QLinearMatMul plus a separate DequantizeLinear, which was both slower and less accurate. The
embeddings, LayerNorm, Softmax, GELU, the pooler and the classifier head (Gemm) stay in float.
"""
from __future__ import annotations

from pathlib import Path

import onnx
from tqdm import tqdm

from ..batching import make_batches
from .base import Calibration

FLOAT = onnx.TensorProto.FLOAT
STATIC_OPTIONS = {"DefaultTensorType": FLOAT, "OpTypesToExcludeOutputQuantization": ["MatMul"]}


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


def quantize_static_int8(source: Path, target: Path, calibration: Calibration) -> None:
    """Static QDQ INT8 of the exported (unfused) graph, calibrated with MinMax."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    names = {i.name for i in onnx.load(str(source), load_external_data=False).graph.input}
    quantize_static(str(source), str(target), CalibrationReader(calibration, names),
                    quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=["MatMul"],
                    extra_options=STATIC_OPTIONS)


def quantize_dynamic_int8(source: Path, target: Path) -> None:
    """Dynamic INT8 of the fused graph: weights INT8, activation ranges computed per batch."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul", "Attention"],
                     extra_options={"DefaultTensorType": FLOAT})
