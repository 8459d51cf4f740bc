"""Backend registry and the `auto` choice: GroqFlow where GroqWare is usable, else ONNX Runtime."""
from __future__ import annotations

import importlib
import sys
from types import ModuleType

from ..errors import UserError

BACKENDS = ("onnxruntime", "groqflow")
CHOICES = ("auto",) + BACKENDS


def load_backend(name: str) -> ModuleType:
    """The backend module for `name`; `auto` explains its choice in one line on stderr."""
    if name == "auto":
        groq = importlib.import_module(".groqflow", __name__)
        ok, why = groq.available()
        if ok:
            return groq
        print(f"backend: onnxruntime (GroqFlow not usable: {why})", file=sys.stderr)
        name = "onnxruntime"
    if name not in BACKENDS:
        raise UserError(f"unknown backend '{name}'; choose one of {', '.join(CHOICES)}")
    module = importlib.import_module(f".{name}", __name__)
    ok, why = module.available()
    if not ok:
        raise UserError(f"backend {name} is not available: {why}")
    return module
