"""INT8 with ONNX Runtime's own quantization tools: static (QDQ, per-channel, MinMax) or dynamic.

Static default, chosen by measurement on the shared MiniLM SST-2 checkpoint (README, "INT8",
bench/int8_variants.py): every MatMul is quantized (weights per channel), with its output left in
float: ONNX Runtime then runs each as one integer MatMul with a float result, instead of a
QLinearMatMul plus a separate DequantizeLinear, which was both slower and less accurate. The
embeddings, LayerNorm, Softmax, GELU, the pooler and the classifier head (Gemm) stay in float.
The recipes are part of the cache key; `BuildOptions.recipe` overrides them for the variants.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Optional, Sequence

import onnx

from ..builds import fidelity
from ..host.progress import progress_bar
from ..host.quiet import loggers_at_error
from ..inputs.batching import make_batches
from ..inputs.calibration import Calibration
from .ort_session import make_session

FLOAT = onnx.TensorProto.FLOAT
STATIC_RECIPE = {
    "fused_graph": False,  # quantize the plain export (ORT's fused graph ran slower as INT8)
    "per_channel": True,
    "float_outputs": True,  # OpTypesToExcludeOutputQuantization: MatMul
    "float_activation_matmuls": False,  # leave attention's QK^T and PV in float
    "calibrate_method": "MinMax",
    "float_kinds": (),  # kinds of layer left in float (common/builds/fidelity.py; --min-agreement's search)
}
DYNAMIC_RECIPE = {"fused_graph": True, "op_types": ("MatMul", "Attention")}


class CalibrationReader:
    """Feeds one calibration sentence per pass, with a progress bar over the passes."""

    def __init__(self, calibration: Calibration, input_names: set[str]):
        self._inputs = make_batches(calibration.encoded, batch_size=1).inputs
        self._names = input_names
        self._bar = progress_bar("calibrate int8", len(self._inputs), "sample")
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


def quantize_static_int8(source: Path, target: Path, calibration: Calibration, recipe: dict) -> None:
    """Static QDQ INT8, calibrated on the seeded samples."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    model = onnx.load(str(source), load_external_data=False)
    excluded = fidelity.matching(recipe["float_kinds"], [node.name for node in model.graph.node])
    if recipe["float_activation_matmuls"]:
        excluded += activation_matmuls(model)
    extra = {"DefaultTensorType": FLOAT}
    if recipe["float_outputs"]:
        extra["OpTypesToExcludeOutputQuantization"] = ["MatMul"]
    with loggers_at_error(""):
        quantize_static(str(source), str(target),
                        CalibrationReader(calibration, {i.name for i in model.graph.input}),
                        quant_format=QuantFormat.QDQ, per_channel=recipe["per_channel"],
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod[recipe["calibrate_method"]],
                        op_types_to_quantize=["MatMul"],
                        nodes_to_exclude=sorted(set(excluded)), extra_options=extra)


def agreeing_static_int8(source: Path, target: Path, calibration: Calibration, recipe: dict,
                         min_agreement: float,
                         distilled: Optional[Callable[[], tuple[Path, dict]]] = None) -> dict:
    """Static INT8 with the fewest kinds of layer in float that agree with the float model on
    `min_agreement` of the validation slice (fidelity.search: ONNX Runtime's nodes_to_exclude);
    what the search did, for the build's facts. `distilled()`, where given, is the distilled
    INT8 model's file (QDQ) and its record, tried first (fidelity.distilled_first)."""
    candidates: list[Path] = []
    scored_at = "int8+fp32, in the session the run uses"

    def quantize(kinds: Sequence[str]) -> Path:
        candidates.append(target.with_name(f"candidate-{len(candidates)}.onnx"))
        quantize_static_int8(source, candidates[-1], calibration,
                             {**recipe, "float_kinds": (*recipe["float_kinds"], *kinds)})
        return candidates[-1]

    def logits(path: Path):
        return fidelity.slice_logits(make_session(path)[0], calibration.validation)

    names = [node.name for node in onnx.load(str(source), load_external_data=False).graph.node]
    float_logits = logits(source)

    def search() -> tuple[Path, dict]:
        return fidelity.search(quantize, logits, float_logits, names, min_agreement,
                               scored_at=scored_at)

    chosen, report = search() if distilled is None else fidelity.distilled_first(
        distilled, logits, float_logits, min_agreement, search, scored_at=scored_at)
    if chosen in candidates:
        chosen.replace(target)
    else:  # the distilled model stays in its own cache entry
        shutil.copyfile(chosen, target)
    for path in candidates:
        path.unlink(missing_ok=True)
    return report


def quantize_dynamic_int8(source: Path, target: Path, recipe: dict) -> None:
    """Dynamic INT8: weights INT8, activation ranges computed per batch."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with loggers_at_error(""):
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8,
                         op_types_to_quantize=list(recipe["op_types"]),
                         extra_options={"DefaultTensorType": FLOAT})
