"""`auto`, decided by measurement on this host: which build is fast is what it does here, not what
the CPU or a library lists (a Xeon whose AMX a VM hides lists bf16 and runs it at half fp32's rate).

Every candidate build is timed on a few of the run's own batches, spread over their lengths and each
cut in as many pieces as a backend keeps in flight, in interleaved rounds (so drift hits them
alike), and checked against the reference's answers on the same sentences; the fastest that agrees
is chosen. A build far slower than the reference in its first pass is dropped, not timed. The
decision is cached for this host, weights, library versions and candidate set, so a second run does
not trial again.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from .backends import versions_of
from .backends.base import Candidate, Runner
from .batching import Batches
from .cache import BuildCache, cache_key
from .cpu import cpu_info, usable_cpus
from .errors import UserError
from .evaluate import Evaluation, measure

AGREEMENT = {"float": 0.995, "int8": 0.95}  # INT8's gate catches a broken build; its fidelity is
# the quantize proof point's own question, answered on every sentence
TRIAL_REFERENCE_SECONDS = 0.5  # the reference's time over the trial batches, at most (but 1 batch)
TRIAL_BATCHES = 4
TRIAL_ROUNDS = 2  # 3 cost 10.3% of a first BERT-base-shaped run here (bench/trial_cost.py)
SAME_SPEED = 0.03  # medians this close are within a short trial's noise: agreement decides
# A build whose first pass would take longer than this many times the reference's seconds on the
# trial sentences (at least FIRST_PASS_FLOOR_S) is not timed: measured, OpenVINO INT8 with an fp16
# remainder on an AMX Xeon that lists FP16 ran a 16-sentence batch in 32 s, 1000x the others, and
# the trial would have spent many minutes on it. Its one-time costs (a first call) do not count.
FIRST_PASS_LIMIT = 10
FIRST_PASS_FLOOR_S = 2.0
CHOICE_ENTRY = "choice"


@dataclass
class Choice:
    """The build that runs, and the JSON's record of how it was chosen."""
    candidate: Candidate
    runner: Runner
    record: dict

    def banner(self) -> str:
        """One line: what was chosen, and on what evidence."""
        rec = self.record
        ran = f"{self.runner.backend} {self.runner.precision}"  # read back, not the request
        if not rec["trial"]:
            return f"backend: {ran} ({rec['why']})"
        speeds = {c["candidate"]: c.get("sent_per_s") for c in rec["candidates"]}
        runner_up = rec["runner_up"]
        against = (f"; runner-up {runner_up} {speeds[runner_up]:.0f} sent/s" if runner_up else "")
        dropped = [c["candidate"] for c in rec["candidates"] if "dropped" in c]
        against += f"; too slow to time: {', '.join(dropped)}" if dropped else ""
        how = ("cached trial" if rec["cached"] else f"trial of {rec['trial_seconds']:.1f} s") + \
            f" on {rec['trial_sentences']} sentences"
        return (f"backend: {ran}, {speeds[rec['chosen']]:.0f} sent/s{against} "
                f"({how}; {rec['why']})")


def host() -> dict:
    """What a decision is valid for: the CPU model and family, its matrix flags, the threads the
    runners get."""
    info = cpu_info()
    return {"cpu": info["model"], "family": info["family"], "flags": info["flags"],
            "threads": usable_cpus()}


def trial_batches(batches: Batches, reference: Evaluation) -> list[int]:
    """Which of the run's (length-sorted) batches the trial times: as many as fit in
    TRIAL_REFERENCE_SECONDS of the reference's accuracy pass (1 to TRIAL_BATCHES), evenly spread
    over the sentence lengths, the shortest and the last (partial) batch left out."""
    count = len(batches.inputs)
    per_batch = statistics.median(reference.batch_seconds) if reference.batch_seconds else 0.0
    wanted = int(TRIAL_REFERENCE_SECONDS / per_batch) if per_batch > 0 else TRIAL_BATCHES
    wanted = max(1, min(TRIAL_BATCHES, wanted, count))
    spread = np.linspace(0, count - 1, wanted + 2)[1:-1] if count > 2 else np.arange(count)[:wanted]
    return sorted(set(int(round(i)) for i in spread))


def _agreement(outputs: list, expected: list) -> tuple[float, float]:
    got, want = np.concatenate(outputs), np.concatenate(expected)
    return (float((got.argmax(axis=1) == want.argmax(axis=1)).mean()),
            float(np.abs(got - want).max()))


