"""--min-agreement: which kinds of layer INT8 leaves in float so that it answers as the float model
does, searched on the validation slice (never on the evaluated sentences).

Why kinds of layer (every layer's feed-forward output MatMul, ...) and not single operations:
measured on the shared MiniLM (README, "INT8 that agrees"; bench/layer_gaps.py), INT8's error is
spread over all six layers: one kind kept in float in every layer removes more of it than the same
kind in any one layer; a kind also means the same thing in a 6- and a 12-layer BERT. Why the
logits' mean squared gap ranks them: agreement on a slice moves by single flips of sentences on the
decision boundary, while the gap is measured on every sentence. The search stops at the first set
of kinds whose agreement the slice shows to reach the target with 95% confidence (the Wilson
lower bound): the point estimate alone passes a model whose true agreement is just the target about
half the time, and measured on the shared MiniLM, the evaluated sentences agreed less than the slice
for 4 of the 6 distinct builds of the frontier, by up to 0.0039 (README, "INT8 that agrees").
"""
from __future__ import annotations

import math
import re
import time
from statistics import NormalDist
from typing import Callable, Optional, Sequence, TypeVar

import numpy as np

from ..host.errors import UserError
from ..host.progress import progress_bar
from ..inputs.batching import Batch, Encoded, make_batches
from . import pace
from .metrics import agreeing_rows

Model = TypeVar("Model")
CONFIDENCE = 0.95
Z = NormalDist().inv_cdf(CONFIDENCE)  # one-sided
# what decides a --min-agreement build, in its cache key: a change of rule means a rebuild
RULE = {"ranking": "logit mse, each kind alone", "reached": "wilson lower bound",
        "confidence": CONFIDENCE}

# (kind, regular expression over operation names) for the exports of BERT, RoBERTa, ELECTRA
# (encoder/layer.N/...), DistilBERT (ffn/lin1, attention/q_lin, ...) and ALBERT (ffn, ffn_output,
# attention/dense; its shared layer's second and later uses end in _1, _2, ...)
KINDS = (
    ("feed-forward output", r".*(/layer\.\d+/output/dense|/ffn/lin2|/ffn_output(_\d+)?)/.*"),
    ("feed-forward input", r".*(/intermediate/dense/|/ffn/lin1/|/ffn(_\d+)?/MatMul).*"),
    ("attention output", r".*(/attention/output/dense|/attention/out_lin|/attention/dense(_\d+)?)/.*"),
    ("attention projections",
     r".*(/self/(query|key|value)|/attention/[qkv]_lin|/attention/(query|key|value)(_\d+)?)/.*"),
    ("attention scores", r".*/attention(_\d+)?(/self)?/MatMul(_1)?$"),  # QK^T, PV (or fused SDPA)
    ("pooler and classifier", r".*/(pooler|pre_classifier|classifier)/.*"),
)


def patterns(kinds: Sequence[str]) -> tuple[str, ...]:
    """The regular expressions of these kinds, for the quantizers' ignored scopes."""
    wanted = dict(KINDS)
    return tuple(wanted[kind] for kind in kinds)


def matching(kinds: Sequence[str], names: Sequence[str]) -> list[str]:
    """The operations of these kinds among `names`."""
    compiled = [re.compile(p) for p in patterns(kinds)]
    return [name for name in names if any(p.match(name) for p in compiled)]


def rule_in_key(min_agreement: float | None) -> dict:
    """What a build's or a trial's cache key adds for --min-agreement: the rule that decides it,
    and the kinds of layer it keeps in float with the operations each one matches."""
    return {} if min_agreement is None else {"min_agreement_rule": {**RULE, "kinds": KINDS}}


def lower_bound(agreeing: int, total: int) -> float:
    """The Wilson score lower bound of an agreement of `agreeing` in `total`: the true agreement
    is at least this with 95% confidence."""
    share, z2 = agreeing / total, Z * Z
    centre = share + z2 / (2 * total)
    spread = Z * math.sqrt(share * (1 - share) / total + z2 / (4 * total * total))
    return (centre - spread) / (1 + z2 / total)


