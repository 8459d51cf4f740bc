"""What this CPU is and which matrix engines it has: every speed figure is recorded beside it."""
from __future__ import annotations

import os
import platform
from functools import lru_cache
from pathlib import Path

# the instruction sets that decide which precisions run fast
MATRIX_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16",
                "amx_int8", "avx512_fp16")


@lru_cache(maxsize=None)
def cpu_info() -> dict:
    """{"model", "logical_cpus", "flags"} read from /proc/cpuinfo where it exists."""
    model, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and not model:
                model = value.strip()
            elif key == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return {"model": model or platform.processor() or platform.machine(),
            "logical_cpus": os.cpu_count(), "flags": [f for f in MATRIX_FLAGS if f in flags]}


def cpu_summary() -> str:
    """One line for under the table: the CPU, its threads and its matrix instruction sets."""
    info = cpu_info()
    return (f"CPU: {info['model']}, {info['logical_cpus']} threads, "
            f"{' '.join(info['flags']) or 'no AVX2/AVX-512/AMX'}")
