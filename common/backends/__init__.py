"""Backend registry and the `auto` choice: GroqFlow where GroqWare is usable, else ONNX Runtime."""
from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import UserError

BACKENDS = ("onnxruntime", "groqflow")
CHOICES = ("auto",) + BACKENDS


def load_backend(name: str) -> tuple[ModuleType, str]:
    """The backend module for `name`, and for `auto` a note on why it chose it."""
    note = ""
    if name == "auto":
        groq = importlib.import_module(".groqflow", __name__)
        ok, why = groq.available()
        if ok:
            return groq, "GroqFlow found the GroqWare Suite"
        name, note = "onnxruntime", f"GroqFlow not usable: {why}"
    if name not in BACKENDS:
        raise UserError(f"unknown backend '{name}'; choose one of {', '.join(CHOICES)}")
    module = importlib.import_module(f".{name}", __name__)
    ok, why = module.available()
    if not ok:
        raise UserError(f"backend {name} is not available: {why}")
    return module, note