def first_pass(runner: Runner, pieces: Sequence[dict], budget: float
               ) -> tuple[Optional[list], float]:
    """The runner's answers on every piece (None where the pass would run past `budget` seconds:
    it stops there) and the sentences/s it ran at. One sentence is run twice first: the first call
    bears the one-time costs (first shapes, a device's start-up) and is not counted, the second
    bounds a sentence's cost, so that a very slow build stops after seconds, not after a piece."""
    one = {name: array[:1] for name, array in pieces[0].items()}
    runner.run_all([one])
    start = time.perf_counter()
    runner.run_all([one])
    done, outputs = 1, []
    for piece in pieces:
        elapsed = time.perf_counter() - start
        if elapsed + elapsed / done * len(piece["input_ids"]) > budget:
            return None, done / elapsed
        outputs += runner.run_all([piece])[0]
        done += len(piece["input_ids"])
    return outputs, done / (time.perf_counter() - start)


def _run_trial(candidates: Sequence[Candidate], runners: dict, batches: Batches,
               reference: Evaluation, kind: str) -> dict:
    """Agreement and interleaved timing of every built candidate on the trial batches."""
    chosen_batches = trial_batches(batches, reference)
    # a backend that keeps batches in flight (OpenVINO's throughput streams, one core each) is
    # measured with as many batches as it keeps in flight: one whole batch would leave cores idle
    pieces = max(2, *(runners[c].in_flight for c in candidates))
    inputs, rows = [], []
    for i in chosen_batches:
        for part in np.array_split(np.arange(len(batches.rows[i])), pieces):
            if len(part):
                inputs.append({name: array[part] for name, array in batches.inputs[i].items()})
                rows.append(batches.rows[i][part])
    trial = Batches(inputs=inputs, rows=rows, count=batches.count)
    sentences = sum(len(rows) for rows in trial.rows)
    expected = [reference.logits[rows] for rows in trial.rows]
    reference_seconds = sum(reference.batch_seconds[i] for i in chosen_batches)
    budget = max(FIRST_PASS_FLOOR_S, FIRST_PASS_LIMIT * reference_seconds)
    entries, timed = {}, []
    for candidate in candidates:  # the untimed first pass: warms every shape, gives the answers
        entries[candidate] = {"candidate": str(candidate), "backend": candidate.backend,
                              "precision": candidate.label, "ran": runners[candidate].name}
        outputs, rate = first_pass(runners[candidate], trial.inputs, budget)
        if outputs is None:
            entries[candidate].update(first_pass_sent_per_s=rate, dropped=(
                f"{rate:.1f} sent/s in its first pass: the trial sentences would take over "
                f"{budget:.1f} s ({FIRST_PASS_LIMIT}× the reference's {reference_seconds:.2f} s, "
                f"at least {FIRST_PASS_FLOOR_S:.0f} s); not timed"))
            continue
        agreement, gap = _agreement(outputs, expected)
        entries[candidate].update(agreement=agreement, max_abs_logit_diff=gap)
        timed.append(candidate)
    if not timed:
        rates = "; ".join(f"{e['candidate']} {e['first_pass_sent_per_s']:.1f} sent/s"
                          for e in entries.values())
        raise UserError(f"every build ran over {FIRST_PASS_LIMIT}× slower than PyTorch in its first "
                        f"trial pass ({rates}); pass --backend and --precision to run one anyway")
    timings = measure([(runners[c], trial, None) for c in timed], sentences, TRIAL_ROUNDS,
                      desc="trial")
    for candidate, timing in zip(timed, timings):
        speeds = timing.throughputs()
        entries[candidate].update(sent_per_s=statistics.median(speeds), sent_per_s_min=min(speeds),
                                  sent_per_s_max=max(speeds))
    measured = [entries[c] for c in timed]
    threshold = AGREEMENT[kind]
    agreeing = [e for e in measured if e["agreement"] >= threshold]
    if agreeing:
        top = max(e["sent_per_s"] for e in agreeing)
        fastest = [e for e in agreeing if e["sent_per_s"] >= (1 - SAME_SPEED) * top]
        chosen = max(fastest, key=lambda e: (e["agreement"], e["sent_per_s"]))
        why = (f"the fastest agreeing with the reference on ≥ {threshold:.1%} of the trial "
               f"sentences; within {SAME_SPEED:.0%} of the fastest, the one agreeing most")
    else:
        chosen = max(measured, key=lambda e: (e["agreement"], e["sent_per_s"]))
        why = (f"none agreed with the reference on ≥ {threshold:.1%} of the trial sentences; "
               "the closest")
    others = sorted((e for e in measured if e is not chosen), key=lambda e: -e["sent_per_s"])
    return {"trial": True, "candidates": list(entries.values()), "chosen": chosen["candidate"],
            "runner_up": others[0]["candidate"] if others else None, "why": why,
            "agreement_threshold": threshold, "trial_sentences": sentences,
            "trial_batches": len(chosen_batches), "pieces_per_batch": pieces,
            "rounds": TRIAL_ROUNDS,
            "reference_sent_per_s": sentences / reference_seconds,
            "reference_speed_from": "the reference's accuracy pass over the same batches"}


