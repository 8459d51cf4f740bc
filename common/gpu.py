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


class PeakMemory:
    """The GPU's peak allocated bytes over a runner's calls (None off the GPU): everything
    resident then counts, the runner's weights, graphs and activations, and any other build's."""

    def __init__(self, device) -> None:
        import torch

        self.cuda = torch.cuda if device.type == "cuda" else None
        self.device = device
        self.peak: Optional[int] = None

    def __enter__(self) -> None:
        if self.cuda is not None:
            self.cuda.reset_peak_memory_stats(self.device)

    def __exit__(self, *exc) -> None:
        if self.cuda is not None:
            self.peak = max(self.peak or 0, int(self.cuda.max_memory_allocated(self.device)))
