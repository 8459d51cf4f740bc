"""INT8 of an OpenVINO IR with NNCF's post-training quantization, on the seeded calibration samples.

Settings chosen by measurement on the shared MiniLM SST-2 checkpoint (README, "INT8 on OpenVINO",
bench/int8_variants.py --backend openvino); `BuildOptions.recipe` overrides them for the variants.
"""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np

from .. import fidelity
from ..batching import make_batches
from ..quiet import loggers_at_error, stdout_to_progress
from .base import Calibration

INT8_RECIPE = {
    "preset": "mixed",  # symmetric weights, asymmetric activations (NNCF's transformer default)
    # SmoothQuant off: NNCF's default (0.95) cost 0.57 points and 1.8% agreement on MiniLM here
    "smooth_quant_alpha": -1.0,
    "fast_bias_correction": True,
    "bias_correction": True,
    # OpenVINO fuses attention into ScaledDotProductAttention when it converts the export; True
    # keeps its inputs (Q, K) unquantized
    "float_attention": False,
    "ignored_patterns": (),  # regular expressions over node names, e.g. the classifier head
    "float_kinds": (),  # kinds of layer left in float (common/fidelity.py; --min-agreement's search)
}


def quantize_int8(model, calibration: Calibration, recipe: dict,
                  min_agreement: Optional[float] = None) -> tuple[object, dict]:
    """The quantized copy of `model` (every calibration sentence one batch-1 sample, unpadded),
    and what accuracy control did ({} without it): with `min_agreement`, the kinds of layer kept
    in float so that the INT8 model answers as the float model does on at least that share of the
    validation slice (common/fidelity.py), each candidate scored at fp32."""
    with warnings.catch_warnings():  # NNCF releases warn of their own deprecations
        warnings.simplefilter("ignore")
        import nncf
        from nncf.quantization.advanced_parameters import (AdvancedQuantizationParameters,
                                                           AdvancedSmoothQuantParameters)

        inputs = [port.get_any_name() for port in model.inputs]

        def samples(encoded) -> list[dict]:
            return [{name: batch[name] for name in inputs}
                    for batch in make_batches(encoded, batch_size=1).inputs]

        def ignored(kinds=()) -> Optional[object]:
            types = ["ScaledDotProductAttention"] if recipe["float_attention"] else []
            names = [*recipe["ignored_patterns"], *fidelity.patterns((*recipe["float_kinds"], *kinds))]
            return nncf.IgnoredScope(types=types, patterns=names, validate=False) \
                if types or names else None

        calibration_samples = samples(calibration.encoded)
        advanced = AdvancedQuantizationParameters(
            smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=recipe["smooth_quant_alpha"]),
            disable_bias_correction=not recipe["bias_correction"])
        settings = dict(subset_size=len(calibration_samples),
                        preset=nncf.QuantizationPreset(recipe["preset"]),
                        model_type=nncf.ModelType.TRANSFORMER,
                        fast_bias_correction=recipe["fast_bias_correction"])

        def quantize(kinds=()) -> object:
            with loggers_at_error("nncf"), stdout_to_progress():  # its progress display: stdout
                return nncf.quantize(model, nncf.Dataset(calibration_samples),
                                     advanced_parameters=advanced, ignored_scope=ignored(kinds),
                                     **settings)

        if min_agreement is None:
            return quantize(), {}

        def logits(candidate) -> np.ndarray:
            compiled = compile_f32(candidate)
            return fidelity.slice_logits(lambda batch: compiled(
                {name: batch[name] for name in inputs})[0], calibration.validation)

        return fidelity.search(quantize, logits, logits(model),
                               [op.get_friendly_name() for op in model.get_ops()], min_agreement)


def compile_f32(model):
    """Compiled for the CPU at fp32: the search judges INT8's error, not the remainder's."""
    import openvino as ov

    return ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
