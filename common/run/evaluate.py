"""The accuracy pass, then timing: runners in alternation over several rounds, and batch-1 latency.

Shared machines are noisy: one pass of each runner, one after the other, can report 1.5x or 2.2x
for the same build. The speed-up is therefore taken round by round (reference, built, reference,
built, ...) and reported as the median with its range.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..backends.base import Runner
from ..builds.metrics import agreement_figures, spread
from ..host import gpu
from ..host.progress import progress_bar
from ..inputs.batching import Batch, Batches, Encoded, make_batches

UNSTEADY_SPREAD = 1.5  # slowest round over fastest: past this the machine was busy
TIMING_BUDGET_S = 4.0  # reference seconds per round; a larger model times a subset of sentences
BATCH1_SENTENCES = 32
# A GPU runs SST-2 in milliseconds: a round on it repeats the pass until this many seconds have
# passed, so that timer resolution, a launch hiccup or the clock ramping up after a CPU pass do
# not decide its figure (round seconds are then per pass; `passes_per_round` says how many)
GPU_ROUND_FLOOR_S = 1.0
clock = time.perf_counter  # the clock of every timing: the rounds' and the trial's (tests set their own)


@dataclass(frozen=True)
class Evaluation:
    runner: Runner
    logits: np.ndarray  # [samples, labels], dataset order
    seconds: float  # the accuracy pass, for choosing how much to time
    batch_seconds: tuple = ()  # each batch's seconds in that pass, where measured
    shapes: frozenset = frozenset()  # the input shapes it met, warm-up included

    @property
    def predictions(self) -> np.ndarray:
        return self.logits.argmax(axis=1)


def shape(batch: Batch) -> tuple:
    return tuple(batch["input_ids"].shape)


def evaluate(runner: Runner, batches: Batches) -> Evaluation:
    """One untimed warm-up batch on the path a pass takes, then one pass over every batch: the
    logits the metrics use. On a GPU, the peak memory of that pass goes into the runner's
    `runtime` (read here, outside every timed pass)."""
    runner.run_all(batches.inputs[:1])
    with progress_bar(f"eval {runner.name}", len(batches.inputs), "batch") as bar, \
            gpu.PeakMemory(runner.device) as memory:
        start = time.perf_counter()
        outputs, batch_seconds = runner.run_all(batches.inputs, bar.update)
        seconds = time.perf_counter() - start
    runner.runtime.update(memory.peaks)
    labels = outputs[0].shape[1] if outputs and np.ndim(outputs[0]) == 2 else 0
    for batch, out in zip(batches.inputs, outputs):
        if out.shape != (len(batch["input_ids"]), labels) or labels < 2:
            raise RuntimeError(f"{runner.name} returned logits of shape {out.shape}")
    return Evaluation(runner, batches.scatter(outputs).astype(np.float32), seconds,
                      tuple(batch_seconds or ()), frozenset(map(shape, batches.inputs)))


@dataclass(frozen=True)
class Timing:
    """Seconds of a pass over the same sentences, per round; per-batch and batch-1 latencies
    where measured; the passes each round took (more than one on a GPU)."""
    round_seconds: list
    sentences: int
    batch_ms: Optional[np.ndarray]
    batch1_ms: Optional[np.ndarray]
    passes: list

    def throughputs(self) -> list:
        return [self.sentences / s for s in self.round_seconds]


def timed_rows(lengths: Sequence[int], seconds_per_sentence: float, every: bool = False
               ) -> np.ndarray:
    """Which sentences the rounds time: all (`every`, or when they fit), or as many as
    TIMING_BUDGET_S of reference time allows, spread evenly over the length distribution.
    Dataset row numbers, ascending."""
    count = len(lengths)
    keep = count if every else \
        min(count, max(1, int(TIMING_BUDGET_S / max(seconds_per_sentence, 1e-9))))
    if keep == count:
        return np.arange(count)
    by_length = np.argsort(np.asarray(lengths), kind="stable")
    return np.sort(by_length[np.linspace(0, count - 1, keep).round().astype(int)])


def subset(encoded: Encoded, rows: np.ndarray) -> Encoded:
    return Encoded(ids=[encoded.ids[i] for i in rows], type_ids=[encoded.type_ids[i] for i in rows],
                   max_length=encoded.max_length, pad_id=encoded.pad_id)


def batch1_latencies(runner: Runner, batches: Batches) -> np.ndarray:
    """Milliseconds of one call per sentence (batches of one), after an untimed call on each (a
    backend that compiles per input shape pays that once, as a service would)."""
    for batch in batches.inputs:
        runner(batch)
    latencies = []
    for batch in batches.inputs:
        start = time.perf_counter()
        runner(batch)
        latencies.append(time.perf_counter() - start)
    return np.asarray(latencies) * 1000.0


def measure(runs: Sequence[tuple[Runner, Batches, Optional[Batches]]], sentences: int,
            rounds: int, desc: str = "timing") -> list[Timing]:
    """Timing of each (runner, its batches of the timed sentences, its batch-1 inputs or None):
    `rounds` passes each, the runners taking turns in every round so drift hits them alike, and a
    different one going first in each round (the first pass after another runner can run cold).
    A runner on a GPU repeats its pass within a round for at least GPU_ROUND_FLOOR_S."""
    seconds: list = [[] for _ in runs]
    passes: list = [[] for _ in runs]
    batch_seconds: list = [[] for _ in runs]
    with progress_bar(desc, rounds * len(runs), "pass") as bar:
        for round_ in range(rounds):
            for step in range(len(runs)):
                i = (round_ + step) % len(runs)
                runner, batches, _ = runs[i]
                floor = GPU_ROUND_FLOOR_S if runner.device == "cuda" else 0.0
                count, start = 0, clock()
                while count == 0 or clock() - start < floor:
                    _, per_batch = runner.run_all(batches.inputs)
                    count += 1
                    if per_batch is None:
                        batch_seconds[i] = None
                    elif batch_seconds[i] is not None:
                        batch_seconds[i].extend(per_batch)
                seconds[i].append((clock() - start) / count)
                passes[i].append(count)
                bar.update()
    return [Timing(round_seconds=seconds[i], sentences=sentences,
                   batch_ms=None if batch_seconds[i] is None
                   else np.asarray(batch_seconds[i]) * 1000.0,
                   batch1_ms=None if single is None else batch1_latencies(runner, single),
                   passes=passes[i])
            for i, (runner, _, single) in enumerate(runs)]


def warm_unseen(evaluation: Evaluation, batches: Batches) -> None:
    """One untimed call on each shape of `batches` the runner's accuracy pass did not meet (a
    timed subset's batches are other shapes), so that no compile or CUDA-graph capture lands in
    a timed round."""
    unseen = {shape(b): b for b in batches.inputs if shape(b) not in evaluation.shapes}
    if unseen:  # none for a static shape; a pass of nothing would still start GroqFlow's process
        evaluation.runner.run_all(list(unseen.values()))


def time_both(reference: Evaluation, built: Evaluation, encoded: Encoded, batch_size: int,
              rounds: int, static_shape: bool) -> tuple[list, dict]:
    """Both runners in alternation over the same sentences (all, or an evenly spread subset that
    keeps a large model's rounds short; all for a runner timed in whole passes, as GroqFlow's
    run_abunch is), and their batch-1 latency at the built model's input length on a fixed few
    sentences. Returns their Timings and what was timed."""
    rows = timed_rows([len(ids) for ids in encoded.ids], reference.seconds / len(encoded),
                      every=not built.runner.single_calls)
    timed = subset(encoded, rows)
    spread = np.linspace(0, len(rows) - 1, min(BATCH1_SENTENCES, len(rows))).round().astype(int)
    single = make_batches(subset(encoded, rows[spread]), 1, static_shape=static_shape)
    built_batches = make_batches(timed, batch_size, static_shape=static_shape)
    warm_unseen(built, built_batches)  # eager PyTorch, the reference, compiles nothing per shape
    runs = [(reference.runner, make_batches(timed, batch_size), single),
            (built.runner, built_batches, single if built.runner.single_calls else None)]
    return measure(runs, len(rows), rounds), {
        "rounds": rounds, "sentences": len(rows), "of": len(encoded),
        "selection": "all" if len(rows) == len(encoded) else "evenly spread over sentence lengths",
        "batch1_sentences": len(single.inputs),
        "batch1_input_length": encoded.max_length if static_shape else "each sentence's own"}


def _percentiles(milliseconds: Optional[np.ndarray]) -> Optional[dict]:
    if milliseconds is None:
        return None
    return {f"p{q}": float(np.percentile(milliseconds, q)) for q in (50, 90, 99)}


def confusion(rows: np.ndarray, columns: np.ndarray, classes: int) -> list[list[int]]:
    """counts[i][j]: sentences of class i in `rows` that are class j in `columns`."""
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (rows, columns), 1)
    return counts.tolist()


def run_metrics(evaluation: Evaluation, timing: Timing, labels: np.ndarray, role: str,
                reference: Optional[Evaluation] = None,
                reference_timing: Optional[Timing] = None) -> dict:
    """One entry of the results' `runs` list."""
    runner = evaluation.runner
    batch = _percentiles(timing.batch_ms)
    in_flight = batch is not None and runner.in_flight > 1
    entry = {
        "name": runner.name, "role": role, "backend": runner.backend, "device": runner.device,
        "precision": runner.precision,
        "accuracy": float((evaluation.predictions == labels).mean()),
        "agreement": None, "max_abs_logit_diff": None, "speedup": None,
        "build_seconds": runner.build_seconds, "cache_hit": runner.cache_hit,
        "throughput": spread(timing.throughputs()),
        "round_seconds": timing.round_seconds, "passes_per_round": timing.passes,
        "unsteady": max(timing.round_seconds) > UNSTEADY_SPREAD * min(timing.round_seconds),
        # three latencies, each only where it was measured: a batch run alone; a batch run with
        # others in flight (launch to result); one sentence per call
        "serial_batch_latency_ms": None if in_flight else batch,
        "in_flight_batch_latency_ms": {**batch, "in_flight": runner.in_flight} if in_flight else None,
        "batch1_latency_ms": _percentiles(timing.batch1_ms),
    }
    if reference is not None:
        agreeing, entry["max_abs_logit_diff"] = agreement_figures(evaluation.logits,
                                                                  reference.logits)
        entry["agreement"] = agreeing / len(reference.logits)
    classes = evaluation.logits.shape[1]
    if classes > 2:  # which classes a build trades for which: rows the truth, columns the answer
        entry["confusion_against_labels"] = confusion(labels, evaluation.predictions, classes)
        if reference is not None:
            entry["confusion_against_reference"] = confusion(
                reference.predictions, evaluation.predictions, classes)
    if reference_timing is not None:  # round by round: both ran back to back
        entry["speedup"] = spread([r / b for r, b in zip(reference_timing.round_seconds,
                                                          timing.round_seconds)])
    if runner.files:
        entry["files"] = runner.files
    if runner.facts:
        entry["build_facts"] = runner.facts
    if runner.runtime:
        entry["runtime"] = runner.runtime
    return entry
