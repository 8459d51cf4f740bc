"""run_metrics on logits whose answers are known, and what the cache key does and does not cover."""
import numpy as np
import pytest

from common.backends import onnxruntime as ort_backend
from common.backends import openvino as ov_backend
from common.backends.base import BuildOptions, Calibration, Runner, cache_key_parts
from common.batching import Encoded
from common.cache import cache_key
from common.evaluate import Evaluation, Timing, run_metrics, timed_rows


def _runner(name, in_flight=1):
    return Runner(name=name, backend="test", device="cpu", precision="fp32", predict=lambda b: None,
                  in_flight=in_flight)


def _timing(round_seconds, sentences=4, batch_ms=np.array([1.0, 2.0, 3.0, 10.0])):
    return Timing(round_seconds=round_seconds, sentences=sentences, batch_ms=batch_ms,
                  batch1_ms=np.array([0.5, 1.5]))


def test_run_metrics_on_known_logits():
    labels = np.array([1, 0, 1, 0])
    reference = Evaluation(_runner("ref"), np.array([[0, 1], [1, 0], [1, 0], [1, 0]], np.float32), 1.0)
    built = Evaluation(_runner("built"), np.array([[0, 1], [0, 2], [0.5, 0], [4, 0]], np.float32), 1.0)
    ref_entry = run_metrics(reference, _timing([2.0, 4.0, 3.0]), labels, "reference")
    entry = run_metrics(built, _timing([1.0, 1.0, 0.5]), labels, "built", reference,
                        _timing([2.0, 4.0, 3.0]))
    assert ref_entry["accuracy"] == 0.75 and ref_entry["agreement"] is None
    assert entry["accuracy"] == 0.5  # rows 0 and 3 right
    assert entry["agreement"] == 0.75  # row 1 flipped
    assert entry["max_abs_logit_diff"] == pytest.approx(3.0)  # row 3: |4 - 1| (row 1: |2 - 0|)
    assert entry["speedup"] == {"median": 4.0, "min": 2.0, "max": 6.0}  # 2/1, 4/1, 3/0.5
    assert entry["throughput"] == {"median": 4.0, "min": 4.0, "max": 8.0}  # 4 sentences per round
    assert entry["serial_batch_latency_ms"]["p50"] == pytest.approx(2.5)
    assert entry["in_flight_batch_latency_ms"] is None
    assert entry["batch1_latency_ms"]["p50"] == pytest.approx(1.0)
    assert entry["unsteady"] is True and ref_entry["unsteady"] is True  # 1.0 vs 0.5; 4.0 vs 2.0


def test_each_latency_is_named_for_what_was_measured_and_none_is_made_up():
    """Batches with others in flight are not a serial latency; a runner that times no batch
    (GroqFlow's whole run_abunch pass) has neither."""
    labels = np.array([1, 0])
    logits = np.array([[0, 1], [1, 0]], np.float32)
    queued = run_metrics(Evaluation(_runner("queued", in_flight=3), logits, 1.0), _timing([1.0]),
                         labels, "built")
    assert queued["serial_batch_latency_ms"] is None
    assert queued["in_flight_batch_latency_ms"] == pytest.approx(
        {"p50": 2.5, "p90": 7.9, "p99": 9.79, "in_flight": 3})
    whole = run_metrics(Evaluation(_runner("whole-pass"), logits, 1.0),
                        _timing([1.0], batch_ms=None), labels, "built")
    assert whole["serial_batch_latency_ms"] is None and whole["in_flight_batch_latency_ms"] is None


