"""--distill-steps: INT8 trained for a few steps to answer as the float model does, tried before
--min-agreement keeps kinds of layer in float (common/builds/fidelity.py), so that every matrix product
can stay INT8.

NNCF's post-training INT8 of the PyTorch model (NNCF's preset, SmoothQuant and bias correction as
OpenVINO's INT8 build sets them), then quantization-aware training of all its weights (fake quantization, straight-
through gradients) to the float model's logits on training rows that are neither calibrated on,
nor in the validation slice, nor evaluated. Measured on the shared MiniLM, 2-core Xeon
(docs/int8.md, "Distillation"): in no setting tried (MSE or KL, learning rates 3e-6 to 5e-5, all
weights or the quantizers only, boundary sentences weighted) did 100 to 300 steps raise the
validation slice's agreement above NNCF's post-training INT8's; against ONNX Runtime's own INT8
it did (0.9880 to 0.9940), but on neither backend to 0.995; hence off by default.
The trained model is exported for the backend that scores and runs it: an OpenVINO IR, or ONNX
with QuantizeLinear/DequantizeLinear pairs for ONNX Runtime.
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..builds.cache import BuildCache
from ..host.progress import progress_bar
from ..inputs.batching import Batch, make_batches
from ..inputs.calibration import Calibration
from .base import BuildOptions, build_key
from .export import LogitsByName, eager_attention_copy, export_logits, model_input_names

BATCH = 32
# what decides the distilled model beyond the INT8 recipe, its data and seed: in its cache key
RECIPE = {"quantizer": "NNCF post-training INT8 of the PyTorch model, then all weights trained",
          "loss": "mean squared gap to the float logits", "optimizer": "AdamW",
          "learning_rate": 3e-6, "weight_decay": 0.0, "batch": BATCH,
          "mode": "eval (no dropout: the student sees what the float model sees)"}
NNCF_SETTINGS = ("preset", "smooth_quant_alpha", "bias_correction", "fast_bias_correction")


def recipe(steps: int, int8_recipe: dict) -> dict:
    """What a backend's recipe holds of a distillation of `steps` steps: ours, and NNCF's
    post-training settings taken from `int8_recipe` (OpenVINO's INT8 recipe)."""
    return {**RECIPE, "steps": steps,
            "post_training": {name: int8_recipe[name] for name in NNCF_SETTINGS}}


def cached_student(checkpoint, calibration: Calibration, backend_recipe: dict, cache: BuildCache,
                   backend: str, versions: dict,
                   save: Callable[[torch.nn.Module, tuple[str, ...], Path], None]
                   ) -> tuple[Path, dict]:
    """The folder where `save(student, input names, folder)` put the distilled model, and the
    distillation's record; cached apart from the build that scores it, keyed by the backend's
    recipe (its "distillation" part included), the model, the calibration and distillation rows
    and the seed, but not by the float remainder, the target or the validation slice, so each
    remainder's candidate and each target reuse one distillation."""
    names = model_input_names(checkpoint.model)
    trained_on = dataclasses.replace(calibration, validation=None, validation_indices=None)
    key = build_key(backend, checkpoint.identity, BuildOptions(), (), versions, backend_recipe,
                    trained_on, ir="distilled", inputs=list(names))
    settings = backend_recipe["distillation"]

    def build(folder: Path) -> dict:
        student, record = distilled_int8(checkpoint.model, names, calibration,
                                         settings["post_training"], settings["steps"])
        save(student, names, folder)
        return {"distillation": record}

    cached = cache.get_or_build(f"{backend}-distilled", key, build)
    return cached.folder, {**cached.state["facts"]["distillation"], "cached": cached.hit}


def save_qdq_onnx(student: torch.nn.Module, names: tuple[str, ...], example: Batch,
                  path: Path) -> None:
    """The student as ONNX for ONNX Runtime: each NNCF quantizer exported as a QuantizeLinear /
    DequantizeLinear pair (not OpenVINO's FakeQuantize, which ONNX Runtime does not run)."""
    from nncf.torch.quantization.layers import BaseQuantizer, QuantizerExportMode

    for module in student.modules():
        if isinstance(module, BaseQuantizer):
            module.set_export_mode(QuantizerExportMode.ONNX_QUANTIZE_DEQUANTIZE_PAIRS)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        export_logits(student, names, example, path)


def post_training_int8(model: torch.nn.Module, names: Sequence[str], calibration: Calibration,
                       int8_recipe: dict) -> torch.nn.Module:
    """NNCF's INT8 of the PyTorch model (eager attention, as the export), set up as OpenVINO's
    (ov_quantize.nncf_int8), every calibration sentence one batch-1 sample."""
    from .ov_quantize import nncf_int8

    samples = [tuple(torch.from_numpy(batch[name]) for name in names)
               for batch in make_batches(calibration.encoded, batch_size=1).inputs]
    student = LogitsByName(eager_attention_copy(model), tuple(names)).eval()
    return nncf_int8(student, samples, int8_recipe)


def distilled_int8(model: torch.nn.Module, names: Sequence[str], calibration: Calibration,
                   int8_recipe: dict, steps: int) -> tuple[torch.nn.Module, dict]:
    """The INT8 student (fake-quantized PyTorch, eval mode) after `steps` steps of distillation
    from `model` on the calibration's distillation rows (cycled, in an order seeded by the
    calibration seed), and the record of it: steps, rows, seconds, the loss at start and end."""
    start = time.perf_counter()
    with torch.random.fork_rng():  # seeded here without reseeding the caller's generator
        torch.manual_seed(calibration.seed)
        student = post_training_int8(model, names, calibration, int8_recipe)
        losses = _train(student, LogitsByName(model, tuple(names)).eval(), names,
                        calibration, steps)
    student.eval()
    return student, {"steps": steps, "rows": len(calibration.distillation), "batch": BATCH,
                     "seconds": time.perf_counter() - start,
                     "loss_first": losses[0] if losses else None,
                     "loss_last": losses[-1] if losses else None}


def _train(student: torch.nn.Module, teacher: torch.nn.Module, names: Sequence[str],
           calibration: Calibration, steps: int) -> list[float]:
    """`steps` steps of the student towards the teacher's logits on the distillation rows, in
    batches cycled in an order seeded by the calibration seed; the loss of each step."""
    batches = make_batches(calibration.distillation, batch_size=BATCH).inputs
    order = np.random.default_rng(calibration.seed).permutation(len(batches))
    optimizer = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad],
                                  lr=RECIPE["learning_rate"], weight_decay=RECIPE["weight_decay"])
    losses = []
    with progress_bar("distil int8", steps, "step") as bar:
        for step in range(steps):
            batch = batches[order[step % len(order)]]
            inputs = [torch.from_numpy(batch[name]) for name in names]
            with torch.no_grad():
                target = teacher(*inputs)
            loss = torch.nn.functional.mse_loss(student(*inputs), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            bar.update()
    return losses
