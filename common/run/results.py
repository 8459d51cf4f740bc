"""The printed table and notes, and the results JSON, of a proof-point run."""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from ..host import gpu
from ..host.cpu import cpu_info, cpu_summary, thread_budget
from ..host.files import write_results_file
from ..host.provenance import package_versions
from . import schemas
from .trial import chosen_entry, speedup

# the results JSON's layout: docs/results.schema.json (a test validates every run's file against
# it); a change of layout is a new version
RESULTS_SCHEMA_VERSION = 1
COLUMNS = ("runner", "device", "precision", "accuracy", "agreement", "max|Δlogit|", "build s",
           "model MB", "sent/s (min–max)", "× reference (min–max)", "batch-1 ms")


def environment(extra_versions: dict[str, str]) -> dict:
    """What a reader needs to judge the timings: versions, CPU and its matrix flags, threads."""
    import torch

    info = cpu_info()
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpu": info["model"], "cpu_family": info["family"], "cpu_flags": info["flags"],
            "cpu_count": os.cpu_count(),
            "threads": thread_budget(), "torch_threads": torch.get_num_threads(),
            "gpu": gpu.gpu_info(),
            "versions": {**package_versions("numpy", "datasets", "tokenizers"), **extra_versions}}


def _build_cell(run: dict) -> str:
    if run["build_seconds"] is None:
        return "-"
    return f"{run['build_seconds']:.1f}" + (" (cached)" if run["cache_hit"] else "")


def _size_cell(run: dict) -> str:
    if not run.get("files"):
        return "-"
    cell = f"{sum(run['files'].values()) / 1e6:.1f}"
    fp32 = run.get("build_facts", {}).get("fp32_bytes")
    return cell + (f" (fp32 {fp32 / 1e6:.1f})" if fp32 else "")


def spread_cell(spread: dict | None, spec: str) -> str:
    """median (min–max)"""
    if spread is None:
        return "-"
    return (f"{format(spread['median'], spec)} ({format(spread['min'], spec)}–"
            f"{format(spread['max'], spec)})")


def _row(run: dict) -> tuple[str, ...]:
    def fmt(value, spec):
        return "-" if value is None else format(value, spec)

    batch1 = run["batch1_latency_ms"]
    on_card = run.get("build_facts", {}).get("groqflow_end_to_end_latency_ms")
    if batch1 is not None:
        batch1_cell = f"{batch1['p50']:.2f}"
    else:  # GroqFlow's own batch-1 figure, measured on the card by benchmark()
        batch1_cell = "-" if on_card is None else f"{on_card:.2f}*"
    whole_pass = "*" if on_card is not None else ""
    return (run["name"], run["device"], run["precision"], fmt(run["accuracy"], ".4f"),
            fmt(run["agreement"], ".4f"), fmt(run["max_abs_logit_diff"], ".2e"), _build_cell(run),
            _size_cell(run), spread_cell(run["throughput"], ".0f") + whole_pass,
            spread_cell(run["speedup"], ".2f") + whole_pass, batch1_cell)


def format_table(runs: list[dict]) -> str:
    rows = [COLUMNS] + [_row(run) for run in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) if i < 3 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_notes(document: dict) -> str:
    """What the table's speed figures cover, and the machine they were measured on."""
    timing = document["timing"]
    covered = (f"all {timing['of']} sentences" if timing["selection"] == "all" else
               f"{timing['sentences']} of {timing['of']} sentences, {timing['selection']}")
    lines = [f"speed: median of {timing['rounds']} rounds over {covered}, the runners taking turns; "
             f"batch-1 ms: median of {timing['batch1_sentences']} single-sentence calls at "
             f"{timing['batch1_input_length']} tokens"]
    for run in document["runs"]:
        facts = run.get("build_facts", {})
        if "groqflow_on_chip_latency_ms" in facts:
            lines.append(
                f"{run['name']}*: batch-1 ms is GroqFlow's end-to-end latency "
                f"{facts['groqflow_end_to_end_latency_ms']:.3f} ms "
                f"({facts['groqflow_end_to_end_ips']:.0f} IPS), benchmark(), 100 runs measured on "
                f"the card, beside the CPU's batch-1 latency as the original proof points compare; "
                f"on-chip latency {facts['groqflow_on_chip_latency_ms']:.3f} ms "
                f"({facts['groqflow_on_chip_ips']:.0f} IPS), estimate_performance().compute_latency, "
                "estimated from compiled cycle counts; sent/s and × reference: whole run_abunch "
                "passes over every sentence, process start, program load and file I/O included")
    for run in document["runs"]:
        if run.get("unsteady"):
            fastest, slowest = min(run["round_seconds"]), max(run["round_seconds"])
            lines.append(f"{run['name']}: its slowest round took {slowest / fastest:.1f}× its "
                         f"fastest: the machine was busy and the speed figures are unreliable; "
                         f"--repeats {max(9, 3 * timing['rounds'])} "
                         "narrows the median")
    return "\n".join(lines + document.get("notes", []) + [cpu_summary()] + gpu_lines(document))


def gpu_lines(document: dict) -> list[str]:
    """The GPU's line, like the CPU's, where a runner ran on it: what it is and the peak memory
    allocated and reserved during each GPU runner's accuracy pass."""
    on_gpu = [run for run in document["runs"] if run["device"] == "cuda"]
    info = document["environment"].get("gpu") if on_gpu else None
    if info is None:
        return []
    peaks = [f"{run['name']} {run['runtime']['gpu_peak_allocated_bytes'] / 2**20:.0f} MiB "
             f"allocated, {run['runtime']['gpu_peak_reserved_bytes'] / 2**20:.0f} MiB reserved"
             for run in on_gpu if (run.get("runtime") or {}).get("gpu_peak_allocated_bytes")]
    return [gpu.gpu_summary(info) + (f"; peak memory during the accuracy pass of "
                                     f"{', '.join(peaks)}" if peaks else "")]


def int8_hint(int8_decisions: list[dict]) -> str | None:
    """What INT8 measured here for these weights, from the quantize proof point's cached trial
    (the build named as it ran, read back, not as the candidate asked)."""
    for record in int8_decisions:
        chosen = chosen_entry(record)
        return (f"bert_quantize.py's trial measured {chosen['ran']} at "
                f"{speedup(record, chosen):.1f}× the reference "
                f"(agreement {chosen['agreement']:.3f} on {record['trial_sentences']} sentences)")
    return None


def float_as_fast_line(found: dict) -> str:
    """The line under an INT8 run's table when a float build of its own trial was as fast."""
    return (f"INT8 buys no speed here: in this run's trial {found['float']} (no INT8) ran at "
            f"{found['float_speedup']:.2f}× the reference, agreement {found['float_agreement']:.3f}, "
            f"and {found['int8']} at {found['int8_speedup']:.2f}×, agreement "
            f"{found['int8_agreement']:.3f}, on the same {found['sentences']} sentences")


def write_json(path: Path, document: dict) -> None:
    """The results JSON, checked against its schema first: written whole, or not at all."""
    schemas.check(document, schemas.RESULTS)
    write_results_file(path, json.dumps(document, indent=2) + "\n")
