"""Backend registry and the `auto` choice: GroqFlow where GroqWare is usable; else CUDA -> ONNX
Runtime, CPU -> OpenVINO (the fastest CPU backend in bench/benchmark.py) where it is installed."""
from __future__ import annotations

import importlib

from ..errors import UserError
from .base import Backend

BACKENDS = ("onnxruntime", "openvino", "groqflow")
CHOICES = ("auto",) + BACKENDS


def _module(name: str) -> Backend:
    return importlib.import_module(f".{name}", __name__)


def _auto(device: str, quantization: str | None) -> tuple[str, str]:
    """(backend name, why) for `--backend auto`."""
    ok, why = _module("groqflow").available()
    if ok:
        return "groqflow", "GroqFlow found the GroqWare Suite"
    reasons = [f"GroqFlow not usable: {why}"]
    if device == "cuda":
        return "onnxruntime", "; ".join(reasons + ["ONNX Runtime runs CUDA"])
    if quantization == "dynamic":
        return "onnxruntime", "; ".join(reasons + ["dynamic INT8 is ONNX Runtime's"])
    ok, why = _module("openvino").available()
    if ok:
        return "openvino", "; ".join(reasons + ["OpenVINO drives this CPU's matrix engines"])
    return "onnxruntime", "; ".join(reasons + [f"OpenVINO not usable: {why}"])


def load_backend(name: str, device: str = "cpu", quantization: str | None = None
                 ) -> tuple[Backend, str]:
    """The backend module for `name`, and for `auto` a note on what it chose and why."""
    note = ""
    if name == "auto":
        name, note = _auto(device, quantization)
    if name not in BACKENDS:
        raise UserError(f"unknown backend '{name}'; choose one of {', '.join(CHOICES)}")
    module = _module(name)
    ok, why = module.available()
    if not ok:
        raise UserError(f"backend {name} is not available: {why}")
    if quantization is not None and quantization not in module.QUANTIZATIONS:
        raise UserError(f"--quantization {quantization} is not built by {name} (it builds "
                        f"{', '.join(module.QUANTIZATIONS)}); pass --backend onnxruntime")
    return module, note