def smallest_slice(min_agreement: float) -> int:
    """The fewest sentences on which an agreement of `min_agreement` can be shown at all (every
    one agreeing): n / (n + z²) ≥ A."""
    return math.ceil(Z * Z * min_agreement / (1 - min_agreement))


def check_slice(min_agreement: float, sentences: int, drawn: bool = False) -> None:
    """Refuse a target that this many validation sentences could never show, before any work
    (`drawn`: the slice actually drawn, smaller than asked, not --validation-samples)."""
    if min_agreement >= 1.0:
        raise UserError("--min-agreement 1.0 cannot be shown on any sample of sentences; the float "
                        "build agrees by construction (bert_base.py)")
    needed = smallest_slice(min_agreement)
    if sentences < needed:
        raise UserError(f"--min-agreement {min_agreement} can be shown with {CONFIDENCE:.0%} "
                        f"confidence only on a validation slice of at least {needed} sentences "
                        f"(every one agreeing); " + (
                            f"only {sentences} training rows were left for it once calibration "
                            "and evaluation sentences were set aside" if drawn else
                            f"--validation-samples is {sentences}"))


class TooSlow(Exception):
    """A model whose slice pass would run past its budget."""


def slice_logits(predict: Callable[[Batch], np.ndarray], encoded: Encoded,
                 budget_s: Optional[float] = None) -> np.ndarray:
    """Logits of every slice sentence, in slice order (batches of 32, padded as evaluation is);
    TooSlow as soon as the pace so far says the pass would take over `budget_s` seconds."""
    batches = make_batches(encoded, batch_size=32)
    outputs, start = [], time.perf_counter()
    for batch in batches.inputs:
        outputs.append(np.asarray(predict(batch)))
        elapsed = time.perf_counter() - start
        if pace.runs_past(budget_s, elapsed, len(outputs), len(batches.inputs) - len(outputs)):
            raise TooSlow(f"its validation-slice pass would take "
                          f"{elapsed / len(outputs) * len(batches.inputs):.0f} s, over "
                          f"{budget_s:.0f} s (its first {len(outputs)} batches took {elapsed:.1f} s)")
    return batches.scatter(outputs)


def scored(out: np.ndarray, float_logits: np.ndarray) -> dict:
    """A model's logits on the slice against the float model's: agreement, its Wilson lower
    bound, and the logits' mean squared gap."""
    agreeing = agreeing_rows(out, float_logits)
    return {"agreement": agreeing / len(float_logits),
            "agreement_lower_bound": lower_bound(agreeing, len(float_logits)),
            "logit_mse": float(np.mean((out - float_logits) ** 2))}


