"""`auto`, decided by measurement on this host: which build is fast is what it does here, not what
the CPU or a library lists (a Xeon whose AMX a VM hides lists bf16 and runs it at half fp32's rate).

Every candidate build is timed as the run will run it: on whole batches of the run (its batch
size), as many of them as the host's cores could keep in flight and at least TRIAL_BATCHES, spread
over their lengths, each backend keeping as many in flight as it does in the run (OpenVINO: its
infer requests; ONNX Runtime: one at a time), in interleaved rounds so drift hits them alike. Each
is checked against the reference's answers on the same sentences, and the fastest that passes the
gate is chosen. A build far slower than the reference in its first pass is dropped, not timed.
Builds that are only compared (the float builds beside INT8 ones) are timed alike, never chosen.
The decision is cached under everything it depends on (host, weights, data and trial sentences,
candidates and their recipes, library versions, this rule), so a second run does not trial again.
"""
from __future__ import annotations

import hashlib
import math
import sys
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from ..backends import versions_of
from ..backends.base import Candidate, Runner
from ..builds import pace
from ..builds.cache import BuildCache, cache_key
from ..builds.metrics import agreement_figures, spread
from ..host import interrupt
from ..host.cpu import cpu_identity, usable_cpus
from ..host.errors import BuildFailed, BuildTooSlow, NoBuildLeft, NotBuilt, UserError, root_cause
from ..inputs.batching import Batches
from . import evaluate
from .evaluate import Evaluation, measure

# The gate: a build passes when at most floor((1 - share) × n) + BOUNDARY of the n trial sentences
# answer otherwise than the reference. BOUNDARY: one sentence on the decision boundary never sends
# auto to a slower build (bench/float_flips.py measured how often bf16 flips a shared checkpoint's
# answer). INT8's share catches a broken build; with --min-agreement the share is the target.
SHARE = {"float": 0.995, "int8": 0.95}
BOUNDARY = 1
TRIAL_BATCHES = 4  # at least; more where the host's cores could keep more in flight
TRIAL_ROUNDS = 2  # 3 cost 10.3% of a first BERT-base-shaped run here (bench/trial_cost.py)
SAME_SPEED = 0.03  # medians this close are within a short trial's noise: agreement decides
# A build whose first pass would take longer than this many times the reference's seconds on the
# trial sentences (at least FIRST_PASS_FLOOR_S) is not timed: measured, OpenVINO INT8 with an fp16
# remainder on an AMX Xeon that lists FP16 ran a 16-sentence batch in 32 s, 1000x the others, and
# the trial would have spent many minutes on it. Its one-time costs (a first call) do not count.
FIRST_PASS_LIMIT = 10
FIRST_PASS_FLOOR_S = 2.0
# in every decision's cache key: a change of how the trial decides means a new trial
RULE = {"version": 2, "share": SHARE, "boundary_sentences": BOUNDARY, "rounds": TRIAL_ROUNDS,
        "batches": f"whole run batches, at least {TRIAL_BATCHES}", "same_speed": SAME_SPEED,
        "first_pass_limit": FIRST_PASS_LIMIT}
CHOICE_ENTRY = "choice"


def allowed_disagreements(sentences: int, share: float) -> int:
    """How many of `sentences` may answer otherwise than the reference under the gate."""
    return math.floor(round((1 - share) * sentences, 9)) + BOUNDARY


