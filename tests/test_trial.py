"""`auto` by measurement: stand-in candidates with known speeds and answers."""
import json
import time

import numpy as np
import pytest

import bert_tiny
from common import trial
from common.backends.base import Candidate, Runner
from common.batching import Encoded, make_batches
from common.cache import BuildCache
from common.errors import UserError
from common.evaluate import Evaluation
from common.proofpoint import main

SENTENCES = 40


def truth(batch) -> np.ndarray:
    """The reference's answer: each sentence's second token decides its class."""
    ids = batch["input_ids"][:, 1]
    return np.stack([ids % 2, 1 - ids % 2], axis=1).astype(np.float32)


@pytest.fixture
def batches():
    ids = [np.array([101, 1000 + i] + [5] * (i % 7), dtype=np.int64) for i in range(SENTENCES)]
    encoded = Encoded(ids=ids, type_ids=[np.zeros_like(x) for x in ids], max_length=16, pad_id=0)
    return make_batches(encoded, batch_size=4)


@pytest.fixture
def reference(batches):
    runner = Runner(name="pytorch", backend="pytorch", device="cpu", precision="fp32", predict=truth)
    logits = batches.scatter([truth(b) for b in batches.inputs])
    return Evaluation(runner, logits, 1.0, tuple([0.1] * len(batches.inputs)))


class StandIns:
    """Builds that take `ms` per sentence and answer like the reference, or flip every answer."""

    def __init__(self, **speeds):
        self.specs = speeds  # label -> (ms per sentence, flips)
        self.built, self.calls = [], 0

    def candidates(self):
        return [Candidate("standin", label) for label in self.specs]

    def build(self, candidate: Candidate) -> Runner:
        ms, flips = self.specs[candidate.precision]
        self.built.append(candidate.precision)

        def predict(batch):
            self.calls += 1
            time.sleep(ms / 1000 * len(batch["input_ids"]))
            answer = truth(batch)
            return answer[:, ::-1].copy() if flips else answer

        return Runner(name=f"standin-{candidate.precision}", backend="standin", device="cpu",
                      precision=candidate.precision, predict=predict, build_seconds=0.0,
                      cache_hit=True)


@pytest.fixture(autouse=True)
def standin_backend(monkeypatch):
    monkeypatch.setattr(trial, "versions_of", lambda candidates: {"standin": "1.0"})


def choose(stand_ins, reference, batches, cache, context=None):
    return trial.choose(stand_ins.candidates(), stand_ins.build, reference, batches, cache,
                        context or {"weights": "w"})


def test_the_faster_build_is_chosen_not_the_one_listed_first(reference, batches, tmp_path):
    """The bf16-listed-first case: bf16 at a fifth of fp32's speed is not chosen."""
    stand_ins = StandIns(bf16=(2.0, False), fp32=(0.4, False))
    choice = choose(stand_ins, reference, batches, BuildCache(tmp_path))
    assert str(choice.candidate) == "standin fp32" and choice.runner.precision == "fp32"
    speeds = {c["precision"]: c["sent_per_s"] for c in choice.record["candidates"]}
    assert speeds["fp32"] > 3 * speeds["bf16"]
    assert choice.record["chosen"] == "standin fp32" and choice.record["runner_up"] == "standin bf16"
    assert choice.record["cached"] is False and choice.record["trial"] is True
    assert choice.record["trial_batches"] == trial.TRIAL_BATCHES  # 0.1 s a batch: 4 fit in 0.5 s
    assert choice.record["trial_sentences"] == 4 * trial.TRIAL_BATCHES
    assert choice.record["pieces_per_batch"] == 2  # two batches in flight at least
    assert choice.banner().startswith("backend: standin fp32, ")
    assert "runner-up standin bf16" in choice.banner()
    assert {c["precision"]: c["ran"] for c in choice.record["candidates"]} == {
        "bf16": "standin-bf16", "fp32": "standin-fp32"}


