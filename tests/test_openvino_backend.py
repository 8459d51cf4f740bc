"""The OpenVINO backend on tiny random checkpoints: precision choice, parity, order, cache, INT8."""
import json

import numpy as np
import pytest

pytest.importorskip("openvino")

import bert_quantize
import bert_tiny
from common.backends import load_backend
from common.backends import openvino as ov_backend
from common.backends.base import BuildOptions, Calibration, choose_precision
from common.backends.torch_ref import reference_runner
from common.batching import make_batches, tokenize
from common.cache import BuildCache
from common.checkpoints import load_checkpoint
from common.errors import UserError
from common.proofpoint import main
from conftest import SENTENCES


class FakeCore:
    def __init__(self, capabilities):
        self.capabilities = capabilities

    def get_property(self, device, name):
        assert (device, name) == ("CPU", "OPTIMIZATION_CAPABILITIES")
        return self.capabilities


@pytest.mark.parametrize("capabilities, native, offered", [
    (["FP32", "INT8", "BIN"], "fp32", ("fp32",)),  # AVX2-only CPU
    (["BF16", "FP32", "INT8"], "bf16", ("bf16", "fp32")),  # AMX or AVX-512 BF16
    (["BF16", "FP16", "FP32", "INT8"], "bf16", ("bf16", "fp32", "fp16")),
])
def test_native_precision_follows_the_cpus_capabilities(monkeypatch, capabilities, native, offered):
    monkeypatch.setattr(ov_backend, "_core", lambda: FakeCore(capabilities))
    assert ov_backend.precisions("cpu") == offered
    assert choose_precision(ov_backend, "auto", "cpu", int8=False) == native
    assert choose_precision(ov_backend, "fp32", "cpu", int8=False) == "fp32"
    assert choose_precision(ov_backend, "auto", "cpu", int8=True) == "int8"


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


def test_auto_picks_openvino_on_the_cpu_and_onnxruntime_where_openvino_does_not_build():
    assert load_backend("auto")[0].NAME == "openvino"
    backend, note = load_backend("auto", "cpu", "dynamic")
    assert backend.NAME == "onnxruntime" and "dynamic INT8 is ONNX Runtime's" in note
    with pytest.raises(UserError, match="--quantization dynamic is not built by openvino"):
        load_backend("openvino", "cpu", "dynamic")
    with pytest.raises(UserError, match="OpenVINO builds for the CPU here; --device cuda takes"):
        choose_precision(ov_backend, "auto", "cuda", int8=False)


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
    assert built.facts["infer_requests"] >= 1
    reference = reference_runner(checkpoint.model)
    # three batches of different sizes and widths, in flight together: each answer in its place
    outputs, seconds = built.run_all(batches.inputs)
    assert len(outputs) == len(batches.inputs) and all(s > 0 for s in seconds)
    for batch, out in zip(batches.inputs, outputs):
        np.testing.assert_allclose(out, reference(batch), atol=1e-4, rtol=0)
    np.testing.assert_allclose(built(batches.inputs[1]), reference(batches.inputs[1]), atol=1e-4)


@pytest.mark.skipif("BF16" not in ov_backend._core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"),
                    reason="this CPU has no bf16")
def test_bf16_is_what_the_compiled_model_reports(tiny, cache_dir):
    checkpoint, batches = tiny
    built = ov_backend.build(checkpoint, batches.inputs[0], options=BuildOptions(precision="bf16"),
                             cache=BuildCache(cache_dir))
    assert built.precision == "bf16" and built.name == "openvino-bf16"
    reference = reference_runner(checkpoint.model)
    gap = max(np.abs(built(b) - reference(b)).max() for b in batches.inputs)
    assert 0 < gap < 0.1  # rounded to bf16, so not bit-equal, but close


def test_float_builds_share_one_ir_and_a_recipe_change_rebuilds(tiny, cache_dir):
    checkpoint, batches = tiny
    cache = BuildCache(cache_dir)
    first = ov_backend.build(checkpoint, batches.inputs[0], options=BuildOptions(precision="fp32"),
                             cache=cache)
    again = ov_backend.build(checkpoint, batches.inputs[0], options=BuildOptions(precision="fp32"),
                             cache=cache)
    assert first.cache_hit is False and again.cache_hit is True
    assert {p.name for p in next((cache_dir / "entries").iterdir()).iterdir()} == {
        "model.xml", "model.bin", "state.json"}
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
    assert built.precision == "int8" and built.name == "openvino-int8"
    assert built.facts["int8_bytes"] < built.facts["fp32_bytes"]
    entry = next((cache_dir / "entries").glob("ov-int8-*"))
    ops = [op.get_type_name() for op in ov.Core().read_model(str(entry / "model.xml")).get_ops()]
    assert ops.count("FakeQuantize") >= 2 * 4  # the weight MatMuls of 2 layers, at least
    reference = reference_runner(checkpoint.model)
    outputs, _ = built.run_all(batches.inputs)
    gap = max(np.abs(out - reference(b)).max() for b, out in zip(batches.inputs, outputs))
    assert gap < 0.5
    assert ov_backend.build(checkpoint, batches.inputs[0], options=options, cache=cache,
                            calibration=calibration).cache_hit is True
    other_recipe = BuildOptions(precision="int8", recipe=(("smooth_quant_alpha", 0.5),))
    assert ov_backend.build(checkpoint, batches.inputs[0], options=other_recipe, cache=cache,
                            calibration=calibration).cache_hit is False
    other_samples = _calibration(checkpoint, [s for s, _ in SENTENCES] * 2, seed=1)
    assert ov_backend.build(checkpoint, batches.inputs[0], options=options, cache=cache,
                            calibration=other_samples).cache_hit is False
    with pytest.raises(ValueError, match="unknown recipe setting"):
        ov_backend.build(checkpoint, batches.inputs[0], cache=cache, calibration=calibration,
                         options=BuildOptions(precision="int8", recipe=(("alpha", 1),)))


def test_quantize_script_defaults_to_openvino_int8_on_the_cpu(tiny_checkpoint, data_file,
                                                               train_file, cache_dir, tmp_path):
    out = tmp_path / "q.json"
    assert main(bert_quantize.SPEC, ["--model", str(tiny_checkpoint), "--dataset", str(data_file),
                                     "--calibration-dataset", str(train_file), "--cache-dir",
                                     str(cache_dir), "--json", str(out),
                                     "--calibration-samples", "30"]) == 0
    doc = json.loads(out.read_text())
    built = doc["runs"][1]
    assert (built["backend"], built["precision"]) == ("openvino", "int8")
    assert built["build_facts"]["inference_precision"] in {"fp32", "bf16"}
    assert doc["calibration"]["count"] == 30 and doc["environment"]["cpu_flags"] is not None