@dataclass
class Choice:
    """The build that runs, and the JSON's record of how it was chosen."""
    candidate: Candidate
    runner: Runner
    record: dict

    def banner(self) -> str:
        """One line: what was chosen, and on what evidence; every build named as it ran."""
        rec = self.record
        ran = f"{self.runner.backend} {self.runner.precision}" + where(self.runner)  # read back
        if not rec["trial"]:
            return f"backend: {ran} ({rec['why']})"
        entries = {c["candidate"]: c for c in rec["candidates"]}
        said = f"backend: {ran}, {chosen_entry(rec)['sent_per_s']:.0f} sent/s"
        if rec["runner_up"]:
            runner_up = entries[rec["runner_up"]]
            said += f"; runner-up {runner_up['ran']} {runner_up['sent_per_s']:.0f} sent/s"
        for words in ("too slow to time", "failed", "not built"):
            named = [c["ran"] for c in rec["candidates"] if dropped_as(c) == words]
            said += f"; {words}: {', '.join(named)}" if named else ""
        if rec["cached"]:
            how = (f"cached trial of {rec['trial_sentences']} sentences, from a run of "
                   f"{rec['decided_at']} on {rec['data_described']}")
        elif rec.get("not_cached"):
            how = f"trial of {rec['trial_seconds']:.1f} s, not cached ({rec['not_cached']})"
        else:
            how = f"trial of {rec['trial_seconds']:.1f} s on {rec['trial_sentences']} sentences"
        return f"{said} ({how}; {rec['why']})"


def host() -> dict:
    """What a decision is valid for: the CPU model and family, its matrix flags, the threads the
    runners get (a GPU build's decision also holds the GPU: proofpoint.decide)."""
    return {**cpu_identity(), "threads": usable_cpus()}


def trial_batches(batches: Batches) -> list[int]:
    """Which of the run's (length-sorted) batches the trial times: as many as the host's cores
    could keep in flight, at least TRIAL_BATCHES, evenly spread over the sentence lengths, the
    shortest and the last (partial) batch left out where there are more."""
    count = len(batches.inputs)
    wanted = max(1, min(count, max(TRIAL_BATCHES, usable_cpus())))
    spread = np.linspace(0, count - 1, wanted + 2)[1:-1] if count > 2 else np.arange(count)[:wanted]
    return sorted(set(int(round(i)) for i in spread))


def sentences_identity(trial: Batches) -> str:
    """A digest of the trial's sentences as fed: their rows and every token of every input."""
    digest = hashlib.sha256()
    for rows, batch in zip(trial.rows, trial.inputs):
        digest.update(np.asarray(rows, dtype=np.int64).tobytes())
        for name in sorted(batch):
            digest.update(name.encode() + np.ascontiguousarray(batch[name]).tobytes())
    return digest.hexdigest()


def first_pass(runner: Runner, pieces: Sequence[dict], budget: float
               ) -> tuple[Optional[list], float]:
    """The runner's answers on every batch (None where the pass would run past `budget` seconds:
    it stops there) and the sentences/s it ran at. One sentence is run twice first: the first call
    bears the one-time costs (first shapes, a device's start-up) and is not counted, the second
    bounds a sentence's cost, so that a very slow build stops after seconds, not after a batch."""
    one = {name: array[:1] for name, array in pieces[0].items()}
    runner.run_all([one])
    start = evaluate.clock()
    runner.run_all([one])
    done, outputs = 1, []
    for piece in pieces:
        elapsed = evaluate.clock() - start
        if pace.runs_past(budget, elapsed, done, len(piece["input_ids"])):
            return None, done / elapsed
        outputs += runner.run_all([piece])[0]
        done += len(piece["input_ids"])
    return outputs, done / (evaluate.clock() - start)


def dropped_as(entry: dict) -> Optional[str]:
    """Why a trial entry was not timed, in the banner's words (None: it was)."""
    if "dropped" not in entry:
        return None
    return "failed" if entry.get("failed") else "not built" if entry.get("not_built") \
        else "too slow to time"


def failed(candidate: Candidate, stage: str, exc: Exception) -> str:
    """Why a candidate left the trial, in one line (the inner cause, not a wrapper's first line),
    said as it happens: the run goes on with the others."""
    cause = str(exc) if isinstance(exc, BuildFailed) else root_cause(exc)
    reason = f"failed to {stage}: {cause}"
    print(f"{candidate}: {reason}; the trial goes on without it", file=sys.stderr)
    return reason


def where(runner: Runner) -> str:
    """" on cuda" for a runner on the GPU: the CPU is where builds run unless said."""
    return f" on {runner.device}" if runner.device == "cuda" else ""


