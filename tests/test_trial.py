"""`auto` by measurement: stand-in candidates with known speeds and answers."""
import json
import re
import time
from types import SimpleNamespace

import numpy as np
import pytest

import bert_tiny
from common.run import evaluate, trial
from common.builds import fidelity
from common.backends.base import Candidate, Runner
from common.inputs.batching import Batches, Encoded, make_batches
from common.builds.cache import BuildCache
from common.host.errors import BuildTooSlow, UserError
from common.run.evaluate import Evaluation
from common.run.proofpoint import main
from common.run.results import float_as_fast_line, int8_hint

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


class Clock:
    """The trial's clock, moved on by the stand-ins' work alone: which build is faster is decided
    by the milliseconds they say, never by how busy this machine is."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


CLOCK = Clock()


class StandIns:
    """Builds that take `ms` per sentence (on the trial's clock) and answer like the reference,
    or flip every answer (True), or flip the sentences numbered in a set."""

    def __init__(self, **speeds):
        self.specs = speeds  # label -> (ms per sentence, flips)
        self.built, self.calls, self.batch_sizes = [], 0, []

    def candidates(self):
        return [Candidate("standin", label) for label in self.specs]

    def build(self, candidate: Candidate) -> Runner:
        ms, flips = self.specs[candidate.label]
        self.built.append(candidate.label)

        def predict(batch):
            self.calls += 1
            self.batch_sizes.append(len(batch["input_ids"]))
            CLOCK.now += ms / 1000 * len(batch["input_ids"])
            answer = truth(batch)
            flipped = np.ones(len(answer), bool) if flips is True else \
                np.isin(batch["input_ids"][:, 1] - 1000, list(flips or ()))
            answer[flipped] = answer[flipped][:, ::-1]
            return answer

        return Runner(name=f"standin-{candidate.label}", backend="standin", device="cpu",
                      precision=candidate.label, predict=predict, build_seconds=0.0,
                      cache_hit=True)


@pytest.fixture(autouse=True)
def standin_backend(monkeypatch):
    """Stand-in versions, and two threads: the trial's batch count must not depend on the host."""
    monkeypatch.setattr(trial, "versions_of", lambda candidates: {"standin": "1.0"})
    monkeypatch.setattr(trial, "usable_cpus", lambda: 2)
    monkeypatch.setattr(evaluate, "clock", CLOCK)


def choose(stand_ins, reference, batches, cache, context=None, **kwargs):
    return trial.choose(stand_ins.candidates(), stand_ins.build, reference, batches, cache,
                        context or {"model": "w"}, **kwargs)


def test_the_faster_build_is_chosen_not_the_one_listed_first(reference, batches, tmp_path):
    """The bf16-listed-first case: bf16 at a fifth of fp32's speed is not chosen."""
    stand_ins = StandIns(bf16=(2.0, False), fp32=(0.4, False))
    choice = choose(stand_ins, reference, batches, BuildCache(tmp_path))
    assert str(choice.candidate) == "standin fp32" and choice.runner.precision == "fp32"
    speeds = {c["precision"]: c["sent_per_s"] for c in choice.record["candidates"]}
    assert speeds["fp32"] > 3 * speeds["bf16"]
    assert choice.record["chosen"] == "standin fp32" and choice.record["runner_up"] == "standin bf16"
    assert choice.record["cached"] is False and choice.record["trial"] is True
    # whole batches of the run (4 sentences), TRIAL_BATCHES of them on a 2-thread host
    assert choice.record["trial_batches"] == trial.TRIAL_BATCHES == 4
    assert choice.record["trial_sentences"] == 16 and choice.record["batch_size"] == 4
    banner = choice.banner()
    assert banner.startswith("backend: standin fp32, ")
    assert "runner-up standin-bf16 " in banner
    # the runner-up was 5x slower: the tie clause did not decide and is not said
    assert "within 3%" not in banner and "the fastest of 2 passing the gate" in banner
    assert {c["precision"]: c["ran"] for c in choice.record["candidates"]} == {
        "bf16": "standin-bf16", "fp32": "standin-fp32"}


def test_the_trial_takes_as_many_batches_as_the_cores_could_keep_in_flight(
        reference, batches, tmp_path, monkeypatch):
    monkeypatch.setattr(trial, "usable_cpus", lambda: 6)
    choice = choose(StandIns(bf16=(0.1, False), fp32=(0.1, False)), reference, batches,
                    BuildCache(tmp_path))
    assert choice.record["trial_batches"] == 6 and choice.record["trial_sentences"] == 24


def test_each_build_is_timed_at_the_run_batch_as_its_backend_keeps_them_in_flight(
        reference, batches, tmp_path):
    """One at a time at the run's batch size (ONNX Runtime), or every trial batch handed over in
    one pass to a runner that keeps several in flight (OpenVINO): never cut into pieces."""
    one_at_a_time = StandIns(fp32=(0.1, False))
    in_flight_calls = []

    def build(candidate):
        if candidate.label == "fp32":
            return one_at_a_time.build(candidate)
        runner = one_at_a_time.build(Candidate("standin", "fp32"))
        runner.name, runner.precision, runner.in_flight = "standin-bf16", "bf16", 3
        single = runner.predict
        runner.predict_many = lambda many: (in_flight_calls.append([len(b["input_ids"]) for b in many])
                                            or ([single(b) for b in many], None))
        return runner

    candidates = [Candidate("standin", "fp32"), Candidate("standin", "bf16")]
    choice = trial.choose(candidates, build, reference, batches, BuildCache(tmp_path),
                          {"model": "w"})
    assert set(one_at_a_time.batch_sizes) == {1, 4}  # the first pass's single sentences, then 4s
    # timing rounds: every trial batch at once, whole
    assert [4, 4, 4, 4] in in_flight_calls
    assert {c["candidate"]: c["in_flight"] for c in choice.record["candidates"]} == {
        "standin fp32": 1, "standin bf16": 3}


def test_the_banner_says_what_ran_not_what_was_asked(reference, batches, tmp_path):
    """A runtime that quietly compiles bf16 as fp32 (a CPU without it) is reported as fp32."""
    stand_ins = StandIns(bf16=(0.1, False), fp32=(2.0, False))
    build = stand_ins.build

    def compiled_as_fp32(candidate):
        runner = build(candidate)
        runner.precision, runner.name = "fp32", f"standin-fp32-for-{candidate.label}"
        return runner

    choice = trial.choose(stand_ins.candidates(), compiled_as_fp32, reference, batches,
                          BuildCache(tmp_path), {"model": "w"})
    assert str(choice.candidate) == "standin bf16"  # what was tried
    assert choice.banner().startswith("backend: standin fp32, ")  # what ran
    assert "runner-up standin-fp32-for-fp32 " in choice.banner()  # the runner-up as it ran
    assert choice.record["candidates"][0]["ran"] == "standin-fp32-for-bf16"


def test_a_fast_build_that_disagrees_is_not_chosen(reference, batches, tmp_path):
    stand_ins = StandIns(fp32=(1.0, False), fp16=(0.1, True))
    choice = choose(stand_ins, reference, batches, BuildCache(tmp_path))
    assert str(choice.candidate) == "standin fp32"
    agreement = {c["precision"]: c["agreement"] for c in choice.record["candidates"]}
    assert agreement == {"fp32": 1.0, "fp16": 0.0}


@pytest.mark.parametrize("flipped, chosen", [({1}, "fp16"), ({1, 3}, "fp32")])
def test_one_boundary_sentence_does_not_trip_the_float_gate(reference, batches, tmp_path,
                                                           flipped, chosen):
    """16 trial sentences: 99.5% allows none, the boundary sentence one; two flips fail."""
    trial_ids = set(np.concatenate([batches.rows[i] for i in trial.trial_batches(batches)]))
    flips = {sorted(trial_ids)[i] for i in flipped}
    choice = choose(StandIns(fp32=(1.0, False), fp16=(0.1, flips)), reference, batches,
                    BuildCache(tmp_path))
    assert choice.record["gate"] == {"share": 0.995, "boundary_sentences": 1,
                                     "allowed_disagreements": 1, "of": 16}
    assert choice.candidate.label == chosen
    assert [c["disagreements"] for c in choice.record["candidates"]] == [0, len(flipped)]


def test_the_gate_counts_disagreements():
    assert trial.allowed_disagreements(128, 0.995) == 1  # 0.64 -> 0, plus the boundary sentence
    assert trial.allowed_disagreements(200, 0.995) == 2  # exactly 1.0, not 0.999...
    assert trial.allowed_disagreements(128, 0.95) == 7
    assert trial.allowed_disagreements(100, 0.99) == 2


def test_with_min_agreement_the_int8_gate_is_the_target(reference, batches, tmp_path,
                                                        monkeypatch):
    """32 trial sentences: 0.995 allows the boundary sentence alone, so two flips fail; the
    fixed 95% INT8 gate (two allowed) would have let them pass."""
    monkeypatch.setattr(trial, "usable_cpus", lambda: 10)
    trial_ids = sorted(np.concatenate([batches.rows[i] for i in trial.trial_batches(batches)]))
    int8 = StandIns(**{"int8+bf16": (0.1, set(trial_ids[:2])), "int8+fp32": (1.0, set())})
    candidates = [Candidate("standin", "int8", "bf16"), Candidate("standin", "int8", "fp32")]
    choice = trial.choose(candidates, int8.build, reference, batches, BuildCache(tmp_path),
                          {"model": "w"}, min_agreement=0.995)
    assert choice.record["gate"] == {"share": 0.995, "boundary_sentences": 1,
                                     "allowed_disagreements": 1, "of": 32}
    assert choice.candidate.label == "int8+fp32"
    without = trial.choose(candidates, int8.build, reference, batches, BuildCache(tmp_path / "b"),
                           {"model": "w"})
    assert without.record["gate"]["allowed_disagreements"] == 2
    assert without.candidate.label == "int8+bf16"


def test_when_none_agrees_the_closest_runs_and_the_record_says_so(reference, batches, tmp_path):
    stand_ins = StandIns(fp32=(0.1, True), bf16=(0.1, True))
    choice = choose(stand_ins, reference, batches, BuildCache(tmp_path))
    assert choice.record["why"].startswith("none passed the gate of at most 1 of the 16 trial")


def _fixed(monkeypatch, seconds: list, scores: list):
    """Timings and agreements (agreeing trial sentences of 16, gap) of the candidates, in order,
    as given."""
    timings = iter(seconds)

    class Timing:
        def __init__(self, seconds):
            self.seconds = seconds

        def throughputs(self):
            return [16 / s for s in self.seconds]

    monkeypatch.setattr(trial, "measure", lambda runs, *a, **k: [Timing(next(timings))
                                                                  for _ in runs])
    monkeypatch.setattr(trial, "agreement_figures",
                        lambda got, want, it=iter(scores): next(it))


def test_equally_fast_builds_are_told_apart_by_agreement(reference, batches, tmp_path, monkeypatch):
    """Within SAME_SPEED of each other, the one that answers more like the reference runs."""
    _fixed(monkeypatch, [[1.0, 1.0], [0.99, 0.99]], [(16, 0.1), (15, 0.2)])
    int8 = StandIns(**{"int8+fp32": (0.1, False), "int8+bf16": (0.1, False)})
    candidates = [Candidate("standin", "int8", "fp32"), Candidate("standin", "int8", "bf16")]
    choice = trial.choose(candidates, int8.build, reference, batches, BuildCache(tmp_path),
                          {"model": "w"})
    # int8+bf16 is 1% faster but agrees less: int8+fp32 runs, and the banner says why
    assert str(choice.candidate) == "standin int8+fp32"
    assert choice.record["gate"]["share"] == trial.SHARE["int8"]
    assert "; within 3% of the fastest, the one agreeing most" in choice.banner()


def test_a_faster_build_is_chosen_over_a_slower_one_that_agrees_more(reference, batches,
                                                                     tmp_path, monkeypatch):
    """Both pass the gate, 5% apart: speed decides, not agreement."""
    _fixed(monkeypatch, [[1.0, 1.0], [0.95, 0.95]], [(16, 0.1), (15, 0.2)])
    int8 = StandIns(**{"int8+fp32": (0.1, False), "int8+bf16": (0.1, False)})
    candidates = [Candidate("standin", "int8", "fp32"), Candidate("standin", "int8", "bf16")]
    choice = trial.choose(candidates, int8.build, reference, batches, BuildCache(tmp_path),
                          {"model": "w"})
    assert str(choice.candidate) == "standin int8+bf16"
    assert "within 3%" not in choice.banner()


def test_a_build_far_slower_than_the_reference_is_dropped_after_a_few_calls(
        reference, batches, tmp_path, monkeypatch):
    """As OpenVINO INT8 with an fp16 remainder ran on an AMX Xeon (1000x slower than the others):
    it is not timed, and stops as soon as its own pace says the pass would run past the limit."""
    monkeypatch.setattr(trial, "FIRST_PASS_LIMIT", 1)  # the reference's 0.4 s on the trial batches
    monkeypatch.setattr(trial, "FIRST_PASS_FLOOR_S", 0.2)
    clock = CLOCK
    stand_ins = StandIns(fp32=(0.0, False), fp16=(0.0, False))
    seconds_a_sentence = {"fp32": 0.0001, "fp16": 0.1}
    answered = []
    build = stand_ins.build

    def counting(candidate):
        runner = build(candidate)
        predict = runner.predict

        def timed(batch):
            answered.append((candidate.label, len(batch["input_ids"])))
            clock.now += seconds_a_sentence[candidate.label] * len(batch["input_ids"])
            return predict(batch)

        runner.predict = timed
        return runner

    choice = trial.choose(stand_ins.candidates(), counting, reference, batches, BuildCache(tmp_path),
                          {"model": "w"})
    assert str(choice.candidate) == "standin fp32" and choice.record["runner_up"] is None
    slow = next(c for c in choice.record["candidates"] if c["precision"] == "fp16")
    assert "sent_per_s" not in slow and "agreement" not in slow
    # its second single sentence took 0.1 s: 10 sentences/s, and the next batch of 4 would end
    # at 0.5 s, past the 0.4 s limit: two single sentences, then it stops
    assert slow["first_pass_sent_per_s"] == pytest.approx(10.0)
    assert slow["dropped"].startswith("10.0 sent/s in its first pass: the trial sentences would "
                                      "take over 0.4 s")
    assert [n for kind, n in answered if kind == "fp16"] == [1, 1]
    assert choice.banner().startswith("backend: standin fp32, ") and \
        "; too slow to time: standin-fp16 (" in choice.banner()


def test_a_build_too_slow_to_build_is_dropped_like_one_too_slow_to_time(reference, batches,
                                                                        tmp_path):
    stand_ins = StandIns(fp32=(0.1, False), bf16=(0.1, False))

    def build(candidate):
        if candidate.label == "bf16":
            raise BuildTooSlow("its validation-slice pass would take 900 s")
        return stand_ins.build(candidate)

    choice = trial.choose(stand_ins.candidates(), build, reference, batches, BuildCache(tmp_path),
                          {"model": "w"})
    assert str(choice.candidate) == "standin fp32"
    slow = next(c for c in choice.record["candidates"] if c["precision"] == "bf16")
    assert slow["dropped"] == "its validation-slice pass would take 900 s"


def test_when_every_build_is_far_slower_than_the_reference_the_trial_says_so(
        reference, batches, tmp_path, monkeypatch):
    monkeypatch.setattr(trial, "FIRST_PASS_LIMIT", 1)
    monkeypatch.setattr(trial, "FIRST_PASS_FLOOR_S", 0.2)
    with pytest.raises(UserError, match=r"^every build was too slow to time against PyTorch "
                                        r"\(standin-fp32: \d+\.\d sent/s in its first pass.*; "
                                        r"standin-bf16: .*\); pass --backend and --precision to "
                                        r"run one anyway$"):
        choose(StandIns(fp32=(100.0, False), bf16=(100.0, False)), reference, batches,
               BuildCache(tmp_path))
    assert not list((tmp_path / "entries").glob("*"))  # no decision was cached


def test_a_second_run_reuses_the_decision_and_rebuild_always_trials_again(reference, batches,
                                                                          tmp_path):
    first = StandIns(bf16=(2.0, False), fp32=(0.4, False))
    assert choose(first, reference, batches, BuildCache(tmp_path),
                  described="40 sentences of dev.tsv").record["cached"] is False
    # the same host, weights and candidates: no trial, even where the speeds have changed
    second = StandIns(bf16=(0.1, False), fp32=(2.0, False))
    choice = choose(second, reference, batches, BuildCache(tmp_path))
    assert choice.record["cached"] is True and str(choice.candidate) == "standin fp32"
    assert second.built == ["fp32"] and second.calls == 0  # only the chosen one is built
    assert choice.banner().startswith("backend: standin fp32, ")
    assert re.search(r"\(cached trial of 16 sentences, from a run of \d{4}-\d\d-\d\d \d\d:\d\d "
                     r"on 40 sentences of dev\.tsv; ", choice.banner())
    # --rebuild always: a new trial
    fourth = StandIns(bf16=(0.1, False), fp32=(2.0, False))
    choice = choose(fourth, reference, batches, BuildCache(tmp_path, "always"))
    assert choice.record["cached"] is False and str(choice.candidate) == "standin bf16"


def another(value):
    """A value that differs from `value`, whatever the host's is."""
    if isinstance(value, int):
        return value + 1
    if isinstance(value, list):
        return value[:-1] if value else ["avx2"]
    return f"{value} (another)"


def _changed(field, monkeypatch, batches, reference):
    """Change one thing a decision depends on: returns the kwargs and batches to choose with."""
    kwargs, new_batches = {}, batches
    if field in ("cpu", "family", "flags"):
        identity = trial.cpu_identity()
        changed = {**identity, field: another(identity[field])}
        monkeypatch.setattr(trial, "cpu_identity", lambda: changed)
    elif field == "threads":
        monkeypatch.setattr(trial, "usable_cpus", lambda: 3)
    elif field == "versions":
        monkeypatch.setattr(trial, "versions_of", lambda candidates: {"standin": "2.0"})
    elif field == "rule":
        monkeypatch.setattr(trial, "RULE", {**trial.RULE, "version": trial.RULE["version"] + 1})
    elif field == "recipe":
        kwargs["recipe_of"] = lambda c: {"fusions": c.label == "bf16"}
    elif field == "min_agreement":
        kwargs["min_agreement"] = 0.99
    elif field == "compared":
        kwargs["compared"] = [Candidate("standin", "fp16")]
    elif field == "trial_sentences":  # same rows, one token of one trial batch changed
        index = trial.trial_batches(batches)[0]
        changed = {**batches.inputs[index], "input_ids": batches.inputs[index]["input_ids"].copy()}
        changed["input_ids"][0, -1] += 1
        new_batches = Batches(inputs=[changed if i == index else b for i, b in
                                      enumerate(batches.inputs)], rows=batches.rows,
                              count=batches.count)
    return kwargs, new_batches


@pytest.mark.parametrize("field", ["cpu", "family", "flags", "threads", "versions", "rule",
                                   "recipe", "min_agreement", "compared", "trial_sentences"])
def test_each_thing_a_decision_depends_on_is_in_its_key(field, reference, batches, tmp_path,
                                                        monkeypatch):
    """Change it and the trial runs again (bf16 now fast); keep everything and it is reused."""
    assert choose(StandIns(bf16=(2.0, False), fp32=(0.4, False)), reference, batches,
                  BuildCache(tmp_path)).record["cached"] is False
    kept = choose(StandIns(bf16=(0.1, False), fp32=(2.0, False)), reference, batches,
                  BuildCache(tmp_path))
    assert kept.record["cached"] is True and kept.candidate.label == "fp32"
    kwargs, new_batches = _changed(field, monkeypatch, batches, reference)
    context = kwargs.pop("context", None)
    if field == "compared":
        stand_ins = StandIns(bf16=(0.1, False), fp32=(2.0, False), fp16=(2.0, False))
        choice = trial.choose(stand_ins.candidates()[:2], stand_ins.build, reference, new_batches,
                              BuildCache(tmp_path), {"model": "w"}, **kwargs)
    else:
        choice = choose(StandIns(bf16=(0.1, False), fp32=(2.0, False)), reference, new_batches,
                        BuildCache(tmp_path), context, **kwargs)
    assert choice.record["cached"] is False and choice.candidate.label == "bf16"


class Plan(SimpleNamespace):
    """What proofpoint.decide reads of a run's plan."""


def _decided(tmp_path, reference, batches, field=None, gpu_name="GPU A"):
    """proofpoint.decide on stand-in builds, with one thing the run works on changed (`field`):
    whether its decision came from the cache, and what ran."""
    from common.host import gpu
    from common.backends.base import Calibration
    from common.run.proofpoint import decide

    device = "cuda" if field in ("gpu", "gpu kept") else "cpu"
    stand_ins = StandIns(bf16=(0.1, False), fp32=(0.1, False))
    candidates = [Candidate("onnxruntime", "fp32", device=device),
                  Candidate("openvino", "bf16", device=device)]
    encoded = Encoded(ids=[np.array([101, 7, 102])], type_ids=[np.zeros(3, np.int64)],
                      max_length=16, pad_id=0)
    plan = Plan(checkpoint=SimpleNamespace(identity="model"), calibration=None, device=device,
                examples=SimpleNamespace(identity={"sha256": "data"}, sentences=["s"] * SENTENCES),
                candidates=candidates, cache=BuildCache(tmp_path), manifest=None,
                sources={"dataset": SimpleNamespace(location="data.tsv")})
    args = SimpleNamespace(backend="auto", precision="auto", batch_size=4, max_length=16,
                           min_agreement=None)
    if field == "model":
        plan.checkpoint.identity = "the config edited"
    elif field == "data":
        plan.examples.identity = {"sha256": "another file"}
    elif field == "samples":
        plan.examples.sentences = ["s"] * (SENTENCES + 1)
    elif field in ("batch_size", "max_length"):
        setattr(args, field, getattr(args, field) * 2)
    elif field == "calibration":
        plan.calibration = Calibration(source="train.tsv", seed=0, indices=np.array([3]),
                                       encoded=encoded, requested=1)
    elif field in ("min_agreement", "min_agreement rule"):
        args.min_agreement = 0.99
    elif field in ("built", "built kept"):  # --execute: what the --build it loads made
        plan.manifest = {"builds": {"onnxruntime fp32": "onnxruntime-fp32"}}
    if field == "min_agreement rule":
        patch_rule = {**fidelity.RULE, "confidence": 0.9}
    if field == "built":
        plan.manifest["builds"]["openvino bf16"] = "openvino-bf16"
    builds = SimpleNamespace(batches=batches, recipe_of=lambda candidate: {},
                             build=lambda c: stand_ins.build(Candidate("standin", c.precision)))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gpu, "gpu_info", lambda: {"name": gpu_name})
        if field == "min_agreement rule":
            patch.setattr(fidelity, "RULE", patch_rule)
        return decide(args, plan, builds, reference).record["cached"]


