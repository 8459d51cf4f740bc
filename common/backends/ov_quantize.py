"""INT8 of an OpenVINO IR with NNCF's post-training quantization, on the seeded calibration samples.

Settings chosen by measurement on the shared MiniLM SST-2 checkpoint (README, "INT8 on OpenVINO",
bench/int8_variants.py --backend openvino); `BuildOptions.recipe` overrides them for the variants.
"""
from __future__ import annotations

import warnings

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
}


def quantize_int8(model, calibration: Calibration, recipe: dict):
    """The quantized copy of `model`; every calibration sentence is one batch-1 sample, unpadded."""
    with warnings.catch_warnings():  # NNCF releases warn of their own deprecations
        warnings.simplefilter("ignore")
        import nncf
        from nncf.quantization.advanced_parameters import (AdvancedQuantizationParameters,
                                                           AdvancedSmoothQuantParameters)

        inputs = [port.get_any_name() for port in model.inputs]
        samples = [{name: batch[name] for name in inputs}
                   for batch in make_batches(calibration.encoded, batch_size=1).inputs]
        ignored = None
        if recipe["float_attention"] or recipe["ignored_patterns"]:
            ignored = nncf.IgnoredScope(
                types=["ScaledDotProductAttention"] if recipe["float_attention"] else [],
                patterns=list(recipe["ignored_patterns"]), validate=False)
        advanced = AdvancedQuantizationParameters(
            smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=recipe["smooth_quant_alpha"]),
            disable_bias_correction=not recipe["bias_correction"])
        with loggers_at_error("nncf"), stdout_to_progress():  # its progress display uses stdout
            return nncf.quantize(model, nncf.Dataset(samples), subset_size=len(samples),
                                 preset=nncf.QuantizationPreset(recipe["preset"]),
                                 model_type=nncf.ModelType.TRANSFORMER,
                                 fast_bias_correction=recipe["fast_bias_correction"],
                                 ignored_scope=ignored, advanced_parameters=advanced)
