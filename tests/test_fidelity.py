"""--min-agreement's search over kinds of layer, on a stand-in quantizer whose flips are known."""
import re

import numpy as np
import pytest

from common.builds import fidelity
from common.host.errors import UserError

NAMES = [f"/model/bert/encoder/layer.{i}/{part}/MatMul" for i in range(2) for part in (
    "attention/self/query", "attention/self/key", "attention/self/value", "attention/output/dense",
    "intermediate/dense", "output/dense")] + [
    "/model/bert/encoder/layer.0/attention/self/MatMul", "/model/bert/encoder/layer.0/output/LayerNorm/Add",
    "/model/bert/pooler/dense/Gemm", "/model/classifier/Gemm"]
# sentences each kind flips while it is INT8 (the first ones of 1000, which the float model calls 1)
FLIPS = {"feed-forward output": 30, "feed-forward input": 15, "attention projections": 5,
         "attention output": 0, "attention scores": 0, "pooler and classifier": 0}
FLOAT = np.tile([[0.0, 1.0]], (1000, 1))


def run(min_agreement: float, floor: int = 0):
    """The search on the stand-in; `floor` sentences flip whatever stays INT8 (a remainder's own)."""
    built = []

    def quantize(kinds):
        built.append(list(kinds))
        return tuple(kinds)

    def logits(kinds):
        flips = floor + sum(n for kind, n in FLIPS.items() if kind not in kinds)
        out = FLOAT.copy()
        out[:flips] = [1.0, 0.0]
        return out

    model, report = fidelity.search(quantize, logits, FLOAT, NAMES, min_agreement,
                                    scored_at="int8+fp32, a stand-in")
    return model, report, built


def test_the_wilson_lower_bound_at_95_percent():
    """Values worked by hand from the score interval's formula, z = 1.6449 (one-sided 95%)."""
    assert fidelity.lower_bound(1000, 1000) == pytest.approx(1000 / (1000 + 1.6449 ** 2))
    assert fidelity.lower_bound(995, 1000) == pytest.approx(0.98976, abs=2e-5)
    assert fidelity.lower_bound(999, 1000) == pytest.approx(0.99553, abs=2e-5)
    assert fidelity.lower_bound(98, 100) == pytest.approx(0.94135, abs=2e-5)


def test_kinds_are_added_in_order_of_the_gap_they_leave_until_the_slice_shows_the_target():
    """5 flips in 1000 is 0.995, but shows only 0.9898 with 95% confidence: under 0.99, so the
    search goes on to a third kind."""
    model, report, built = run(0.99)
    assert report["plain_int8"]["agreement"] == 0.95
    assert [r["kind"] for r in report["ranking"]][:3] == [
        "feed-forward output", "feed-forward input", "attention projections"]
    assert [r["logit_mse"] for r in report["ranking"]][:3] == [0.02, 0.035, 0.045]
    assert [s["agreement"] for s in report["steps"]] == [0.98, 0.995, 1.0]
    assert report["steps"][1]["agreement_lower_bound"] == pytest.approx(0.98976, abs=2e-5)
    assert model == ("feed-forward output", "feed-forward input", "attention projections") == \
        tuple(report["kept_in_float"])
    assert report["reached"] and report["agreement"] == 1.0
    assert report["agreement_lower_bound"] == pytest.approx(0.99730, abs=2e-5)
    assert report["float_operations"] == [n for n in NAMES if "/intermediate/dense/" in n
                                          or "layer.0/output/dense" in n or "layer.1/output/dense" in n
                                          or "/self/query/" in n or "/self/key/" in n
                                          or "/self/value/" in n]
    # plain, each kind alone, then the pair and the three (the first kind alone is not built twice)
    assert built == [[]] + [[k] for k, _ in fidelity.KINDS] + [list(model[:2]), list(model)]
    assert fidelity.summary(report) == (
        "--min-agreement 0.99: kept in float: feed-forward output, feed-forward input, attention "
        "projections; the 1000-sentence validation slice agreed 0.9500 as plain INT8, 1.0000 as "
        "built and run (int8+fp32), at least 0.9973 with 95% confidence (reached)")


def test_plain_int8_that_shows_the_target_is_kept_without_a_search():
    model, report, built = run(0.93)  # 0.95 of 1000: at least 0.9370 with 95% confidence
    assert model == () and built == [[]] and report["reached"]
    assert report["ranking"] == [] and report["steps"] == [] and report["kept_in_float"] == []


def test_a_target_nothing_reaches_ends_with_every_kind_in_float_and_says_so():
    model, report, _ = run(0.995, floor=2)  # 998 of 1000 shows only 0.9940
    assert not report["reached"] and report["agreement"] == 0.998
    assert sorted(model) == sorted(k for k, _ in fidelity.KINDS) and len(report["steps"]) == 6
    assert fidelity.summary(report).endswith("(not reached, even with every kind in float)")