# the run each change is made to, where it is not the plain one
KEPT = {"gpu": "gpu kept", "min_agreement rule": "min_agreement", "built": "built kept"}


@pytest.mark.parametrize("field", ["model", "data", "samples", "batch_size", "max_length",
                                   "calibration", "min_agreement", "min_agreement rule", "built",
                                   "gpu"])
def test_the_decision_the_run_makes_is_keyed_on_what_it_works_on(field, reference, batches,
                                                                 tmp_path):
    """proofpoint.decide's own context: change one input of the run (the --min-agreement rule;
    under --execute, the builds its --build made) and the trial runs again; keep them all and
    its decision is reused."""
    kept = KEPT.get(field)
    assert _decided(tmp_path, reference, batches, kept) is False
    assert _decided(tmp_path, reference, batches, kept) is True
    if field == "gpu":  # the same run on another GPU
        assert _decided(tmp_path, reference, batches, kept, gpu_name="GPU B") is False
    else:
        assert _decided(tmp_path, reference, batches, field) is False


def _tree(root):
    return sorted((str(p.relative_to(root)), p.stat().st_mtime_ns) for p in root.rglob("*"))


def test_rebuild_never_reads_a_cached_decision_and_writes_nothing(reference, batches, tmp_path):
    choose(StandIns(bf16=(2.0, False), fp32=(0.4, False)), reference, batches, BuildCache(tmp_path))
    before = _tree(tmp_path)
    choice = choose(StandIns(bf16=(0.1, False), fp32=(2.0, False)), reference, batches,
                    BuildCache(tmp_path, "never"))
    assert choice.record["cached"] is True and choice.candidate.label == "fp32"
    assert _tree(tmp_path) == before


