"""What this CPU is and which matrix engines it has: every speed figure is recorded beside it."""
from __future__ import annotations

import math
import os
import platform
from functools import lru_cache
from pathlib import Path

# the instruction sets that decide which precisions run fast
MATRIX_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16",
                "amx_int8", "avx512_fp16")


@lru_cache(maxsize=None)
def cpu_info() -> dict:
    """{"model", "family", "logical_cpus", "flags"} read from /proc/cpuinfo where it exists. The
    family and model numbers tell apart CPUs a VM names alike ("AMD EPYC")."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    flags = set(fields.get("flags", "").split())
    family = (f"family {fields['cpu family']} model {fields['model']}"
              if "cpu family" in fields and "model" in fields else "")
    return {"model": fields.get("model name") or platform.processor() or platform.machine(),
            "family": family, "logical_cpus": os.cpu_count(),
            "flags": [f for f in MATRIX_FLAGS if f in flags]}


def cpu_identity() -> dict:
    """The CPU as a measurement made on it depends on: its model, family and model numbers, and
    matrix flags (whose kernels ran, whose rounding the answers carry)."""
    info = cpu_info()
    return {"cpu": info["model"], "family": info["family"], "flags": info["flags"]}


def _cgroup_quota() -> float | None:
    """CPUs granted by the container's CPU quota (cgroup v2 cpu.max, or v1 cfs), None if unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            root = Path("/sys/fs/cgroup/cpu")
            quota = (root / "cpu.cfs_quota_us").read_text().strip()
            period = (root / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    try:
        return None if quota in ("max", "-1") else int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def physical_cores(cpus: set[int], sysfs: Path = Path("/sys/devices/system/cpu")) -> int | None:
    """How many distinct cores these logical CPUs are (the hyper-threads of one core count once),
    from sysfs; None where the topology cannot be read."""
    cores = set()
    for cpu in cpus:
        topology = sysfs / f"cpu{cpu}" / "topology"
        try:
            cores.add(((topology / "physical_package_id").read_text().strip(),
                       (topology / "core_id").read_text().strip()))
        except OSError:
            return None
    return len(cores) or None


@lru_cache(maxsize=None)
def thread_budget() -> dict:
    """How many threads every runner gets: the physical cores among the CPUs this process may run
    on (its affinity mask; torch and OpenVINO default to one thread per core, not per
    hyper-thread), capped by the container's CPU quota; with the figures it was decided from."""
    logical = os.cpu_count() or 1
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(logical))
    cores = physical_cores(allowed)
    quota = _cgroup_quota()
    usable = cores or len(allowed)
    threads = max(1, min(usable, math.ceil(quota) if quota else usable))
    return {"threads": threads, "logical_cpus": logical, "affinity_cpus": len(allowed),
            "physical_cores_in_affinity": cores, "cgroup_quota_cpus": quota,
            "rule": "min(physical cores among the CPUs in this process's affinity mask (its CPUs "
                    "where the topology is unreadable), ceil(cgroup CPU quota))"}


def usable_cpus() -> int:
    return thread_budget()["threads"]


def cpu_summary() -> str:
    """One line for under the table: the CPU, its threads and its matrix instruction sets."""
    info = cpu_info()
    family = f" ({info['family']})" if info["family"] else ""
    return (f"CPU: {info['model']}{family}, {usable_cpus()} of {info['logical_cpus']} logical CPUs "
            f"used, {' '.join(info['flags']) or 'no AVX2/AVX-512/AMX'}")
