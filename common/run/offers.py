"""Which builds a run considers, from `--backend`, `--device` and `--precision`: the run's device
resolved once (a GroqChip, else a CUDA GPU torch can use, else the CPU), each backend asked what it
offers there (`Backend.offers`), narrowed by the flags; `auto`'s policy: GroqFlow alone where the
GroqWare Suite and a GroqChip are here, else every build the host backends offer, one of which a
measured trial picks (common/run/trial.py)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..backends import backend_module, usable
from ..backends.base import Candidate
from ..builds import fidelity
from ..host.errors import UserError
from ..host.gpu import resolve_device

HOST_BACKENDS = ("openvino", "onnxruntime", "torch_compile")  # what runs where GroqFlow does not


@dataclass(frozen=True)
class Offer:
    """The builds the flags leave open, how that set was made, and the accelerator of the run:
    cuda where a GPU was asked for or found, groqchip for GroqFlow, else cpu. A build the GPU
    lacks (INT8, a CPU-only backend) runs on the CPU of a GPU host; its device says so.
    `fallback`: where `--device auto` found a GPU and every build is the GPU's, the builds the
    same flags leave on the CPU, run should every GPU build fail."""
    candidates: list
    note: str
    device: str
    fallback: list = field(default_factory=list)


def _named(name: str, device: str, quantization: str | None, building: bool = False
           ) -> tuple[Candidate, ...]:
    """An explicitly named backend's builds on `device`, every one (`building`: to be built
    only, for --build)."""
    module = usable(name, building)
    if quantization is not None and quantization not in module.QUANTIZATIONS:
        raise UserError(f"--quantization {quantization} is not built by {name} (it builds "
                        f"{', '.join(module.QUANTIZATIONS) or 'no INT8'}); pass --backend "
                        "onnxruntime")
    return module.offers(device, quantization).every


def hosted(device: str, quantization: str | None, requested: bool = False) -> list[Candidate]:
    """What `auto` trials on `device` where GroqFlow does not run: every installed host
    backend's trialled builds there (`requested`: their builds made on request too)."""
    modules = [backend_module(n) for n in HOST_BACKENDS if backend_module(n).available()[0]]
    offers = [module.offers(device, quantization) for module in modules]
    return [c for offer in offers for c in (offer.every if requested else offer.trialled)]


def candidates_for(backend: str, device: str, quantization: str | None,
                   precision: str = "auto", building: bool = False) -> Offer:
    """The builds `--backend`, `--device` (auto, cpu or cuda) and `--precision` leave open.
    `quantization` None means a float build; `precision` narrows the set to one precision label
    (fp32, int8+bf16...). On a GPU host, what builds nothing for the GPU runs on the CPU.
    `building` (--build): a named backend that can build here though it cannot run (GroqFlow
    with groq-devtools alone) is offered."""
    note = ""
    if backend == "auto":
        ok, why = backend_module("groqflow").available()
        if ok and device == "cuda":
            ok, why = False, "--device cuda asks for a GPU"
        if ok:
            found = list(backend_module("groqflow").offers(device, quantization).every)
            return Offer(_narrowed(found, precision, device), "GroqFlow found the GroqWare Suite "
                         "and a GroqChip", "groqchip")
        note = f"GroqFlow not usable: {why}"
    if backend == "groqflow":  # its builds run on its GroqChips, whatever --device says
        return Offer(_narrowed(list(_named(backend, device, quantization, building)), precision,
                               device), note, "groqchip")
    preferred = resolve_device(device)
    tried = [preferred] + (["cpu"] if device == "auto" and preferred != "cpu" else [])
    found_on = {where: _found(backend, where, quantization, precision) for where in tried}
    where = next((where for where in tried if found_on[where]), None)
    if where is None:
        if backend != "auto":
            hint = ("--backend torch_compile builds for the GPU" if preferred == "cuda" else
                    "pass --backend onnxruntime")
            why = backend_module(backend).offers(preferred, quantization).why_none
            raise UserError(f"{backend} builds nothing for --device {preferred} here"
                            + (f" ({why})" if why else "") + f"; {hint}")
        raise UserError(f"no installed backend builds for --device {preferred} ({note}); see "
                        "requirements.txt")
    if where != preferred:
        what = "INT8" if quantization is not None else backend
        note = "; ".join(filter(None, [note, f"no {what} build for the GPU here: it runs on "
                                             "the CPU"]))
    fallback = []
    if where == "cuda" and device == "auto":
        try:
            fallback = _narrowed(found_on["cpu"], precision, "cpu")
        except UserError:  # --precision names a build the CPU lacks: no fallback
            pass
    return Offer(_narrowed(found_on[where], precision, where), note, preferred, fallback)


def _found(backend: str, where: str, quantization: str | None, precision: str) -> list:
    """The builds on `where` before --precision narrows them: a named backend's every build,
    `auto`'s trialled ones (and, for a precision the GPU trials none of, its on-request ones:
    fp32 on a GPU)."""
    if backend != "auto":
        return list(_named(backend, where, quantization))
    found = hosted(where, quantization)
    if precision != "auto" and where == "cuda" and not any(c.label == precision for c in found):
        found = hosted(where, quantization, requested=True)
    return found


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
    kept = [c for c in candidates if backend_module(c.backend).ACCURACY_CONTROL]
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
    if not backends or not candidates[0].int8:
        return []
    where = candidates[0].device
    floats = [c for name in backends for c in backend_module(name).offers(where, None).trialled] \
        if len(candidates) > 1 else []
    if device == "cuda" and where != device and not forced:
        floats += [c for c in hosted(device, None) if c not in floats]
    return floats
