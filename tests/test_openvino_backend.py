"""The OpenVINO backend on tiny random checkpoints: candidates, parity, order, cache, INT8."""
import json
import types

import numpy as np
import pytest

pytest.importorskip("openvino")

import bert_quantize
import bert_tiny
from common.run.offers import candidates_for
from common.backends import openvino as ov_backend
from common.backends.base import BuildOptions
from common.inputs.calibration import Calibration
from common.backends.torch_ref import reference_runner
from common.inputs.batching import make_batches, tokenize
from common.builds.cache import BuildCache
from common.inputs.checkpoints import load_checkpoint
from common.host.cpu import usable_cpus
from common.host.errors import UserError
from common.run.proofpoint import main
from conftest import SENTENCES, chosen_by_the_rule


class FakeCore:
    def __init__(self, capabilities):
        self.capabilities = capabilities

    def get_property(self, device, name):
        assert (device, name) == ("CPU", "OPTIMIZATION_CAPABILITIES")
        return self.capabilities


class ListingCore(FakeCore):
    """OpenVINO's own Core, listing these capabilities whatever this CPU lists (it compiles what
    the CPU really runs, and says so)."""

    def __init__(self, capabilities):
        import openvino

        super().__init__(capabilities)
        self.core = openvino.Core()

    def __getattr__(self, name):
        return getattr(self.core, name)


@pytest.mark.parametrize("capabilities, floats", [
    (["FP32", "INT8", "BIN"], ["fp32"]),  # AVX2-only CPU
    (["BF16", "FP32", "INT8"], ["fp32", "bf16"]),  # AMX or AVX-512 BF16
    (["BF16", "FP16", "FP32", "INT8"], ["fp32", "bf16", "fp16"]),
])
def test_candidates_are_what_openvino_can_compile_here(monkeypatch, capabilities, floats):
    """The capability list decides what can be tried, never which one runs (that is measured)."""
    monkeypatch.setattr(ov_backend, "_core", lambda: FakeCore(capabilities))
    assert [c.label for c in ov_backend.offers("cpu", None).trialled] == floats
    assert [c.label for c in ov_backend.offers("cpu", "static").trialled] == [f"int8+{p}" for p in floats]
    assert ov_backend.offers("cpu", "dynamic").every == () and ov_backend.offers("cuda", None).every == ()
    found = candidates_for("openvino", "cpu", None, "fp32").candidates
    assert [str(c) for c in found] == ["openvino fp32"]


def test_a_precision_the_cpu_lacks_is_one_clear_line(monkeypatch, tiny_checkpoint, data_file,
                                                     cache_dir, capsys):
    monkeypatch.setattr(ov_backend, "_core", lambda: FakeCore(["FP32", "INT8"]))
    code = main(bert_tiny.SPEC, ["--model", str(tiny_checkpoint), "--dataset", str(data_file),
                                 "--cache-dir", str(cache_dir), "--backend", "openvino",
                                 "--precision", "bf16"])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "bert_tiny: error: --precision bf16: openvino on cpu builds fp32 here"]
    assert not cache_dir.exists()


def test_auto_offers_both_cpu_backends_and_only_onnxruntime_where_openvino_does_not_build(
        monkeypatch, no_gpu):
    monkeypatch.setattr(ov_backend, "_core", lambda: FakeCore(["BF16", "FP32"]))
    offer = candidates_for("auto", "auto", None)
    assert [str(c) for c in offer.candidates] == ["openvino fp32", "openvino bf16",
                                                  "onnxruntime fp32"]
    assert offer.note.startswith("GroqFlow not usable") and offer.device == "cpu"
    found = candidates_for("auto", "cpu", "static").candidates
    assert [str(c) for c in found] == ["openvino int8+fp32", "openvino int8+bf16",
                                       "onnxruntime int8+fp32"]
    found = candidates_for("auto", "cpu", "dynamic").candidates
    assert [str(c) for c in found] == ["onnxruntime int8+fp32"]
    with pytest.raises(UserError, match="--quantization dynamic is not built by openvino"):
        candidates_for("openvino", "cpu", "dynamic")
    with pytest.raises(UserError, match=r"^--precision fp16: openvino and onnxruntime on cpu "
                                        r"build fp32 or bf16 here$"):
        candidates_for("auto", "cpu", None, "fp16")


