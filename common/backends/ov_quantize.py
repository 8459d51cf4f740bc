"""INT8 of an OpenVINO IR with NNCF's post-training quantization, on the seeded calibration samples.

Settings chosen by measurement on the shared MiniLM SST-2 checkpoint (README, "INT8 on OpenVINO",
bench/int8_variants.py --backend openvino); `BuildOptions.recipe` overrides them for the variants.
"""
from __future__ import annotations

import time
import warnings
from typing import Callable, Optional, Sequence

import numpy as np

from ..builds import fidelity, pace
from ..host.errors import BuildTooSlow
from ..host.quiet import loggers_at_error, stdout_to_progress
from ..inputs.batching import make_batches
from ..inputs.calibration import Calibration

# a remainder whose slice pass would take over SLICE_LIMIT times the float model's (at least
# SLICE_FLOOR_S) is not searched: as in the trial (common/run/trial.py), INT8 with an fp16 remainder ran
# 1000x slower than the others on an AMX Xeon that lists FP16
SLICE_LIMIT = 10
SLICE_FLOOR_S = 10.0
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
    "float_kinds": (),  # kinds of layer left in float (common/builds/fidelity.py; --min-agreement's search)
}


def quantize_int8(model, calibration: Calibration, recipe: dict,
                  compile_at: Callable[[object, str], object],
                  min_agreement: Optional[float] = None, remainder: str = "fp32",
                  distilled: Optional[Callable[[], tuple[object, dict]]] = None
                  ) -> tuple[object, dict]:
    """The quantized copy of `model` (every calibration sentence one batch-1 sample, unpadded),
    and what accuracy control did ({} without it): with `min_agreement`, the kinds of layer kept
    in float so that the INT8 model answers as the float model (fp32) does on at least that share
    of the validation slice (common/builds/fidelity.py). Each INT8 candidate is scored as it will run:
    compiled by `compile_at(model, precision)` at its float `remainder`, so a bf16 remainder's
    own flips count. A remainder that would score the slice over SLICE_LIMIT times slower than the
    float model is a BuildTooSlow. `distilled()`, where given, is the distilled INT8 IR and its
    record, tried first (fidelity.distilled_first)."""
    quantize = quantizer(model, calibration, recipe)
    if min_agreement is None:
        return quantize(), {}
    inputs = [port.get_any_name() for port in model.inputs]

    def scored(candidate, precision: str, budget_s: Optional[float] = None) -> np.ndarray:
        compiled = compile_at(candidate, precision)
        return fidelity.slice_logits(lambda batch: compiled(
            {name: batch[name] for name in inputs})[0], calibration.validation, budget_s)

    start = time.perf_counter()
    float_logits = scored(model, "fp32")
    budget = pace.budget(SLICE_LIMIT, SLICE_FLOOR_S, time.perf_counter() - start)
    scored_at = f"int8+{remainder}, compiled as the run compiles it"

    def logits(candidate) -> np.ndarray:
        return scored(candidate, remainder, budget)

    def search():
        return fidelity.search(quantize, logits, float_logits,
                               [op.get_friendly_name() for op in model.get_ops()], min_agreement,
                               scored_at=scored_at)

    try:
        if distilled is None:
            return search()
        return fidelity.distilled_first(distilled, logits, float_logits, min_agreement, search,
                                        scored_at=scored_at)
    except fidelity.TooSlow as exc:
        raise BuildTooSlow(f"OpenVINO INT8 with a {remainder} remainder: {exc}; too slow to "
                           "search for --min-agreement here") from None


def quantizer(model, calibration: Calibration, recipe: dict) -> Callable[..., object]:
    """quantize(kinds=()): NNCF's INT8 of `model` with the recipe, those kinds of layer in float."""
    inputs = [port.get_any_name() for port in model.inputs]
    samples = [{name: batch[name] for name in inputs}
               for batch in make_batches(calibration.encoded, batch_size=1).inputs]

    def quantize(kinds=()) -> object:
        types = ("ScaledDotProductAttention",) if recipe["float_attention"] else ()
        names = (*recipe["ignored_patterns"],
                 *fidelity.patterns((*recipe["float_kinds"], *kinds)))
        return nncf_int8(model, samples, recipe, types, names)

    return quantize


def nncf_int8(model, samples: list, settings: dict, float_types: Sequence[str] = (),
              float_patterns: Sequence[str] = ()) -> object:
    """NNCF's post-training INT8 of `model` (an OpenVINO IR, or a PyTorch module: distillation's
    student) on `samples` (each one model input, all of them used), with the settings' preset,
    SmoothQuant and bias correction (distillation.NNCF_SETTINGS), the operations of those types
    and names left in float: the one place NNCF is set up."""
    with warnings.catch_warnings():  # NNCF releases warn of their own deprecations
        warnings.simplefilter("ignore")
        import nncf
        from nncf.quantization.advanced_parameters import (AdvancedQuantizationParameters,
                                                           AdvancedSmoothQuantParameters)
    advanced = AdvancedQuantizationParameters(
        smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=settings["smooth_quant_alpha"]),
        disable_bias_correction=not settings["bias_correction"])
    ignored = nncf.IgnoredScope(types=list(float_types), patterns=list(float_patterns),
                                validate=False) if float_types or float_patterns else None
    with warnings.catch_warnings(), loggers_at_error("nncf"), stdout_to_progress():
        warnings.simplefilter("ignore")  # its progress display goes to stdout: moved
        return nncf.quantize(model, nncf.Dataset(samples), subset_size=len(samples),
                             preset=nncf.QuantizationPreset(settings["preset"]),
                             model_type=nncf.ModelType.TRANSFORMER,
                             fast_bias_correction=settings["fast_bias_correction"],
                             advanced_parameters=advanced, ignored_scope=ignored)
