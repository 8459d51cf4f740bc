"""Run a Runner over the batches, time every batch, and compare predictions with the reference."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from .progress import progress_bar

from .backends.base import Runner
from .batching import Batches


@dataclass(frozen=True)
class Evaluation:
    runner: Runner
    logits: np.ndarray  # [samples, 2], dataset order
    eval_seconds: float
    latencies_ms: np.ndarray  # one per batch

    @property
    def predictions(self) -> np.ndarray:
        return self.logits.argmax(axis=1)


def evaluate(runner: Runner, batches: Batches) -> Evaluation:
    """One untimed warm-up batch, then one timed pass over every batch."""
    runner(batches.inputs[0])
    with progress_bar(f"eval {runner.name}", len(batches.inputs), "batch") as bar:
        start = time.perf_counter()
        outputs, latencies = runner.run_all(batches.inputs, bar.update)
        seconds = time.perf_counter() - start
    for batch, out in zip(batches.inputs, outputs):
        if out.shape != (len(batch["input_ids"]), 2):
            raise RuntimeError(f"{runner.name} returned logits of shape {out.shape}")
    return Evaluation(runner, batches.scatter(outputs).astype(np.float32), seconds,
                      np.asarray(latencies) * 1000.0)


def run_metrics(evaluation: Evaluation, labels: np.ndarray, role: str,
                reference: Evaluation | None = None) -> dict:
    """One entry of the results' `runs` list."""
    runner = evaluation.runner
    n = len(labels)
    entry = {
        "name": runner.name, "role": role, "backend": runner.backend, "device": runner.device,
        "precision": runner.precision,
        "accuracy": float((evaluation.predictions == labels).mean()),
        "agreement": None, "max_abs_logit_diff": None,
        "build_seconds": runner.build_seconds, "cache_hit": runner.cache_hit,
        "eval_seconds": evaluation.eval_seconds,
        "throughput": n / evaluation.eval_seconds,
        "latency_ms": {f"p{q}": float(np.percentile(evaluation.latencies_ms, q)) for q in (50, 90, 99)},
    }
    if reference is not None:
        entry["agreement"] = float((evaluation.predictions == reference.predictions).mean())
        entry["max_abs_logit_diff"] = float(np.abs(evaluation.logits - reference.logits).max())
    if runner.files:
        entry["files"] = runner.files
    if runner.facts:
        entry["build_facts"] = runner.facts
    return entry