def test_rebuild_never_without_a_decision_trials_without_caching_and_says_so(
        reference, batches, tmp_path, capsys):
    choice = choose(StandIns(bf16=(0.1, False), fp32=(2.0, False)), reference, batches,
                    BuildCache(tmp_path, "never"))
    assert choice.record["cached"] is False and choice.candidate.label == "bf16"
    assert capsys.readouterr().err == ("--rebuild never: no cached trial decision for this host, "
                                       "data and builds; trialling without caching one\n")
    assert not tmp_path.exists() or _tree(tmp_path) == []
    assert "not cached (--rebuild never)" in choice.banner()


def test_a_single_candidate_is_built_without_a_trial(reference, batches, tmp_path):
    stand_ins = StandIns(fp32=(0.1, False))
    choice = trial.choose(stand_ins.candidates(), stand_ins.build, reference, batches,
                          BuildCache(tmp_path), {"model": "w"}, why_single="as --backend x asks")
    assert stand_ins.calls == 0 and choice.record["trial"] is False
    assert choice.banner() == "backend: standin fp32 (as --backend x asks)"
    assert not (tmp_path / "entries").exists()


def test_the_int8_figure_is_found_for_the_same_model_on_this_host(reference, batches, tmp_path,
                                                                 monkeypatch):
    # 16 trial sentences in 0.016 s against the reference's 0.1 s a batch of 4 (0.4 s): 25x
    _fixed(monkeypatch, [[0.016, 0.016], [0.032, 0.032]], [(16, 0.0), (16, 0.0)])
    cache = BuildCache(tmp_path)
    int8 = StandIns(**{"int8": (0.1, False)})
    candidates = [Candidate("standin", "int8", "fp32"), Candidate("standin", "int8", "bf16")]
    trial.choose(candidates, lambda c: int8.build(Candidate("standin", "int8")), reference,
                 batches, cache, {"model": "w"})
    hint = int8_hint(trial.cached_decisions(cache, "w", "int8"))
    assert hint == ("bert_quantize.py's trial measured standin-int8 at 25.0× the reference "
                    "(agreement 1.000 on 16 sentences)")  # named as it ran
    assert int8_hint(trial.cached_decisions(cache, "another model", "int8")) is None