def search(quantize: Callable[[Sequence[str]], Model], logits: Callable[[Model], np.ndarray],
           float_logits: np.ndarray, names: Sequence[str], min_agreement: float, *,
           scored_at: str) -> tuple[Model, dict]:
    """The INT8 model with the fewest kinds kept in float that agrees with the float model on at
    least `min_agreement` of the slice, and the record of how it was found: plain INT8's agreement
    and gap, each kind's gap when kept in float alone (the ranking), then each step of adding kinds
    in that order. `quantize(kinds)` builds INT8 with those kinds in float; `names` are the
    operations the kinds are matched against (kinds without one are skipped). Without a set that
    reaches the target, every kind ends in float and `reached` says so. `scored_at` says how
    `logits` runs the model (e.g. "int8+bf16, compiled as the run compiles it")."""
    present = [kind for kind, _ in KINDS if matching([kind], names)]

    def built(kinds: Sequence[str]) -> tuple[Model, dict]:
        model = quantize(kinds)
        return model, {"float_kinds": list(kinds), **scored(logits(model), float_logits)}

    with progress_bar("min-agreement search", 2 * len(present) + 1, "build") as bar:
        model, plain = built([])
        bar.update()
        steps, ranking, alone = [plain], [], {}
        if plain["agreement_lower_bound"] < min_agreement:
            for kind in present:
                alone[kind] = built([kind])
                ranking.append({"kind": kind, "logit_mse": alone[kind][1]["logit_mse"]})
                bar.update()
            ranking.sort(key=lambda rank: rank["logit_mse"])
            for count in range(1, len(ranking) + 1):
                kinds = [rank["kind"] for rank in ranking[:count]]
                model, step = alone[kinds[0]] if count == 1 else built(kinds)
                steps.append(step)
                bar.update()
                if step["agreement_lower_bound"] >= min_agreement:
                    break
    final = steps[-1]
    reached = final["agreement_lower_bound"] >= min_agreement
    return model, {**_heading(min_agreement, scored_at, len(float_logits)),
                   "lever": ("kinds" if len(steps) > 1 else "plain INT8") if reached else None,
                   "plain_int8": plain, "ranking": ranking, "steps": steps[1:],
                   "kept_in_float": final["float_kinds"],
                   "float_operations": matching(final["float_kinds"], names),
                   "agreement": final["agreement"],
                   "agreement_lower_bound": final["agreement_lower_bound"], "reached": reached}


def distilled_first(distill: Callable[[], tuple[Model, dict]],
                    logits: Callable[[Model], np.ndarray], float_logits: np.ndarray,
                    min_agreement: float, search_kinds: Callable[[], tuple[Model, dict]], *,
                    scored_at: str) -> tuple[Model, dict]:
    """The distilled INT8 model (every matrix product INT8) where the slice shows it reaches the
    target, by the same rule as the search; else `search_kinds()`'s model, which starts from
    plain post-training INT8: keeping kinds in float in a distilled model would mean distilling
    again for each set of kinds, minutes each, for a lever that on the shared MiniLM left the
    slice short of 0.995 on both backends (docs/int8.md). The report holds the distillation's
    record either way, and `lever` says what reached the target."""
    model, record = distill()
    record = {**record, **scored(logits(model), float_logits)}
    record["reached"] = record["agreement_lower_bound"] >= min_agreement
    if not record["reached"]:
        searched, report = search_kinds()
        return searched, {**report, "distillation": record}
    return model, {**_heading(min_agreement, scored_at, len(float_logits)),
                   "lever": "distillation", "distillation": record, "kept_in_float": [],
                   "float_operations": [], "agreement": record["agreement"],
                   "agreement_lower_bound": record["agreement_lower_bound"], "reached": True}


def _heading(min_agreement: float, scored_at: str, sentences: int) -> dict:
    return {"min_agreement": min_agreement, "scored_at": scored_at,
            "validation_sentences": sentences, "rule": RULE}


def summary(report: dict) -> str:
    """The line under the table: the lever that reached the target (or that none did), what
    stays in float, and the slice's agreement."""
    kept = ", ".join(report["kept_in_float"]) or "nothing"
    outcome = "reached" if report["reached"] else "not reached, even with every kind in float"
    distilled = report.get("distillation")
    plain = report.get("plain_int8")
    tried = (f"; distillation ({distilled['steps']} steps on {distilled['rows']} training rows, "
             f"{distilled['seconds']:.0f} s) agreed {distilled['agreement']:.4f}"
             + (", enough: every matrix product INT8" if distilled["reached"] else
                ", not enough") if distilled else "")
    return (f"--min-agreement {report['min_agreement']}: kept in float: {kept}{tried}; the "
            f"{report['validation_sentences']}-sentence validation slice agreed "
            + (f"{plain['agreement']:.4f} as plain INT8, " if plain else "")
            + f"{report['agreement']:.4f} as built and run ({report['scored_at'].split(',')[0]}), "
            f"at least {report['agreement_lower_bound']:.4f} with "
            f"{report['rule']['confidence']:.0%} confidence ({outcome})")