@pytest.mark.parametrize("target, sentences, message", [
    (0.995, 538, "--min-agreement 0.995 can be shown with 95% confidence only on a validation slice "
                 "of at least 539 sentences (every one agreeing); --validation-samples is 538"),
    (1.0, 100_000, "--min-agreement 1.0 cannot be shown on any sample of sentences; the float "
                   "build agrees by construction (bert_base.py)")])
def test_a_target_the_slice_could_never_show_is_refused(target, sentences, message):
    with pytest.raises(UserError, match=f"^{re.escape(message)}$"):
        fidelity.check_slice(target, sentences)
    fidelity.check_slice(0.995, 539)  # 539 agreeing of 539 shows 0.99501
    assert fidelity.lower_bound(539, 539) >= 0.995 > fidelity.lower_bound(538, 538)


def test_kinds_the_model_lacks_are_not_searched():
    names = [n for n in NAMES if "pooler" not in n and "classifier" not in n]
    _, report = fidelity.search(lambda kinds: tuple(kinds), lambda kinds: FLOAT, FLOAT[:, ::-1],
                                names, 0.5, scored_at="int8+fp32, a stand-in")
    assert "pooler and classifier" not in [r["kind"] for r in report["ranking"]]
    assert len(report["ranking"]) == 5


def test_a_kind_in_one_layer_matches_that_layer_only():
    from bench.layer_gaps import in_layer

    names = [f"/model/bert/encoder/layer.{i}/{part}/MatMul" for i in (0, 1, 11)
             for part in ("output/dense", "attention/output/dense")]
    pattern = re.compile(in_layer("feed-forward output", 1))
    assert [n for n in names if pattern.match(n)] == ["/model/bert/encoder/layer.1/output/dense/MatMul"]


def distilled_then_searched(distilled_flips: int, min_agreement: float):
    """fidelity.distilled_first with a stand-in distillation flipping `distilled_flips` of the
    1000 slice sentences, and the stand-in kinds search of `run` behind it."""
    searched = []

    def distill():
        return "distilled", {"steps": 300, "rows": 9600, "seconds": 212.0}

    def logits(model):
        out = FLOAT.copy()
        out[:distilled_flips] = [1.0, 0.0]
        return out

    def search_kinds():
        model, report, _ = run(min_agreement)
        searched.append(model)
        return model, report

    model, report = fidelity.distilled_first(distill, logits, FLOAT, min_agreement, search_kinds,
                                             scored_at="int8+fp32, a stand-in")
    return model, report, searched


def test_a_distilled_model_that_shows_the_target_runs_with_every_kind_in_int8():
    """1 flip in 1000 shows 0.99553 with 95% confidence: 0.995 is reached, no kinds search."""
    model, report, searched = distilled_then_searched(1, 0.995)
    assert model == "distilled" and searched == []
    assert report["lever"] == "distillation" and report["reached"]
    assert report["kept_in_float"] == [] and report["float_operations"] == []
    assert report["agreement"] == 0.999 == report["distillation"]["agreement"]
    assert report["agreement_lower_bound"] == pytest.approx(0.99553, abs=2e-5)
    assert report["distillation"]["steps"] == 300 and report["distillation"]["reached"]
    assert fidelity.summary(report) == (
        "--min-agreement 0.995: kept in float: nothing; distillation (300 steps on 9600 training "
        "rows, 212 s) agreed 0.9990, enough: every matrix product INT8; the 1000-sentence "
        "validation slice agreed 0.9990 as built and run (int8+fp32), at least 0.9955 with 95% "
        "confidence (reached)")


def test_a_distilled_model_short_of_the_target_falls_back_to_the_kinds_search():
    """2 flips in 1000 show only 0.99397: the kinds search runs (from plain INT8) and decides;
    the distillation's figures stay in the report."""
    model, report, searched = distilled_then_searched(2, 0.995)
    assert searched == [model] and model == (
        "feed-forward output", "feed-forward input", "attention projections")
    assert report["lever"] == "kinds" and report["reached"]
    assert report["distillation"]["agreement"] == 0.998 and not report["distillation"]["reached"]
    assert report["plain_int8"]["agreement"] == 0.95 and report["agreement"] == 1.0
    assert ("kept in float: feed-forward output, feed-forward input, attention projections; "
            "distillation (300 steps on 9600 training rows, 212 s) agreed 0.9980, not enough; the "
            "1000-sentence validation slice agreed 0.9500 as plain INT8") in fidelity.summary(report)


def test_the_lever_that_reached_the_target_is_named():
    assert run(0.93)[1]["lever"] == "plain INT8"
    assert run(0.99)[1]["lever"] == "kinds"
    assert run(0.995, floor=2)[1]["lever"] is None
