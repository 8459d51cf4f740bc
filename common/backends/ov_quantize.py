"""INT8 of an OpenVINO IR with NNCF's post-training quantization, on the seeded calibration samples.

Settings chosen by measurement on the shared MiniLM SST-2 checkpoint (README, "INT8 on OpenVINO",
bench/int8_variants.py --backend openvino); `BuildOptions.recipe` overrides them for the variants.
"""
from __future__ import annotations

import logging

from ..batching import make_batches
from .base import Calibration

INT8_RECIPE = {
    "preset": "mixed",  # symmetric weights, asymmetric activations (NNCF's transformer default)
    "smooth_quant_alpha": 0.95,  # NNCF's MatMul default; < 0 turns SmoothQuant off
    "fast_bias_correction": True,
    "bias_correction": True,
    "ignored_types": (),  # e.g. ("MatMul",) would keep every MatMul in float
    "ignored_patterns": (),  # regular expressions over node names, e.g. the classifier head
}


def quantize_int8(model, calibration: Calibration, recipe: dict):
    """The quantized copy of `model`; every calibration sentence is one batch-1 sample, unpadded."""
    import nncf
    from nncf.quantization.advanced_parameters import (AdvancedQuantizationParameters,
                                                       AdvancedSmoothQuantParameters)

    names = [port.get_any_name() for port in model.inputs]
    samples = [{name: batch[name] for name in names}
               for batch in make_batches(calibration.encoded, batch_size=1).inputs]
    ignored = None
    if recipe["ignored_types"] or recipe["ignored_patterns"]:
        ignored = nncf.IgnoredScope(types=list(recipe["ignored_types"]),
                                    patterns=list(recipe["ignored_patterns"]), validate=False)
    advanced = AdvancedQuantizationParameters(
        smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=recipe["smooth_quant_alpha"]),
        disable_bias_correction=not recipe["bias_correction"])
    nncf_logger = logging.getLogger("nncf")
    level = nncf_logger.level
    nncf_logger.setLevel(logging.ERROR)  # its INFO lines say nothing a user can act on
    try:
        return nncf.quantize(model, nncf.Dataset(samples), subset_size=len(samples),
                             preset=nncf.QuantizationPreset(recipe["preset"]),
                             model_type=nncf.ModelType.TRANSFORMER,
                             fast_bias_correction=recipe["fast_bias_correction"],
                             ignored_scope=ignored, advanced_parameters=advanced)
    finally:
        nncf_logger.setLevel(level)
