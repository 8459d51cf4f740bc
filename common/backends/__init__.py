"""Backend registry, and the builds that `auto` chooses among: GroqFlow alone where GroqWare and a
GroqChip are here; else every build OpenVINO, ONNX Runtime and PyTorch-compiled offer on the
device (a CUDA GPU torch can use, else the CPU), one of which a measured trial picks
(common/trial.py)."""
from __future__ import annotations

import importlib
from dataclasses import dataclass

from .. import fidelity, interrupt
from ..errors import UserError, first_line
from ..gpu import resolve_device
from .base import Backend, Candidate

BACKENDS = ("onnxruntime", "openvino", "torch_compile", "groqflow")
CHOICES = ("auto",) + BACKENDS
HOST_BACKENDS = ("openvino", "onnxruntime", "torch_compile")  # what runs where GroqFlow does not


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


def _usable(name: str, building: bool = False) -> Backend:
    module = backend_module(name)
    ok, why = module.available(building)
    if not ok:
        raise UserError(f"backend {name} is not available: {why}")
    return module


def _every_build(module: Backend, device: str, quantization: str | None) -> tuple[Candidate, ...]:
    """A backend's builds on `device`: those `auto` trials and those it makes on request only."""
    on_request = getattr(module, "on_request", lambda device, quantization: ())
    return module.candidates(device, quantization) + on_request(device, quantization)


def _named(name: str, device: str, quantization: str | None, building: bool = False
           ) -> tuple[Candidate, ...]:
    """An explicitly named backend's builds on `device`, every one (`building`: to be built
    only, for --build)."""
    module = _usable(name, building)
    if quantization is not None and quantization not in module.QUANTIZATIONS:
        raise UserError(f"--quantization {quantization} is not built by {name} (it builds "
                        f"{', '.join(module.QUANTIZATIONS) or 'no INT8'}); pass --backend "
                        "onnxruntime")
    return _every_build(module, device, quantization)


def hosted(device: str, quantization: str | None, requested: bool = False) -> list[Candidate]:
    """What `auto` trials on `device` where GroqFlow does not run: every installed host
    backend's candidates there (`requested`: their builds made on request too)."""
    modules = [backend_module(n) for n in HOST_BACKENDS if backend_module(n).available()[0]]
    return [c for module in modules for c in (_every_build(module, device, quantization)
                                              if requested else
                                              module.candidates(device, quantization))]


@dataclass(frozen=True)
class Offer:
    """The builds the flags leave open, how that set was made, and the accelerator of the run:
    cuda where a GPU was asked for or found, groqchip for GroqFlow, else cpu. A build the GPU
    lacks (INT8, a CPU-only backend) runs on the CPU of a GPU host; its device says so."""
    candidates: list
    note: str
    device: str


def candidates_for(backend: str, device: str, quantization: str | None,
                   precision: str = "auto", building: bool = False) -> Offer:
    """The builds `--backend`, `--device` (auto, cpu or cuda) and `--precision` leave open.
    `quantization` None means a float build; `precision` narrows the set to one precision label
    (fp32, int8+bf16...). `--device auto` is a GroqChip (GroqFlow), else a CUDA GPU torch can
    use, else the CPU; on a GPU host, what builds nothing for the GPU runs on the CPU.
    `building` (--build): a named backend that can build here though it cannot run (GroqFlow
    with groq-devtools alone) is offered."""
    note = ""
    if backend == "auto":
        ok, why = backend_module("groqflow").available()
        if ok and device == "cuda":
            ok, why = False, "--device cuda asks for a GPU"
        if ok:
            found = list(backend_module("groqflow").candidates(device, quantization))
            return Offer(_narrowed(found, precision, device), "GroqFlow found the GroqWare Suite "
                         "and a GroqChip", "groqchip")
        note = f"GroqFlow not usable: {why}"
    if backend == "groqflow":  # its builds run on its GroqChips, whatever --device says
        return Offer(_narrowed(list(_named(backend, device, quantization, building)), precision,
                               device), note, "groqchip")
    preferred = resolve_device(device)
    tried = [preferred] + (["cpu"] if device == "auto" and preferred != "cpu" else [])
    for where in tried:
        found = list(_named(backend, where, quantization)) if backend != "auto" else \
            hosted(where, quantization)
        if precision != "auto" and backend == "auto" and where == "cuda" and \
                not any(c.label == precision for c in found):
            found = hosted(where, quantization, requested=True)  # fp32 on a GPU
        if found:
            break
    else:
        if backend != "auto":
            hint = ("--backend torch_compile builds for the GPU" if preferred == "cuda" else
                    "pass --backend onnxruntime")
            why = getattr(backend_module(backend), "why_none", lambda d: "")(preferred)
            raise UserError(f"{backend} builds nothing for --device {preferred} here"
                            + (f" ({why})" if why else "") + f"; {hint}")
        raise UserError(f"no installed backend builds for --device {preferred} ({note}); see "
                        "requirements.txt")
    if where != preferred:
        what = "INT8" if quantization is not None else backend
        note = "; ".join(filter(None, [note, f"no {what} build for the GPU here: it runs on "
                                             "the CPU"]))
    return Offer(_narrowed(found, precision, where), note, preferred)


def _narrowed(found: list[Candidate], precision: str, device: str) -> list[Candidate]:
    """The builds of one precision label, where --precision names one."""
    if precision == "auto":
        return found
    kept = [c for c in found if c.label == precision]
    if not kept:
        names = " and ".join(dict.fromkeys(c.backend for c in found))
        raise UserError(f"--precision {precision}: {names} on {device} "
                        f"build{'s' if ' and ' not in names else ''} "
                        f"{' or '.join(dict.fromkeys(c.label for c in found))} here")
    return kept


def with_accuracy_control(candidates: list[Candidate], min_agreement: float | None,
                          quantization: str | None, validation_samples: int) -> list[Candidate]:
    """With --min-agreement, the builds of backends that can keep layers in float to meet it; its
    validation slice is drawn beside the calibration samples, so static INT8 only, and must be
    large enough to show the target at all."""
    if min_agreement is None:
        return candidates
    if quantization != "static":
        raise UserError("--min-agreement searches calibrated (static) INT8; dynamic INT8 has no "
                        "calibration: drop --quantization dynamic")
    fidelity.check_slice(min_agreement, validation_samples)
    kept = [c for c in candidates if getattr(backend_module(c.backend), "ACCURACY_CONTROL", False)]
    if not kept:
        names = " and ".join(dict.fromkeys(c.backend for c in candidates))
        raise UserError(f"--min-agreement: {names} cannot keep layers in float to meet it; "
                        "OpenVINO and ONNX Runtime can: --backend openvino or onnxruntime")
    return kept


def compared_floats(candidates: list[Candidate], device: str, forced: bool = False
                    ) -> list[Candidate]:
    """The float builds that an INT8 trial times beside its candidates (never chosen), so that
    the run can say when INT8 buys no speed here: where it trials INT8 builds, those of the same
    host backends; on a GPU host whose INT8 runs on the CPU, unless the flags force the build, the
    GPU's float builds (beside a single INT8 build too)."""
    backends = [name for name in dict.fromkeys(c.backend for c in candidates)
                if not backend_module(name).STATIC_SHAPE]
    if not backends or candidates[0].precision != "int8":
        return []
    where = candidates[0].device
    floats = [c for name in backends for c in backend_module(name).candidates(where, None)] \
        if len(candidates) > 1 else []
    if device == "cuda" and where != device and not forced:
        floats += [c for c in hosted(device, None) if c not in floats]
    return floats
