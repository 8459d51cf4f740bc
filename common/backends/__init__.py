"""Backend registry, and the builds that `auto` chooses among: GroqFlow alone where GroqWare and a
GroqChip are here; else every build OpenVINO and ONNX Runtime offer on the device, one of which a
measured trial picks (common/trial.py)."""
from __future__ import annotations

import importlib

from .. import interrupt
from ..errors import UserError, first_line
from .base import Backend, Candidate

BACKENDS = ("onnxruntime", "openvino", "groqflow")
CHOICES = ("auto",) + BACKENDS
HOST_BACKENDS = ("openvino", "onnxruntime")  # what runs where GroqFlow does not


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


def _usable(name: str) -> Backend:
    module = backend_module(name)
    ok, why = module.available()
    if not ok:
        raise UserError(f"backend {name} is not available: {why}")
    return module


def _offered(name: str, device: str, quantization: str | None) -> tuple[Candidate, ...]:
    """An explicitly named backend's builds; one line saying why when it has none."""
    module = _usable(name)
    if quantization is not None and quantization not in module.QUANTIZATIONS:
        raise UserError(f"--quantization {quantization} is not built by {name} (it builds "
                        f"{', '.join(module.QUANTIZATIONS)}); pass --backend onnxruntime")
    found = module.candidates(device, quantization)
    if not found:
        raise UserError(f"{name} builds nothing for --device {device} here; "
                        "pass --backend onnxruntime")
    return found


def candidates_for(backend: str, device: str, quantization: str | None,
                   precision: str = "auto") -> tuple[list[Candidate], str]:
    """The builds the flags leave open, and a note on how that set was made. `quantization` None
    means a float build; `precision` narrows the set to one precision label (fp32, int8+bf16...)."""
    if backend != "auto":
        found, note = list(_offered(backend, device, quantization)), ""
    else:
        ok, why = backend_module("groqflow").available()
        if ok and device == "cuda":
            ok, why = False, "--device cuda asks for a GPU"
        if ok:
            found = list(backend_module("groqflow").candidates(device, quantization))
            note = "GroqFlow found the GroqWare Suite and a GroqChip"
        else:
            usable = [n for n in HOST_BACKENDS if backend_module(n).available()[0]]
            found = [c for n in usable for c in backend_module(n).candidates(device, quantization)]
            note = f"GroqFlow not usable: {why}"
            if not found:
                raise UserError(f"no installed backend builds for --device {device} "
                                f"({note}); see requirements.txt")
    if precision == "auto":
        return found, note
    kept = [c for c in found if c.label == precision]
    if not kept:
        names = " and ".join(dict.fromkeys(c.backend for c in found))
        raise UserError(f"--precision {precision}: {names} on {device} "
                        f"build{'s' if ' and ' not in names else ''} "
                        f"{' or '.join(dict.fromkeys(c.label for c in found))} here")
    return kept, note
