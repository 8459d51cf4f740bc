"""The GPU: whether torch can use one here, which device `--device auto` means, what the GPU is
(recorded beside every figure measured on it, as the CPU is) and how much of its memory a build
used. The one place that asks torch about CUDA, so tests can put a simulated GPU here."""
from __future__ import annotations

import subprocess
from functools import lru_cache
from typing import Optional

from .errors import UserError

DEVICES = ("auto", "cpu", "cuda")


def cuda_problem() -> Optional[str]:
    """Why torch cannot use a CUDA GPU here (None where it can)."""
    import torch

    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) is built without CUDA"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} (CUDA {torch.version.cuda}) finds no usable GPU"
    return None


def resolve_device(requested: str) -> str:
    """cpu or cuda: `auto` is a CUDA GPU where torch can use one, else the CPU (a GroqChip,
    which comes first, is GroqFlow's to find); `cuda` where torch cannot use one is one line."""
    if requested == "cpu":
        return "cpu"
    problem = cuda_problem()
    if requested == "cuda" and problem is not None:
        raise UserError(f"--device cuda: {problem}; leave --device out to run on the CPU")
    return "cuda" if problem is None else "cpu"


def torch_device(device: str):
    """The torch device a build on `device` (cpu or cuda) runs on."""
    import torch

    return torch.device(device)


def _driver_version() -> str:
    """The NVIDIA driver's version as nvidia-smi reports it, else "unknown"."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.strip().splitlines()[0] if out.strip() else "unknown"


@lru_cache(maxsize=None)
def gpu_info() -> Optional[dict]:
    """The GPU torch runs on (device 0): name, memory, compute capability, driver and CUDA
    versions as the driver and torch report them; None where torch can use none."""
    if cuda_problem() is not None:
        return None
    import torch

    props = torch.cuda.get_device_properties(0)
    return {"name": props.name, "memory_bytes": int(props.total_memory),
            "compute_capability": f"{props.major}.{props.minor}",
            "multiprocessors": int(props.multi_processor_count), "driver": _driver_version(),
            "cuda_runtime": torch.version.cuda, "devices": torch.cuda.device_count()}


def gpu_summary(info: dict) -> str:
    """One line for under the table, like the CPU's."""
    return (f"GPU: {info['name']}, {info['memory_bytes'] / 2**30:.0f} GiB, compute capability "
            f"{info['compute_capability']}, driver {info['driver']}, CUDA {info['cuda_runtime']}"
            + (f" (device 0 of {info['devices']})" if info["devices"] > 1 else ""))


def native_bf16() -> bool:
    """Whether the GPU has bf16 arithmetic of its own (compute capability 8.0 on), not counting
    the emulation `is_bf16_supported()` admits by default, which Triton fails to compile for on a
    T4 or V100."""
    import torch

    return torch.cuda.is_bf16_supported(including_emulation=False)


def identity() -> Optional[dict]:
    """What compiled GPU code depends on: the GPU's name and compute capability (None without
    one)."""
    info = gpu_info()
    return None if info is None else {"name": info["name"],
                                      "compute_capability": info["compute_capability"]}


class PeakMemory:
    """The GPU's peak memory over a stretch of a runner's calls (nothing off the GPU): allocated
    (tensors) and reserved (the caching allocator's, CUDA graphs' private pools included).
    Everything resident then counts, the runner's weights, graphs and activations, and any other
    build's. Reset before and read after the stretch, never inside a timed call."""

    def __init__(self, device: str) -> None:
        self.cuda, self.peaks = None, {}
        if device == "cuda":  # a runner's device: cpu, cuda, or a GroqChip's
            import torch

            self.device = torch_device(device)
            self.cuda = torch.cuda if self.device.type == "cuda" else None

    def __enter__(self) -> "PeakMemory":
        if self.cuda is not None:
            self.cuda.synchronize(self.device)
            self.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda is not None:
            self.cuda.synchronize(self.device)
            self.peaks = {"gpu_peak_allocated_bytes": int(self.cuda.max_memory_allocated(self.device)),
                          "gpu_peak_reserved_bytes": int(self.cuda.max_memory_reserved(self.device))}