def _entry(candidate: Candidate, runner: Optional[Runner], compared: bool) -> dict:
    entry = {"candidate": str(candidate), "backend": candidate.backend,
             "precision": candidate.label,
             "ran": runner.name + where(runner) if runner else str(candidate)}
    if runner is not None:
        entry["in_flight"] = runner.in_flight
    if compared:
        entry["compared_only"] = True
    return entry


def _gate(kind: str, min_agreement: Optional[float]) -> float:
    return min_agreement if kind == "int8" and min_agreement is not None else SHARE[kind]


def _decide(entries: dict, eligible: Sequence[Candidate], allowed: int, share: float,
            sentences: int) -> tuple[dict, str]:
    """The chosen entry, and why, in words that say only the clauses that decided."""
    measured = [entries[c] for c in eligible if "sent_per_s" in entries[c]]
    gate = (f"at most {allowed} of the {sentences} trial sentences answering otherwise than the "
            f"reference ({share:.1%} and one on the boundary)")
    passing = [e for e in measured if e["disagreements"] <= allowed]
    if not passing:
        chosen = max(measured, key=lambda e: (e["agreement"], e["sent_per_s"]))
        return chosen, f"none passed the gate of {gate}; the closest"
    top = max(e["sent_per_s"] for e in passing)
    near = [e for e in passing if e["sent_per_s"] >= (1 - SAME_SPEED) * top]
    chosen = max(near, key=lambda e: (e["agreement"], e["sent_per_s"]))
    why = f"the fastest of {len(passing)} passing the gate of {gate}"
    if len(near) > 1:
        why += f"; within {SAME_SPEED:.0%} of the fastest, the one agreeing most"
    return chosen, why


def _run_trial(candidates: Sequence[Candidate], compared: Sequence[Candidate], runners: dict,
               dropped_builds: dict, trial: Batches, reference: Evaluation, reference_seconds: float,
               kind: str, min_agreement: Optional[float], marks: Optional[dict] = None) -> dict:
    """Agreement and interleaved timing of every built candidate on the trial batches."""
    sentences = sum(len(rows) for rows in trial.rows)
    expected = [reference.logits[rows] for rows in trial.rows]
    budget = pace.budget(FIRST_PASS_LIMIT, FIRST_PASS_FLOOR_S, reference_seconds)
    entries, timed = {}, []
    for candidate in [*candidates, *compared]:  # the untimed first pass: warms, gives the answers
        entries[candidate] = _entry(candidate, runners.get(candidate), candidate in compared)
        if candidate in dropped_builds:
            entries[candidate]["dropped"] = dropped_builds[candidate]
            if candidate in (marks or {}):  # why, beyond too slow: "failed" or "not_built"
                entries[candidate][marks[candidate]] = True
            continue
        try:
            outputs, rate = first_pass(runners[candidate], trial.inputs, budget)
        except Exception as exc:  # a runtime's failure on a shape: this build's, not the run's
            entries[candidate].update(dropped=failed(candidate, "run", exc), failed=True)
            continue
        if outputs is None:
            entries[candidate].update(first_pass_sent_per_s=rate, dropped=(
                f"{rate:.1f} sent/s in its first pass: the trial sentences would take over "
                f"{budget:.1f} s ({FIRST_PASS_LIMIT}× the reference's {reference_seconds:.2f} s, "
                f"at least {FIRST_PASS_FLOOR_S:.0f} s); not timed"))
            continue
        agreeing, gap = agreement_figures(np.concatenate(outputs), np.concatenate(expected))
        entries[candidate].update(agreement=agreeing / sentences, max_abs_logit_diff=gap,
                                  disagreements=sentences - agreeing)
        timed.append(candidate)
    if not any(c in timed for c in candidates):
        reasons = "; ".join(f"{e['ran']}: {e['dropped']}" for c, e in entries.items()
                            if c in candidates)
        if not any(entries[c].get("failed") or entries[c].get("not_built") for c in candidates):
            raise NoBuildLeft(f"every build was too slow to time against PyTorch ({reasons}); "
                              "pass --backend and --precision to run one anyway")
        raise NoBuildLeft(f"no build could be timed against PyTorch ({reasons})")
    timings = measure([(runners[c], trial, None) for c in timed], sentences, TRIAL_ROUNDS,
                      desc="trial")
    for candidate, timing in zip(timed, timings):
        speeds = spread(timing.throughputs())
        entries[candidate].update(sent_per_s=speeds["median"], sent_per_s_min=speeds["min"],
                                  sent_per_s_max=speeds["max"])
    share = _gate(kind, min_agreement)
    allowed = allowed_disagreements(sentences, share)
    chosen, why = _decide(entries, candidates, allowed, share, sentences)
    others = sorted((entries[c] for c in candidates if c in timed and entries[c] is not chosen),
                    key=lambda e: -e["sent_per_s"])
    record = {"trial": True, "candidates": list(entries.values()), "chosen": chosen["candidate"],
              "runner_up": others[0]["candidate"] if others else None, "why": why,
              "gate": {"share": share, "boundary_sentences": BOUNDARY,
                       "allowed_disagreements": allowed, "of": sentences},
              "trial_sentences": sentences, "trial_batches": len(trial.inputs),
              "batch_size": max(len(rows) for rows in trial.rows), "rounds": TRIAL_ROUNDS,
              "reference_sent_per_s": sentences / reference_seconds,
              "reference_speed_from": "the reference's accuracy pass over the same batches"}
    faster = float_as_fast(record)
    if faster:
        record["float_as_fast"] = faster
    return record