def test_the_banner_says_what_ran_not_what_was_asked(reference, batches, tmp_path):
    """A runtime that quietly compiles bf16 as fp32 (a CPU without it) is reported as fp32."""
    stand_ins = StandIns(bf16=(0.1, False), fp32=(2.0, False))
    build = stand_ins.build

    def compiled_as_fp32(candidate):
        runner = build(candidate)
        runner.precision, runner.name = "fp32", "standin-fp32"
        return runner

    choice = trial.choose(stand_ins.candidates(), compiled_as_fp32, reference, batches,
                          BuildCache(tmp_path), {"weights": "w"})
    assert str(choice.candidate) == "standin bf16"  # what was tried
    assert choice.banner().startswith("backend: standin fp32, ")  # what ran
    assert choice.record["candidates"][0]["ran"] == "standin-fp32"


def test_a_fast_build_that_disagrees_is_not_chosen(reference, batches, tmp_path):
    stand_ins = StandIns(fp32=(1.0, False), fp16=(0.1, True))
    choice = choose(stand_ins, reference, batches, BuildCache(tmp_path))
    assert str(choice.candidate) == "standin fp32"
    agreement = {c["precision"]: c["agreement"] for c in choice.record["candidates"]}
    assert agreement == {"fp32": 1.0, "fp16": 0.0}


def test_when_none_agrees_the_closest_runs_and_the_record_says_so(reference, batches, tmp_path):
    stand_ins = StandIns(fp32=(0.1, True), bf16=(0.1, True))
    choice = choose(stand_ins, reference, batches, BuildCache(tmp_path))
    assert choice.record["why"].startswith("none agreed with the reference")


def test_equally_fast_builds_are_told_apart_by_agreement(reference, batches, tmp_path, monkeypatch):
    """Within SAME_SPEED of each other, the one that answers more like the reference runs."""
    timings = iter([[1.0, 1.0, 1.0], [0.99, 0.99, 0.99]])

    class Timing:
        def __init__(self, seconds):
            self.seconds = seconds

        def throughputs(self):
            return [16 / s for s in self.seconds]

    monkeypatch.setattr(trial, "measure", lambda runs, *a, **k: [Timing(next(timings))
                                                                  for _ in runs])
    monkeypatch.setattr(trial, "_agreement",
                        lambda outputs, expected, scores=iter([(1.0, 0.1), (0.96, 0.2)]): next(scores))
    stand_ins = StandIns(**{"int8+fp32": (0.1, False), "int8+bf16": (0.1, False)})
    stand_ins_candidates = [Candidate("standin", "int8", "fp32"), Candidate("standin", "int8", "bf16")]
    choice = trial.choose(stand_ins_candidates, lambda c: stand_ins.build(Candidate("standin", c.label)),
                          reference, batches, BuildCache(tmp_path), {"weights": "w"})
    # int8+bf16 is 1% faster but agrees less: int8+fp32 runs
    assert str(choice.candidate) == "standin int8+fp32"
    assert choice.record["agreement_threshold"] == trial.AGREEMENT["int8"]


