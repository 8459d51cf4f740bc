"""run_metrics on logits whose answers are known, and what the cache key does and does not cover."""
import numpy as np
import pytest

from common.backends import onnxruntime as ort_backend
from common.backends.base import BuildOptions, Runner
from common.inputs.calibration import Calibration
from common.inputs.batching import Encoded
from common.run.evaluate import Evaluation, Timing, run_metrics, timed_rows
from conftest import requires_openvino


def _runner(name, in_flight=1):
    return Runner(name=name, backend="test", device="cpu", precision="fp32", predict=lambda b: None,
                  in_flight=in_flight)


def _timing(round_seconds, sentences=4, batch_ms=np.array([1.0, 2.0, 3.0, 10.0])):
    return Timing(round_seconds=round_seconds, sentences=sentences, batch_ms=batch_ms,
                  batch1_ms=np.array([0.5, 1.5]), passes=[1] * len(round_seconds))


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
    from common.run.results import format_notes

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
    from common.inputs.batching import make_batches
    from common.run.evaluate import measure

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


def test_both_runners_time_the_same_sentences_and_batch1_times_one_call_each(monkeypatch):
    """Whatever subset the rounds time, the reference and the build time the same rows; batch-1
    latency is one call per sentence, read from the clock around each call (a fake clock here,
    that each call moves on by a known step)."""
    import common.run.evaluate as evaluate_module
    from common.run.evaluate import time_both

    clock = [0.0]
    monkeypatch.setattr(evaluate_module.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(evaluate_module, "clock", lambda: clock[0])  # the rounds'
    seen = {"reference": [], "built": []}

    def runner(name, step):
        def predict(batch):
            clock[0] += step * len(batch["input_ids"])
            if len(batch["input_ids"]) > 1:
                seen[name].extend(map(tuple, batch["input_ids"].tolist()))
            return np.zeros((len(batch["input_ids"]), 2), np.float32)
        return Runner(name=name, backend="test", device="cpu", precision="fp32", predict=predict)

    ids = [np.array([101] + [7] * n + [102]) for n in (3, 40, 9, 25, 1, 60, 12, 30)]
    encoded = Encoded(ids=ids, type_ids=[np.zeros(len(i), np.int64) for i in ids], max_length=64,
                      pad_id=0)
    reference = Evaluation(runner("reference", 0.002), np.zeros((8, 2), np.float32), 8 * 1.0)
    built = Evaluation(runner("built", 0.0005), np.zeros((8, 2), np.float32), 1.0)
    timings, timed = time_both(reference, built, encoded, 2, 2, static_shape=False)
    assert timed["sentences"] == 4 and timed["of"] == 8  # 1 s a sentence: a 4-sentence subset
    # the build first meets the subset's batches (shapes its accuracy pass did not) untimed, once
    warmed, rounds = seen["built"][:4], seen["built"][4:]
    assert sorted(seen["reference"]) == sorted(rounds) and len(rounds) == 2 * 4
    assert sorted(warmed) == sorted(set(rounds))
    assert timings[0].batch1_ms.tolist() == pytest.approx([2.0] * 4)
    assert timings[1].batch1_ms.tolist() == pytest.approx([0.5] * 4)
    assert timings[0].round_seconds == pytest.approx([0.008, 0.008])
    # a runner timed in whole passes (GroqFlow's run_abunch) is timed over every sentence
    whole_pass = runner("built", 0.0005)
    whole_pass.single_calls = False
    _, timed = time_both(reference, Evaluation(whole_pass, built.logits, 1.0), encoded, 2, 1,
                         static_shape=False)
    assert (timed["sentences"], timed["selection"]) == (8, "all")


def _built_entry(tiny_checkpoint, cache_dir, options, calibration=None):
    """Whether ONNX Runtime's INT8 build of these options was found in the cache."""
    from common.inputs.batching import make_batches, tokenize
    from common.builds.cache import BuildCache
    from common.inputs.checkpoints import load_checkpoint

    checkpoint = load_checkpoint(str(tiny_checkpoint))
    example = make_batches(tokenize(checkpoint.tokenizer, ["good film"], 128), 1).inputs[0]
    return ort_backend.build(checkpoint, example, options=options, cache=BuildCache(cache_dir),
                             calibration=calibration).cache_hit


def _calibration(checkpoint_dir, sentence):
    from common.inputs.batching import tokenize
    from transformers import AutoTokenizer

    encoded = tokenize(AutoTokenizer.from_pretrained(checkpoint_dir), [sentence], 128)
    return Calibration(source="train.tsv", seed=0, indices=np.array([3]), encoded=encoded,
                       requested=1)


def test_a_build_is_reused_only_while_options_versions_recipe_and_calibration_are_the_same(
        tiny_checkpoint, cache_dir, monkeypatch):
    dynamic = BuildOptions(precision="int8", quantization="dynamic")
    assert _built_entry(tiny_checkpoint, cache_dir, dynamic) is False
    assert _built_entry(tiny_checkpoint, cache_dir, dynamic) is True
    assert _built_entry(tiny_checkpoint, cache_dir, BuildOptions(
        precision="int8", quantization="dynamic", max_length=64)) is False
    monkeypatch.setitem(ort_backend.RECIPE, "recipe_version", ort_backend.RECIPE["recipe_version"] + 1)
    assert _built_entry(tiny_checkpoint, cache_dir, dynamic) is False
    versions = ort_backend.library_versions()
    monkeypatch.setattr(ort_backend, "library_versions",
                        lambda: {**versions, "onnxruntime": "0.0-other"})
    assert _built_entry(tiny_checkpoint, cache_dir, dynamic) is False
    static = BuildOptions(precision="int8")
    first = _calibration(tiny_checkpoint, "a fun film")
    assert _built_entry(tiny_checkpoint, cache_dir, static, first) is False
    assert _built_entry(tiny_checkpoint, cache_dir, static, first) is True
    edited = _calibration(tiny_checkpoint, "a dull film")  # the same row, another sentence
    assert _built_entry(tiny_checkpoint, cache_dir, static, edited) is False


def test_onnxruntime_builds_ignore_the_groqflow_chip_count(tiny_checkpoint, tmp_path):
    from common.inputs.batching import make_batches, tokenize
    from common.builds.cache import BuildCache
    from common.inputs.checkpoints import load_checkpoint

    checkpoint = load_checkpoint(str(tiny_checkpoint))
    example = make_batches(tokenize(checkpoint.tokenizer, ["good film"], 128), 1).inputs[0]
    cache = BuildCache(tmp_path)
    # dynamic INT8: a build of ONNX Runtime's own, under its own key (fp32 is the shared export)
    dynamic = dict(precision="int8", quantization="dynamic")
    first = ort_backend.build(checkpoint, example, options=BuildOptions(num_chips=1, **dynamic),
                              cache=cache)
    again = ort_backend.build(checkpoint, example, options=BuildOptions(num_chips=4, **dynamic),
                              cache=BuildCache(tmp_path))  # a later run
    assert first.cache_hit is False and again.cache_hit is True
    other = ort_backend.build(checkpoint, example, options=BuildOptions(
        num_chips=4, max_length=64, **dynamic), cache=BuildCache(tmp_path))
    assert other.cache_hit is False  # the key does hold the options that matter


@pytest.mark.parametrize("backend, change", [
    pytest.param(backend, change, marks=() if backend == "onnxruntime" else requires_openvino)
    for backend, change in [*((b, c) for b in ("onnxruntime", "openvino")
                              for c in ("rule", "kinds", "cpu")), ("openvino", "remainder")]])
def test_the_min_agreement_rule_is_in_the_build_key(tiny_checkpoint, tmp_path, monkeypatch,
                                                    backend, change):
    """Change how --min-agreement is decided (fidelity.RULE), what a kind of layer matches
    (fidelity.KINDS), the CPU whose arithmetic the search scored on or (OpenVINO: its INT8 IR
    serves every remainder, but the search scored at one) the float remainder it was searched
    at, and the searched INT8 build is not reused."""
    from common.builds import fidelity
    from common.backends import backend_module
    from common.inputs.batching import make_batches, tokenize
    from common.builds.cache import BuildCache
    from common.inputs.checkpoints import load_checkpoint

    checkpoint = load_checkpoint(str(tiny_checkpoint))
    example = make_batches(tokenize(checkpoint.tokenizer, ["good film"], 128), 1).inputs[0]
    encoded = tokenize(checkpoint.tokenizer, ["a fun film", "a dull film", "great actors"], 128)
    slice_ = tokenize(checkpoint.tokenizer, [f"good movie {w}" for w in ("a", "the", "it") * 4], 128)
    calibration = Calibration(source="train.tsv", seed=0, indices=np.arange(3), encoded=encoded,
                              requested=3, validation_indices=np.arange(3, 15), validation=slice_)
    options = BuildOptions(precision="int8", min_agreement=0.5)
    module = backend_module(backend)

    def hit() -> bool:
        return module.build(checkpoint, example, options=options, cache=BuildCache(tmp_path),
                            calibration=calibration).cache_hit

    assert hit() is False and hit() is True
    if change == "rule":
        monkeypatch.setattr(fidelity, "RULE", {**fidelity.RULE, "confidence": 0.9})
    elif change == "kinds":
        (kind, pattern), *rest = fidelity.KINDS
        monkeypatch.setattr(fidelity, "KINDS", ((kind, pattern + "|.*/no_such_op/.*"), *rest))
    elif change == "cpu":
        from common.inputs import calibration as calibration_module

        monkeypatch.setattr(calibration_module, "cpu_identity",
                            lambda: {"cpu": "another", "family": "", "flags": []})
    else:
        options = BuildOptions(precision="int8", remainder="bf16", min_agreement=0.5)
    assert hit() is False