def test_openvino_named_on_a_gpu_host_runs_on_the_cpu_unless_cuda_is_asked_for(
        monkeypatch, simulated_gpu):
    monkeypatch.setattr(ov_backend, "_core", lambda: FakeCore(["BF16", "FP32"]))
    offer = candidates_for("openvino", "auto", None)
    assert [str(c) for c in offer.candidates] == ["openvino fp32", "openvino bf16"]
    assert offer.note == "no openvino build for the GPU here: it runs on the CPU"
    with pytest.raises(UserError, match=r"^openvino builds nothing for --device cuda here \(OpenVINO "
                                        r"builds for the CPU here\); --backend torch_compile "
                                        r"builds for the GPU$"):
        candidates_for("openvino", "cuda", None)


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint):
    checkpoint = load_checkpoint(str(tiny_checkpoint))
    batches = make_batches(tokenize(checkpoint.tokenizer, [s for s, _ in SENTENCES], 128), 5)
    return checkpoint, batches


def test_fp32_build_matches_pytorch_batch_by_batch_with_batches_in_flight(tiny, cache_dir):
    checkpoint, batches = tiny
    built = ov_backend.build(checkpoint, batches.inputs[0], options=BuildOptions(precision="fp32"),
                             cache=BuildCache(cache_dir))
    assert built.precision == "fp32" and built.facts["inference_precision"] == "fp32"
    # what OpenVINO settled on, read back: the one thread count, and a request per stream
    passes = built.runtime["passes"]
    assert passes["performance_hint"] == "THROUGHPUT" and passes["threads"] == usable_cpus()
    assert built.in_flight == built.facts["infer_requests"] == passes["infer_requests"] >= 1
    reference = reference_runner(checkpoint.model)
    # three batches of different sizes and widths, in flight together: each answer in its place
    outputs, seconds = built.run_all(batches.inputs)
    assert len(outputs) == len(batches.inputs) and all(s > 0 for s in seconds)
    for batch, out in zip(batches.inputs, outputs):
        np.testing.assert_allclose(out, reference(batch), atol=1e-4, rtol=0)
    np.testing.assert_allclose(built(batches.inputs[1]), reference(batches.inputs[1]), atol=1e-4)
    single = built.runtime["single_calls"]  # compiled on the first single call
    assert single["performance_hint"] == "LATENCY" and single["threads"] == usable_cpus()


class FakeAsyncQueue:
    """OpenVINO's AsyncInferQueue, but the requests finish in the reverse of their launch order:
    the pass must put each answer back in its batch's place, not in the order they came."""

    def __init__(self, compiled, jobs):
        self.launched, self.callback = [], None

    def set_callback(self, callback):
        self.callback = callback

    def get_idle_request_id(self):
        return 0

    def start_async(self, inputs, userdata):
        self.launched.append((inputs, userdata))

    def wait_all(self):
        for inputs, userdata in reversed(self.launched):
            tensor = types.SimpleNamespace(data=inputs["input_ids"][:, :2].astype(np.float32))
            self.callback(types.SimpleNamespace(get_output_tensor=lambda i, t=tensor: t), userdata)
        self.launched.clear()


def test_a_pass_puts_answers_in_batch_order_when_later_requests_finish_first(monkeypatch):
    monkeypatch.setattr(ov_backend, "_openvino", lambda: types.SimpleNamespace(
        AsyncInferQueue=FakeAsyncQueue))
    port = types.SimpleNamespace(get_any_name=lambda: "input_ids")
    predict_many = ov_backend.pass_predictor(types.SimpleNamespace(inputs=[port]), requests=4)
    batches = [{"input_ids": np.full((2, 3), i, dtype=np.int64)} for i in range(5)]
    outputs, seconds = predict_many(batches)
    assert [int(out[0, 0]) for out in outputs] == [0, 1, 2, 3, 4]
    assert len(seconds) == 5 and all(s >= 0 for s in seconds)