def test_a_build_far_slower_than_the_reference_is_dropped_after_a_few_calls(
        reference, batches, tmp_path, monkeypatch):
    """As OpenVINO INT8 with an fp16 remainder ran on an AMX Xeon (1000x slower than the others):
    it is not timed, and stops as soon as its own pace says the pass would run past the limit."""
    monkeypatch.setattr(trial, "FIRST_PASS_LIMIT", 1)  # the reference's 0.4 s on the trial batches
    monkeypatch.setattr(trial, "FIRST_PASS_FLOOR_S", 0.2)
    stand_ins = StandIns(fp32=(0.1, False), fp16=(100.0, False))  # 100 ms a sentence
    answered = []
    build = stand_ins.build

    def counting(candidate):
        runner = build(candidate)
        predict = runner.predict
        runner.predict = lambda batch: answered.append((candidate.precision, len(batch["input_ids"]))) \
            or predict(batch)
        return runner

    start = time.perf_counter()
    choice = trial.choose(stand_ins.candidates(), counting, reference, batches, BuildCache(tmp_path),
                          {"weights": "w"})
    assert time.perf_counter() - start < 2.0
    assert str(choice.candidate) == "standin fp32" and choice.record["runner_up"] is None
    slow = next(c for c in choice.record["candidates"] if c["precision"] == "fp16")
    assert "sent_per_s" not in slow and "agreement" not in slow
    assert 8 < slow["first_pass_sent_per_s"] < 10.5  # 100 ms a sentence, sleep's overshoot aside
    assert slow["dropped"].startswith(f"{slow['first_pass_sent_per_s']:.1f} sent/s in its first "
                                      "pass: the trial sentences would take over 0.4 s")
    # two single sentences, then one 2-sentence piece: 0.1 + 0.2 s, the next would pass 0.4 s
    assert [n for kind, n in answered if kind == "fp16"] == [1, 1, 2]
    assert choice.banner().startswith("backend: standin fp32, ") and \
        "; too slow to time: standin fp16 (" in choice.banner()


def test_when_every_build_is_far_slower_than_the_reference_the_trial_says_so(
        reference, batches, tmp_path, monkeypatch):
    monkeypatch.setattr(trial, "FIRST_PASS_LIMIT", 1)
    monkeypatch.setattr(trial, "FIRST_PASS_FLOOR_S", 0.2)
    with pytest.raises(UserError, match=r"^every build ran over 1× slower than PyTorch in its first "
                                        r"trial pass \(standin fp32 \d+\.\d sent/s; standin bf16 "
                                        r"\d+\.\d sent/s\); pass --backend and --precision to run "
                                        r"one anyway$"):
        choose(StandIns(fp32=(100.0, False), bf16=(100.0, False)), reference, batches,
               BuildCache(tmp_path))
    assert not list((tmp_path / "entries").glob("*"))  # no decision was cached


def test_a_second_run_reuses_the_decision_and_rebuild_always_trials_again(reference, batches,
                                                                          tmp_path):
    first = StandIns(bf16=(2.0, False), fp32=(0.4, False))
    assert choose(first, reference, batches, BuildCache(tmp_path)).record["cached"] is False
    # the same host, weights and candidates: no trial, even where the speeds have changed
    second = StandIns(bf16=(0.1, False), fp32=(2.0, False))
    choice = choose(second, reference, batches, BuildCache(tmp_path))
    assert choice.record["cached"] is True and str(choice.candidate) == "standin fp32"
    assert second.built == ["fp32"] and second.calls == 0  # only the chosen one is built
    assert choice.banner().startswith("backend: standin fp32, ") and "cached trial" in choice.banner()
    # other weights: a new trial
    third = StandIns(bf16=(0.1, False), fp32=(2.0, False))
    assert str(choose(third, reference, batches, BuildCache(tmp_path),
                      {"weights": "other"}).candidate) == "standin bf16"
    # --rebuild always: a new trial
    fourth = StandIns(bf16=(0.1, False), fp32=(2.0, False))
    choice = choose(fourth, reference, batches, BuildCache(tmp_path, "always"))
    assert choice.record["cached"] is False and str(choice.candidate) == "standin bf16"


def test_another_cpu_named_alike_trials_again(reference, batches, tmp_path, monkeypatch):
    """A VM may call two CPUs "AMD EPYC": the family and model numbers keep their decisions apart."""
    assert choose(StandIns(bf16=(2.0, False), fp32=(0.4, False)), reference, batches,
                  BuildCache(tmp_path)).record["cached"] is False
    info = {**trial.cpu_info(), "family": "family 25 model 17"}
    monkeypatch.setattr(trial, "cpu_info", lambda: info)
    other_cpu = StandIns(bf16=(0.1, False), fp32=(2.0, False))  # bf16 fast on this one
    choice = choose(other_cpu, reference, batches, BuildCache(tmp_path))
    assert choice.record["cached"] is False and str(choice.candidate) == "standin bf16"