def chosen_entry(record: dict) -> dict:
    """The trial record's entry of the build it chose."""
    return next(c for c in record["candidates"] if c["candidate"] == record["chosen"])


def speedup(record: dict, entry: dict) -> float:
    """An entry's trial speed as a multiple of the reference's on the same sentences."""
    return entry["sent_per_s"] / record["reference_sent_per_s"]


def float_as_fast(record: dict) -> Optional[dict]:
    """A compared float build of this trial that ran as fast as the chosen INT8 one (within a
    trial's noise, SAME_SPEED, or faster) at no less agreement: the fastest such, with both
    figures as multiples of the reference's speed on the same sentences."""
    chosen = chosen_entry(record)
    floats = [c for c in record["candidates"] if c.get("compared_only") and "sent_per_s" in c
              and c["sent_per_s"] >= (1 - SAME_SPEED) * chosen["sent_per_s"]
              and c["agreement"] >= chosen["agreement"]]
    if not floats:
        return None
    best = max(floats, key=lambda c: c["sent_per_s"])
    return {"float": best["ran"], "float_speedup": speedup(record, best),
            "float_agreement": best["agreement"], "int8": chosen["ran"],
            "int8_speedup": speedup(record, chosen), "int8_agreement": chosen["agreement"],
            "sentences": record["trial_sentences"]}


def _timed_trial(candidates, compared, build, runners: dict, trial: Batches,
                 reference: Evaluation, reference_seconds: float, cache: BuildCache, kind: str,
                 min_agreement: Optional[float]) -> dict:
    """Build every candidate (one too slow to build is dropped), then the trial; the seconds it
    took, apart from the builds made for it."""
    start, building = evaluate.clock(), cache.seconds_building
    dropped, marks = {}, {}
    for candidate in [*candidates, *compared]:
        try:
            runners[candidate] = build(candidate)
        except BuildTooSlow as exc:
            dropped[candidate] = str(exc)
        except NotBuilt as exc:  # --execute: this host offers a build --build did not make
            dropped[candidate], marks[candidate] = str(exc), "not_built"
        except Exception as exc:  # one build's failure; a user's mistake still ends the run
            interrupt.check()
            if isinstance(exc, UserError) and not isinstance(exc, BuildFailed):
                raise
            dropped[candidate], marks[candidate] = failed(candidate, "build", exc), "failed"
        interrupt.check()
    building = cache.seconds_building - building
    record = _run_trial(candidates, compared, runners, dropped, trial, reference,
                        reference_seconds, kind, min_agreement, marks)
    for entry, candidate in zip(record["candidates"], [*candidates, *compared]):
        if candidate in runners:
            entry.update(build_seconds=runners[candidate].build_seconds,
                         cache_hit=runners[candidate].cache_hit)
    wall = evaluate.clock() - start
    return {**record, "trial_seconds": wall - building, "wall_seconds": wall,
            "trial_seconds_cover": "compiling, warming and timing the candidates; the builds made "
                                   "for them (cached for later runs) are the rest of wall_seconds"}