def test_a_busy_machine_is_said_under_the_table():
    from common.report import format_notes

    labels = np.array([1, 0])
    evaluation = Evaluation(_runner("steady"), np.array([[0, 1], [1, 0]], np.float32), 1.0)
    steady = run_metrics(evaluation, _timing([1.0, 1.4, 1.2], 2), labels, "reference")
    busy = run_metrics(Evaluation(_runner("busy"), evaluation.logits, 1.0),
                       _timing([1.0, 1.6, 1.2], 2), labels, "built")
    assert steady["unsteady"] is False and busy["unsteady"] is True
    timing = {"rounds": 3, "sentences": 2, "of": 2, "selection": "all", "batch1_sentences": 2,
              "batch1_input_length": 128}
    notes = format_notes({"timing": timing, "runs": [steady, busy]}).splitlines()
    assert [line for line in notes if "busy" in line] == [
        "busy: its slowest round took 1.6× its fastest: the machine was busy and the speed figures "
        "are unreliable; --repeats 9 narrows the median"]


def test_rounds_alternate_which_runner_goes_first():
    from common.batching import make_batches
    from common.evaluate import measure

    calls = []

    def runner(name):
        return Runner(name=name, backend="test", device="cpu", precision="fp32",
                      predict=lambda batch: calls.append(name) or np.zeros((1, 2), np.float32))

    ids = [np.array([101, 5, 102])]
    batches = make_batches(Encoded(ids=ids, type_ids=[np.zeros(3, np.int64)], max_length=8,
                                   pad_id=0), 1)
    timings = measure([(runner("a"), batches, None), (runner("b"), batches, None)], 1, 4)
    assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert [len(t.round_seconds) for t in timings] == [4, 4]


def test_rounds_time_a_length_spread_subset_only_when_a_pass_is_slow():
    lengths = [5, 50, 10, 40, 20, 30, 8, 60]
    np.testing.assert_array_equal(timed_rows(lengths, 0.01), np.arange(8))  # 0.08 s a pass: all
    rows = timed_rows(lengths, 1.0)  # 4 s of budget at 1 s a sentence: 4 rows
    assert len(rows) == 4 and list(rows) == sorted(rows)
    chosen = sorted(lengths[i] for i in rows)
    assert chosen[0] == 5 and chosen[-1] == 60  # the shortest and the longest are both timed


def _calibration(tokens):
    encoded = Encoded(ids=[np.array(tokens)], type_ids=[np.zeros(len(tokens), np.int64)],
                      max_length=128, pad_id=0)
    return Calibration(source="train.tsv", seed=0, indices=np.array([3]), encoded=encoded, requested=1)


def _key(options=BuildOptions(), versions=None, recipe=None, calibration=None, backend=ort_backend):
    relevant = {k: v for k, v in vars(options).items() if k not in ("num_chips", "compiler_flags")}
    return cache_key(cache_key_parts(backend.NAME, "weights", relevant,
                                     versions or {"onnxruntime": "1.0"},
                                     recipe or backend.RECIPE, calibration))


def test_cache_key_covers_options_versions_recipe_and_calibration_tokens():
    base = _key()
    assert _key() == base
    assert _key(BuildOptions(precision="int8")) != base
    assert _key(BuildOptions(max_length=64)) != base
    assert _key(versions={"onnxruntime": "1.1"}) != base
    assert _key(recipe={**ort_backend.RECIPE, "opset": 18}) != base
    assert _key(backend=ov_backend, recipe=ov_backend.RECIPE) != base
    int8 = BuildOptions(precision="int8")
    assert _key(int8, calibration=_calibration([101, 7, 102])) != \
        _key(int8, calibration=_calibration([101, 8, 102]))  # same rows, edited sentence


def test_onnxruntime_builds_ignore_the_groqflow_chip_count(tiny_checkpoint, tmp_path):
    from common.batching import make_batches, tokenize
    from common.cache import BuildCache
    from common.checkpoints import load_checkpoint

    checkpoint = load_checkpoint(str(tiny_checkpoint))
    example = make_batches(tokenize(checkpoint.tokenizer, ["good film"], 128), 1).inputs[0]
    cache = BuildCache(tmp_path)
    first = ort_backend.build(checkpoint, example, options=BuildOptions(num_chips=1), cache=cache)
    again = ort_backend.build(checkpoint, example, options=BuildOptions(num_chips=4),
                              cache=BuildCache(tmp_path))  # a later run
    assert first.cache_hit is False and again.cache_hit is True