def test_a_single_candidate_is_built_without_a_trial(reference, batches, tmp_path):
    stand_ins = StandIns(fp32=(0.1, False))
    choice = trial.choose(stand_ins.candidates(), stand_ins.build, reference, batches,
                          BuildCache(tmp_path), {"weights": "w"}, why_single="as --backend x asks")
    assert stand_ins.calls == 0 and choice.record["trial"] is False
    assert choice.banner() == "backend: standin fp32 (as --backend x asks)"
    assert not (tmp_path / "entries").exists()


def test_the_int8_figure_is_found_for_the_same_weights_on_this_host(reference, batches, tmp_path):
    cache = BuildCache(tmp_path)
    int8 = StandIns(**{"int8": (0.1, False)})
    candidates = [Candidate("standin", "int8", "fp32"), Candidate("standin", "int8", "bf16")]
    trial.choose(candidates, lambda c: int8.build(Candidate("standin", "int8")), reference,
                 batches, cache, {"weights": "w"})
    hint = trial.int8_hint(cache, "w")
    assert hint.startswith("bert_quantize.py's trial measured standin-int8 at ")  # as it ran
    # 0.1 ms a sentence against the reference's 0.1 s a batch of 4: about 250x
    assert 100 < float(hint.split(" at ")[1].split("×")[0]) < 260
    assert trial.int8_hint(cache, "other weights") is None


def test_a_float_build_faster_than_int8_here_is_said_from_the_float_trial(reference, batches,
                                                                          tmp_path):
    """As on an AMX Xeon, where OpenVINO bf16 outran every INT8 build of MiniLM."""
    cache = BuildCache(tmp_path)
    floats = StandIns(bf16=(0.5, False), fp32=(2.0, False))  # 0.5 ms a sentence: ~50x the reference
    float_record = choose(floats, reference, batches, cache).record
    int8_record = {"chosen": "standin int8+bf16", "reference_sent_per_s": 40.0, "candidates": [
        {"candidate": "standin int8+bf16", "ran": "standin-int8+fp32", "sent_per_s": 400.0}]}
    hint = trial.float_hint(cache, "w", int8_record)
    ratio = float_record["candidates"][0]["sent_per_s"] / float_record["reference_sent_per_s"]
    # 10x the reference; each build named as it ran (here a remainder other than the one asked)
    assert hint == (f"bert_base.py's trial on this host measured standin-bf16 (no INT8) at "
                    f"{ratio:.1f}× the reference, agreement 1.000 on "
                    f"{float_record['trial_sentences']} sentences: faster than this run's trial "
                    "measured standin-int8+fp32 (10.0×)")
    faster_int8 = {**int8_record, "reference_sent_per_s": 0.4}  # 1000x
    assert trial.float_hint(cache, "w", faster_int8) is None
    # within a trial's noise of each other: nothing said
    as_fast = {**int8_record, "reference_sent_per_s": 400.0 / (ratio / 1.02)}
    assert trial.float_hint(cache, "w", as_fast) is None
    assert trial.float_hint(cache, "other weights", int8_record) is None


def test_explicit_flags_skip_the_trial_in_the_proof_point(tiny_checkpoint, data_file, tmp_path):
    out = tmp_path / "r.json"
    argv = ["--model", str(tiny_checkpoint), "--dataset", str(data_file), "--cache-dir",
            str(tmp_path / "c"), "--json", str(out), "--repeats", "1"]
    assert main(bert_tiny.SPEC, argv + ["--backend", "onnxruntime", "--precision", "fp32"]) == 0
    choice = json.loads(out.read_text())["choice"]
    assert choice["trial"] is False and choice["why"] == "as --backend onnxruntime --precision fp32 asks"
    assert choice["candidates"] == [{"candidate": "onnxruntime fp32", "backend": "onnxruntime",
                                     "precision": "fp32"}]
