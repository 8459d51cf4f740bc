"""The backends, one module each behind `base.Backend` (README.md: how to add one), with what
they share of building (the ONNX export, distillation); the registry is here. Which of their
builds a run considers is common/run/offers.py's. Imports common.host, .inputs and .builds."""
from __future__ import annotations

import importlib

from ..host import interrupt
from ..host.errors import UserError, first_line
from .base import Backend

BACKENDS = ("onnxruntime", "openvino", "torch_compile", "groqflow")
CHOICES = ("auto",) + BACKENDS


def import_failure(exc: ImportError, package: str) -> str:
    """Why a backend is not available, when its package is simply not installed; anything else
    (a broken install, an interrupt landing inside an import) is one line, never a backend
    silently dropped from the candidates, which would change what the run measures."""
    interrupt.check()
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] == package:
        return f"{package} is not installed"
    raise UserError(f"{package} is installed but does not import ({first_line(exc)})") from None


def backend_module(name: str) -> Backend:
    if name not in BACKENDS:
        raise UserError(f"unknown backend '{name}'; choose one of {', '.join(CHOICES)}")
    return importlib.import_module(f".{name}", __name__)


def versions_of(candidates) -> dict[str, str]:
    """The library versions of every backend among `candidates`: what their builds depend on."""
    versions: dict[str, str] = {}
    for name in dict.fromkeys(c.backend for c in candidates):
        versions.update(backend_module(name).library_versions())
    return versions


def usable(name: str, building: bool = False) -> Backend:
    """The named backend's module where it can run here (`building`: build, for --build); one
    line saying why not otherwise."""
    module = backend_module(name)
    ok, why = module.available(building)
    if not ok:
        raise UserError(f"backend {name} is not available: {why}")
    return module