def _decision(cache: BuildCache, key: str, run_trial: Callable[[object], dict]) -> dict:
    """The cached decision for `key`, or a trial's (cached, except under --rebuild never)."""
    if cache.rebuild == "never" and not cache.executing:
        found = cache.find(CHOICE_ENTRY, key)
        if found is not None:
            return {**found["facts"], "cached": True}
        print("--rebuild never: no cached trial decision for this host, data and builds; "
              "trialling without caching one", file=sys.stderr)
        return {**run_trial(None), "cached": False, "not_cached": "--rebuild never"}
    policy = "always" if cache.rebuild == "always" else "if_needed"  # a trial builds nothing
    decided = BuildCache(cache.root, policy).get_or_build(CHOICE_ENTRY, key, run_trial)
    return {**decided.state["facts"], "cached": decided.hit}


def choose(candidates: Sequence[Candidate], build: Callable[[Candidate], Runner],
           reference: Evaluation, batches: Batches, cache: BuildCache, context: dict, *,
           compared: Sequence[Candidate] = (), recipe_of: Callable[[Candidate], dict] = lambda c: {},
           min_agreement: Optional[float] = None, described: str = "",
           why_single: str = "the only build the flags leave") -> Choice:
    """The build to run, of `candidates`: the only one, the one a cached trial chose for this
    host, or a trial's choice; `compared` builds are timed beside them, never chosen. `context`
    holds what the decision depends on besides the host, the candidates and their recipes
    (`recipe_of`), and the trial's sentences: the model, data, batching, calibration. `--rebuild
    always` trials again; `--rebuild never` reads a cached decision and never writes one."""
    if len(candidates) == 1 and not compared:
        (candidate,) = candidates
        return Choice(candidate, build(candidate), {
            "trial": False, "candidates": [{"candidate": str(candidate), "backend": candidate.backend,
                                            "precision": candidate.label}],
            "chosen": str(candidate), "why": why_single, "cached": False, "trial_seconds": 0.0})
    kind = "int8" if candidates[0].int8 else "float"
    chosen_batches = trial_batches(batches)
    trial = Batches(inputs=[batches.inputs[i] for i in chosen_batches],
                    rows=[batches.rows[i] for i in chosen_batches], count=batches.count)
    everything = [*candidates, *compared]
    key_parts = {"host": host(), "candidates": [str(c) for c in candidates],
                 "compared": [str(c) for c in compared], "versions": versions_of(everything),
                 "recipes": {str(c): recipe_of(c) for c in everything}, "rule": RULE,
                 "kind": kind, "min_agreement": min_agreement,
                 "trial_sentences": sentences_identity(trial), **context}
    runners: dict = {}

    def run_trial(folder) -> dict:
        reference_seconds = sum(reference.batch_seconds[i] for i in chosen_batches)
        return {**_timed_trial(candidates, compared, build, runners, trial, reference,
                               reference_seconds, cache, kind, min_agreement),
                "kind": kind, "host": key_parts["host"], "model": context.get("model"),
                "decided_at": time.strftime("%Y-%m-%d %H:%M"), "data_described": described}

    record = _decision(cache, cache_key(key_parts), run_trial)
    candidate = next(c for c in candidates if str(c) == record["chosen"])
    runner = runners.get(candidate) or build(candidate)
    runners.clear()  # the losers' compiled models are freed here
    return Choice(candidate, runner, record)


def cached_decisions(cache: BuildCache, model: str, kind: str) -> list[dict]:
    """Trial records for this model (its identity) on this host, e.g. the INT8 proof point's,
    from the cache."""
    here = host()
    return [r for r in cache.records(CHOICE_ENTRY)
            if (r.get("kind"), r.get("model"), r.get("host")) == (kind, model, here)]