def test_openvino_and_nncf_telemetry_stay_off(tiny, cache_dir, tmp_path, monkeypatch):
    """Outside CI, with no opt-out file, openvino_telemetry would send (one forked process per
    message): our processes decline its consent check."""
    from openvino_telemetry import Telemetry

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/intel/openvino_telemetry opt-out file
    checkpoint, batches = tiny
    ov_backend.build(checkpoint, batches.inputs[0], options=BuildOptions(precision="fp32"),
                     cache=BuildCache(cache_dir))  # converts: the converter initialises telemetry
    assert Telemetry().consent is False
    assert not (tmp_path / "intel").exists()  # nothing written into the user's home


def test_bf16_is_labelled_as_openvino_compiled_it(tiny, cache_dir):
    """Asked for bf16, the build says what OpenVINO reports compiling on this CPU: bf16 where the
    CPU runs it (close to fp32, not equal), fp32 where it does not (equal)."""
    import openvino

    checkpoint, batches = tiny
    built = ov_backend.build(checkpoint, batches.inputs[0], options=BuildOptions(precision="bf16"),
                             cache=BuildCache(cache_dir))
    (ir,) = (cache_dir / "entries").glob("ov-float-*")
    compiled = openvino.Core().compile_model(str(ir / "model.xml"), "CPU",
                                             {"INFERENCE_PRECISION_HINT": "bf16"})
    reported = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    assert (built.precision, built.name) == {"bf16": ("bf16", "openvino-bf16"),
                                             "f32": ("fp32", "openvino-fp32")}[reported]
    reference = reference_runner(checkpoint.model)
    gap = max(np.abs(built(b) - reference(b)).max() for b in batches.inputs)
    assert 0 < gap < 0.1 if built.precision == "bf16" else gap < 1e-5


def test_a_precision_compiled_otherwise_than_asked_is_labelled_as_compiled(tiny, cache_dir,
                                                                          monkeypatch):
    checkpoint, batches = tiny
    compile_ir = ov_backend.compile_ir
    monkeypatch.setattr(ov_backend, "compile_ir",
                        lambda model, precision, hint="THROUGHPUT": compile_ir(model, "fp32", hint))
    built = ov_backend.build(checkpoint, batches.inputs[0], options=BuildOptions(precision="bf16"),
                             cache=BuildCache(cache_dir))
    assert (built.precision, built.name) == ("fp32", "openvino-fp32")
    assert built.facts["inference_precision"] == "fp32"


def test_float_builds_share_one_ir_and_a_recipe_change_rebuilds(tiny, cache_dir):
    checkpoint, batches = tiny
    cache = BuildCache(cache_dir)
    first = ov_backend.build(checkpoint, batches.inputs[0], options=BuildOptions(precision="fp32"),
                             cache=cache)
    again = ov_backend.build(checkpoint, batches.inputs[0], options=BuildOptions(precision="fp32"),
                             cache=BuildCache(cache_dir))  # a later run
    bf16 = ov_backend.build(checkpoint, batches.inputs[0], options=BuildOptions(precision="bf16"),
                            cache=BuildCache(cache_dir))
    assert first.cache_hit is False and again.cache_hit is True and bf16.cache_hit is True
    (ir,) = (cache_dir / "entries").glob("ov-float-*")
    assert {p.name for p in ir.iterdir()} == {"model.xml", "model.bin", "state.json"}
    ov_backend.RECIPE["recipe_version"] += 1
    try:
        changed = ov_backend.build(checkpoint, batches.inputs[0],
                                   options=BuildOptions(precision="fp32"), cache=cache)
    finally:
        ov_backend.RECIPE["recipe_version"] -= 1
    assert changed.cache_hit is False