def choose(candidates: Sequence[Candidate], build: Callable[[Candidate], Runner],
           reference: Evaluation, batches: Batches, cache: BuildCache, context: dict,
           why_single: str = "the only build the flags leave") -> Choice:
    """The build to run, of `candidates`: the only one, the one a cached trial chose for this
    host, or a trial's choice. `context` holds what the decision depends on besides the host and
    the candidates (weights, batching, calibration); `--rebuild always` trials again."""
    if len(candidates) == 1:
        (candidate,) = candidates
        return Choice(candidate, build(candidate), {
            "trial": False, "candidates": [{"candidate": str(candidate), "backend": candidate.backend,
                                            "precision": candidate.label}],
            "chosen": str(candidate), "why": why_single, "cached": False, "trial_seconds": 0.0})
    kind = "int8" if candidates[0].precision == "int8" else "float"
    key_parts = {"host": host(), "candidates": [str(c) for c in candidates],
                 "versions": versions_of(candidates),
                 "kind": kind, **context}
    runners: dict = {}

    def run_trial(folder) -> dict:
        start, building = time.perf_counter(), cache.seconds_building
        for candidate in candidates:
            runners[candidate] = build(candidate)
        building = cache.seconds_building - building
        record = _run_trial(candidates, runners, batches, reference, kind)
        for entry, candidate in zip(record["candidates"], candidates):
            entry.update(build_seconds=runners[candidate].build_seconds,
                         cache_hit=runners[candidate].cache_hit)
        wall = time.perf_counter() - start
        return {**record, "trial_seconds": wall - building, "wall_seconds": wall,
                "trial_seconds_cover": "compiling, warming and timing the candidates; the builds "
                                       "made for them (cached for later runs) are the rest of "
                                       "wall_seconds",
                "kind": kind, "host": key_parts["host"], "weights": context.get("weights")}

    policy = "always" if cache.rebuild == "always" else "if_needed"  # a trial builds nothing new
    decided = BuildCache(cache.root, policy).get_or_build(CHOICE_ENTRY, cache_key(key_parts),
                                                          run_trial)
    record = {**decided.state["facts"], "cached": decided.hit}
    candidate = next(c for c in candidates if str(c) == record["chosen"])
    runner = runners.get(candidate) or build(candidate)
    runners.clear()  # the losers' compiled models are freed here
    return Choice(candidate, runner, record)


def cached_decisions(cache: BuildCache, weights: str, kind: str) -> list[dict]:
    """Trial records for these weights on this host, e.g. the INT8 proof point's, from the cache."""
    here = host()
    return [r for r in cache.records(CHOICE_ENTRY)
            if (r.get("kind"), r.get("weights"), r.get("host")) == (kind, weights, here)]


def trial_figure(record: dict) -> tuple[dict, float]:
    """A trial's chosen candidate and its speed as a multiple of the reference's on the same
    sentences."""
    chosen = next(c for c in record["candidates"] if c["candidate"] == record["chosen"])
    return chosen, chosen["sent_per_s"] / record["reference_sent_per_s"]


def int8_hint(cache: BuildCache, weights: str) -> Optional[str]:
    """What INT8 measured here for these weights, if the quantize proof point has run (the build
    named as it ran, read back, not as the candidate asked)."""
    for record in cached_decisions(cache, weights, "int8"):
        chosen, ratio = trial_figure(record)
        return (f"bert_quantize.py's trial measured {chosen['ran']} at {ratio:.1f}× the "
                f"reference (agreement {chosen['agreement']:.3f} on {record['trial_sentences']} "
                "sentences)")
    return None


def float_hint(cache: BuildCache, weights: str, int8_record: dict) -> Optional[str]:
    """Where the float proof point's trial for these weights on this host found a float build
    faster, against the reference, than this INT8 run's trial found INT8 (by more than a trial's
    noise, SAME_SPEED): the line that says so."""
    int8_chosen, int8_ratio = trial_figure(int8_record)
    for record in cached_decisions(cache, weights, "float"):
        chosen, ratio = trial_figure(record)
        if ratio > (1 + SAME_SPEED) * int8_ratio:
            return (f"bert_base.py's trial on this host measured {chosen['ran']} (no INT8) at "
                    f"{ratio:.1f}× the reference, agreement {chosen['agreement']:.3f} on "
                    f"{record['trial_sentences']} sentences: faster than this run's trial measured "
                    f"{int8_chosen['ran']} ({int8_ratio:.1f}×)")
    return None
