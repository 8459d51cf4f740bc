"""--min-agreement's search over kinds of layer, on a stand-in quantizer whose flips are known."""
import numpy as np

from common import fidelity

NAMES = [f"/model/bert/encoder/layer.{i}/{part}/MatMul" for i in range(2) for part in (
    "attention/self/query", "attention/self/key", "attention/self/value", "attention/output/dense",
    "intermediate/dense", "output/dense")] + [
    "/model/bert/encoder/layer.0/attention/self/MatMul", "/model/bert/encoder/layer.0/output/LayerNorm/Add",
    "/model/bert/pooler/dense/Gemm", "/model/classifier/Gemm"]
# sentences each kind flips while it is INT8 (the first ones of 100, which the float model calls 1)
FLIPS = {"feed-forward output": 6, "feed-forward input": 3, "attention projections": 1,
         "attention output": 0, "attention scores": 0, "pooler and classifier": 0}
FLOAT = np.tile([[0.0, 1.0]], (100, 1))


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

    model, report = fidelity.search(quantize, logits, FLOAT, NAMES, min_agreement)
    return model, report, built


def test_kinds_are_added_in_order_of_the_gap_they_leave_until_the_slice_agrees():
    model, report, built = run(0.99)
    assert report["plain_int8"]["agreement"] == 0.90
    assert [r["kind"] for r in report["ranking"]][:3] == [
        "feed-forward output", "feed-forward input", "attention projections"]
    assert [r["logit_mse"] for r in report["ranking"]][:3] == [0.04, 0.07, 0.09]
    assert [s["agreement"] for s in report["steps"]] == [0.96, 0.99]
    assert model == ("feed-forward output", "feed-forward input") == tuple(report["kept_in_float"])
    assert report["reached"] and report["agreement"] == 0.99
    assert report["float_operations"] == [n for n in NAMES if "/intermediate/dense/" in n
                                          or "layer.0/output/dense" in n or "layer.1/output/dense" in n]
    # plain, each kind alone, then the pair (the first kind alone is not built twice)
    assert built == [[]] + [[k] for k, _ in fidelity.KINDS] + [list(model)]


def test_plain_int8_that_agrees_is_kept_without_a_search():
    model, report, built = run(0.90)
    assert model == () and built == [[]] and report["reached"]
    assert report["ranking"] == [] and report["steps"] == [] and report["kept_in_float"] == []


def test_a_target_nothing_reaches_ends_with_every_kind_in_float_and_says_so():
    model, report, _ = run(1.0, floor=1)
    assert not report["reached"] and report["agreement"] == 0.99
    assert sorted(model) == sorted(k for k, _ in fidelity.KINDS) and len(report["steps"]) == 6


def test_kinds_the_model_lacks_are_not_searched():
    names = [n for n in NAMES if "pooler" not in n and "classifier" not in n]
    _, report = fidelity.search(lambda kinds: tuple(kinds), lambda kinds: FLOAT, FLOAT[:, ::-1],
                                names, 0.5)
    assert "pooler and classifier" not in [r["kind"] for r in report["ranking"]]
    assert len(report["ranking"]) == 5


def test_a_kind_in_one_layer_matches_that_layer_only():
    import re

    from bench.layer_gaps import in_layer

    names = [f"/model/bert/encoder/layer.{i}/{part}/MatMul" for i in (0, 1, 11)
             for part in ("output/dense", "attention/output/dense")]
    pattern = re.compile(in_layer("feed-forward output", 1))
    assert [n for n in names if pattern.match(n)] == ["/model/bert/encoder/layer.1/output/dense/MatMul"]