def _calibration(checkpoint, rows, seed=0):
    encoded = tokenize(checkpoint.tokenizer, rows, 128)
    return Calibration(source="test", seed=seed, indices=np.arange(len(rows)), encoded=encoded,
                       requested=len(rows))


def test_int8_is_nncf_quantized_cached_and_keyed_on_its_recipe(tiny, cache_dir):
    import openvino as ov

    checkpoint, batches = tiny
    calibration = _calibration(checkpoint, [s for s, _ in SENTENCES] * 3)
    cache = BuildCache(cache_dir)
    options = BuildOptions(precision="int8")
    built = ov_backend.build(checkpoint, batches.inputs[0], options=options, cache=cache,
                             calibration=calibration)
    assert built.precision == "int8+fp32" and built.name == "openvino-int8+fp32"  # fp32 remainder
    assert built.facts["int8_bytes"] < built.facts["fp32_bytes"]
    entry = next((cache_dir / "entries").glob("ov-int8-*"))
    ops = [op.get_type_name() for op in ov.Core().read_model(str(entry / "model.xml")).get_ops()]
    assert ops.count("FakeQuantize") >= 2 * 4  # the weight MatMuls of 2 layers, at least
    reference = reference_runner(checkpoint.model)
    outputs, _ = built.run_all(batches.inputs)
    gap = max(np.abs(out - reference(b)).max() for b, out in zip(batches.inputs, outputs))
    assert gap < 0.5
    assert ov_backend.build(checkpoint, batches.inputs[0], options=options,
                            cache=BuildCache(cache_dir), calibration=calibration).cache_hit is True
    other_recipe = BuildOptions(precision="int8", recipe=(("smooth_quant_alpha", 0.5),))
    assert ov_backend.build(checkpoint, batches.inputs[0], options=other_recipe, cache=cache,
                            calibration=calibration).cache_hit is False
    other_samples = _calibration(checkpoint, [s for s, _ in SENTENCES] * 2, seed=1)
    assert ov_backend.build(checkpoint, batches.inputs[0], options=options, cache=cache,
                            calibration=other_samples).cache_hit is False
    with pytest.raises(ValueError, match="unknown recipe setting"):
        ov_backend.build(checkpoint, batches.inputs[0], cache=cache, calibration=calibration,
                         options=BuildOptions(precision="int8", recipe=(("alpha", 1),)))


def test_quantize_script_trials_every_int8_build_on_the_cpu(tiny_checkpoint, data_file,
                                                             train_file, cache_dir, tmp_path,
                                                             monkeypatch, no_gpu):
    monkeypatch.setattr(ov_backend, "_core", lambda: ListingCore(["FP32", "BF16", "INT8"]))
    out = tmp_path / "q.json"
    assert main(bert_quantize.SPEC, ["--model", str(tiny_checkpoint), "--dataset", str(data_file),
                                     "--calibration-dataset", str(train_file), "--cache-dir",
                                     str(cache_dir), "--json", str(out),
                                     "--calibration-samples", "30"]) == 0
    doc = json.loads(out.read_text())
    built, choice = doc["runs"][1], doc["choice"]
    int8 = [c for c in choice["candidates"] if not c.get("compared_only")]
    assert [c["candidate"] for c in int8] == ["openvino int8+fp32", "openvino int8+bf16",
                                              "onnxruntime int8+fp32"]
    # the float builds of the same backends, timed beside them in the same trial
    assert [c["candidate"] for c in choice["candidates"] if c.get("compared_only")] == \
        ["openvino fp32", "openvino bf16", "onnxruntime fp32"]
    chosen = next(c for c in int8 if c["candidate"] == choice["chosen"])
    assert built["name"] == chosen["ran"]  # the build that runs is the one chosen, as it ran
    assert chosen is chosen_by_the_rule(choice)
    assert doc["calibration"]["count"] == 30 and doc["environment"]["cpu_flags"] is not None
