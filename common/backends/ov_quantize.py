"""INT8 of an OpenVINO IR with NNCF's post-training quantization, on the seeded calibration samples.

Settings chosen by measurement on the shared MiniLM SST-2 checkpoint (README, "INT8 on OpenVINO",
bench/int8_variants.py --backend openvino); `BuildOptions.recipe` overrides them for the variants.
"""
from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Iterator, Optional

import numpy as np

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


def quantize_int8(model, calibration: Calibration, recipe: dict,
                  min_agreement: Optional[float] = None) -> tuple[object, dict]:
    """The quantized copy of `model` (every calibration sentence one batch-1 sample, unpadded),
    and what accuracy control did ({} without it): with `min_agreement`, NNCF's
    quantize_with_accuracy_control keeps the operations that flip answers most in float until the
    INT8 model answers as the float model does on at least that share of the validation slice."""
    with warnings.catch_warnings():  # NNCF releases warn of their own deprecations
        warnings.simplefilter("ignore")
        import nncf
        from nncf.quantization.advanced_parameters import (AdvancedQuantizationParameters,
                                                           AdvancedSmoothQuantParameters)

        inputs = [port.get_any_name() for port in model.inputs]

        def samples(encoded) -> list[dict]:
            return [{name: batch[name] for name in inputs}
                    for batch in make_batches(encoded, batch_size=1).inputs]

        calibration_samples = samples(calibration.encoded)
        ignored = None
        if recipe["float_attention"] or recipe["ignored_patterns"]:
            ignored = nncf.IgnoredScope(
                types=["ScaledDotProductAttention"] if recipe["float_attention"] else [],
                patterns=list(recipe["ignored_patterns"]), validate=False)
        advanced = AdvancedQuantizationParameters(
            smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=recipe["smooth_quant_alpha"]),
            disable_bias_correction=not recipe["bias_correction"])
        settings = dict(subset_size=len(calibration_samples),
                        preset=nncf.QuantizationPreset(recipe["preset"]),
                        model_type=nncf.ModelType.TRANSFORMER,
                        fast_bias_correction=recipe["fast_bias_correction"], ignored_scope=ignored)
        if min_agreement is None:
            with loggers_at_error("nncf"), stdout_to_progress():  # its progress display: stdout
                return nncf.quantize(model, nncf.Dataset(calibration_samples),
                                     advanced_parameters=advanced, **settings), {}
        validation = samples(calibration.validation)
        float_answers = answers(compile_f32(model), validation)

        def agreement(compiled, items) -> tuple[float, list[float]]:
            """NNCF's metric: the share of the slice answered as the float model answers."""
            same = [float(a == b) for a, b in zip(answers(compiled, items), float_answers)]
            return sum(same) / len(same), same

        with recorded_log("nncf") as log, stdout_to_progress():
            quantized = nncf.quantize_with_accuracy_control(
                model, nncf.Dataset(calibration_samples), nncf.Dataset(validation), agreement,
                max_drop=1.0 - min_agreement, drop_type=nncf.DropType.ABSOLUTE,
                advanced_quantization_parameters=advanced, **settings)
    return quantized, accuracy_control_report(log, min_agreement, len(validation),
                                              agreement(compile_f32(quantized), validation)[0])


def compile_f32(model):
    """Compiled for the CPU at fp32, as NNCF validates."""
    import openvino as ov

    return ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})


def answers(compiled, items) -> list[int]:
    return [int(np.argmax(compiled(item)[0])) for item in items]


@contextlib.contextmanager
def recorded_log(name: str) -> Iterator[list[str]]:
    """The messages a logger writes while the block runs, kept instead of printed."""
    logger, messages = logging.getLogger(name), []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: messages.append(record.getMessage())
    handlers, propagate, level = logger.handlers[:], logger.propagate, logger.level
    logger.handlers, logger.propagate = [handler], False
    logger.setLevel(logging.INFO)
    try:
        yield messages
    finally:
        logger.handlers, logger.propagate = handlers, propagate
        logger.setLevel(level)


def accuracy_control_report(log: list[str], min_agreement: float, slice_size: int,
                            reached: float) -> dict:
    """What stayed in float and why, from NNCF's own report: the agreement on the validation slice
    of plain INT8 (1 - its drop) and of the result, and every operation reverted to float."""
    drops = [float(m.split(": ")[1].split()[0]) for m in log if m.startswith("Accuracy drop: ")]
    kept = [line.strip() for m in log if m.startswith("Reverted ")
            for line in m.splitlines()[1:] if line.strip()]
    return {"min_agreement": min_agreement, "validation_sentences": slice_size,
            "plain_int8_agreement": 1.0 - drops[0] if drops else None,
            "agreement": reached, "kept_in_float": kept,
            "reached": reached >= min_agreement}