@pytest.mark.parametrize("float_seconds, said", [(0.5, True), (1.02, True), (1.05, False)])
def test_float_builds_are_timed_beside_int8_in_the_same_trial_and_never_chosen(
        reference, batches, tmp_path, monkeypatch, float_seconds, said):
    """As on an AMX Xeon, where OpenVINO bf16 outran every INT8 build of MiniLM: the float build
    is timed in the INT8 trial; the INT8 build still runs, and the record says so when the float
    one was as fast (within 3%) or faster."""
    _fixed(monkeypatch, [[1.0, 1.0], [1.5, 1.5], [float_seconds] * 2],
           [(15, 0.1), (15, 0.1), (16, 0.0)])
    stand_ins = StandIns(**{"int8+fp32": (0.1, False), "int8+bf16": (0.1, False),
                            "bf16": (0.1, False)})
    int8 = [Candidate("standin", "int8", "fp32"), Candidate("standin", "int8", "bf16")]
    choice = trial.choose(int8, stand_ins.build, reference, batches, BuildCache(tmp_path),
                          {"model": "w"}, compared=[Candidate("standin", "bf16")])
    assert choice.candidate.label == "int8+fp32"
    compared = next(c for c in choice.record["candidates"] if c["candidate"] == "standin bf16")
    assert compared["compared_only"] is True and compared["sent_per_s"] == 16 / float_seconds
    found = choice.record.get("float_as_fast")
    assert (found is not None) is said
    if said:
        reference_speed = 16 / (4 * 0.1)  # the stand-in reference: 0.1 s a batch of 4
        assert found == {"float": "standin-bf16", "float_speedup": 16 / float_seconds / reference_speed,
                         "float_agreement": 1.0, "int8": "standin-int8+fp32",
                         "int8_speedup": 16 / reference_speed, "int8_agreement": 0.9375,
                         "sentences": 16}
        assert float_as_fast_line(found) == (
            f"INT8 buys no speed here: in this run's trial standin-bf16 (no INT8) ran at "
            f"{found['float_speedup']:.2f}× the reference, agreement 1.000, and standin-int8+fp32 "
            f"at {found['int8_speedup']:.2f}×, agreement 0.938, on the same 16 sentences")


def test_explicit_flags_skip_the_trial_in_the_proof_point(tiny_checkpoint, data_file, tmp_path,
                                                          monkeypatch):
    monkeypatch.setattr(evaluate, "clock", time.perf_counter)  # real builds, timed for real
    out = tmp_path / "r.json"
    argv = ["--model", str(tiny_checkpoint), "--dataset", str(data_file), "--cache-dir",
            str(tmp_path / "c"), "--json", str(out), "--repeats", "1"]
    assert main(bert_tiny.SPEC, argv + ["--backend", "onnxruntime", "--precision", "fp32"]) == 0
    choice = json.loads(out.read_text())["choice"]
    assert choice["trial"] is False and choice["why"] == "as --backend onnxruntime --precision fp32 asks"
    assert choice["candidates"] == [{"candidate": "onnxruntime fp32", "backend": "onnxruntime",
                                     "precision": "fp32"}]
