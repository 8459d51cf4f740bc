"""--distill-steps: INT8 distilled from the float model, tried before --min-agreement's kinds search
(common/backends/distillation.py); the decision between them is tested on stand-ins in test_fidelity.py."""
import json

import numpy as np
import pytest

import bert_quantize
from common.backends.base import BuildOptions, Candidate
from common.inputs.calibration import Calibration
from common.host.paths import ROOT
from common.run.proofpoint import main
from conftest import OV, make_checkpoint, requires_openvino, valid_results


def weight_types(entry) -> list[str]:
    """How each weight MatMul's (or Gemm's) weights are stored, read from the built file: the
    element type of the IR's constant (through the Convert and Multiply that decompress INT8
    weights), or in ONNX "i8" where they come out of a DequantizeLinear, "f32" where they are
    a float initializer. Attention's own MatMuls, of two activations, are not weight MatMuls."""
    if (entry / "model.onnx").exists():
        return onnx_weight_types(entry / "model.onnx")
    import openvino as ov

    model = ov.Core().read_model(str(entry / "model.xml"))
    types = []
    for op in model.get_ops():
        if op.get_type_name() == "MatMul":
            node = op.input(1).get_source_output().get_node()
            while node.get_type_name() in ("Convert", "Multiply", "Subtract", "Transpose"):
                node = node.input(0).get_source_output().get_node()
            if node.get_type_name() == "Constant":
                types.append(node.get_output_element_type(0).get_type_name())
    return types


def onnx_weight_types(path) -> list[str]:
    import onnx

    graph = onnx.load(str(path)).graph
    made_by = {output: node for node in graph.node for output in node.output}
    initializers = {tensor.name for tensor in graph.initializer}
    types = []
    for node in graph.node:
        if node.op_type in ("MatMul", "Gemm"):
            name = node.input[1]
            while name in made_by and made_by[name].op_type == "Transpose":
                name = made_by[name].input[0]
            if name in initializers:
                types.append("f32")
            elif name in made_by and made_by[name].op_type == "DequantizeLinear":
                types.append("i8")
    return types


@pytest.mark.parametrize("backend, built", [
    pytest.param("openvino", "ov-int8", marks=requires_openvino), ("onnxruntime", "ort-int8")])
def test_distillation_that_reaches_the_target_runs_with_every_matrix_product_int8(
        sensitive_tiny, tmp_path, capsys, backend, built):
    from common.inputs.calibration import normalized
    from common.inputs.examples import load_examples

    out, cache = tmp_path / "d.json", tmp_path / "c"
    train, validation = ROOT / "data/sst2/train.tsv.xz", ROOT / "data/sst2/validation.tsv"

    def quantize(target: str) -> dict:
        assert main(bert_quantize.SPEC, [
            "--model", str(sensitive_tiny), "--dataset", str(validation), "--limit", "50",
            "--calibration-dataset", str(train), "--calibration-samples", "20",
            "--min-agreement", target, "--validation-samples", "100", "--distill-steps", "3",
            "--backend", backend, "--precision", "int8+fp32", "--repeats", "1",
            "--cache-dir", str(cache), "--json", str(out)]) == 0
        return valid_results(json.loads(out.read_text()))

    doc = quantize("0.5")
    control = doc["runs"][1]["build_facts"]["accuracy_control"]
    distilled = control["distillation"]
    assert control["lever"] == "distillation" and control["reached"]
    assert distilled["steps"] == 3 and distilled["rows"] == 3 * 32 and not distilled["cached"]
    assert control["kept_in_float"] == [] and "plain_int8" not in control
    assert control["agreement"] == distilled["agreement"] >= control["agreement_lower_bound"] >= 0.5
    assert "every matrix product INT8" in capsys.readouterr().out
    entry = next(e for e in (cache / "entries").iterdir() if e.name.startswith(built))
    assert weight_types(entry) == ["i8"] * (2 * 6 + 2)  # 2 layers, the pooler, the classifier
    # trained on rows of the training file that are neither calibrated on, in the slice, nor
    # evaluated
    calibration = doc["calibration"]
    rows = calibration["distillation_indices"]
    assert len(rows) == 96 and not set(rows) & set(calibration["indices"])
    assert not set(rows) & set(calibration["validation_indices"])
    sentences = load_examples(str(train)).sentences
    evaluated = {normalized(s) for s in load_examples(str(validation), limit=50).sentences}
    assert not any(normalized(sentences[i]) in evaluated for i in rows)
    # another target scores the same distilled model again: it is not trained again
    again = quantize("0.6")["runs"][1]["build_facts"]["accuracy_control"]["distillation"]
    assert again["cached"] and again["agreement"] == distilled["agreement"]


def _calibration(tokenizer, seed: int = 0, trained: str = "a fun film",
                 checked: str = "it") -> Calibration:
    from common.inputs.batching import tokenize

    def encoded(sentences):
        return tokenize(tokenizer, sentences, 128)

    return Calibration(source="train.tsv", seed=seed, indices=np.arange(2), requested=2,
                       encoded=encoded(["good film", "bad film"]),
                       validation_indices=np.arange(2, 5), validation=encoded([checked, "a", "the"]),
                       distillation_indices=np.arange(5, 7),
                       distillation=encoded([trained, "a dull film"]))


@pytest.mark.parametrize("change", ["steps", "seed", "rows", "learning rate", "int8 recipe",
                                   "model", "versions"])
@pytest.mark.parametrize("backend", [OV, "onnxruntime"])
def test_a_distilled_model_is_reused_only_while_each_of_its_inputs_is_the_same(
        tiny_checkpoint, tmp_path, monkeypatch, backend, change):
    """Change one input of the distillation and it is trained again; change the float remainder,
    the target or the validation slice, which it does not depend on, and it is reused."""
    from common.backends import distillation
    from common.backends import backend_module
    from common.inputs.batching import make_batches, tokenize
    from common.builds.cache import BuildCache
    from common.inputs.checkpoints import load_checkpoint
    from common.backends.export import LogitsByName

    trained = []

    def standin(model, names, calibration, int8_recipe, steps):  # no NNCF: the key is tested
        trained.append(steps)
        return LogitsByName(model, tuple(names)).eval(), {"steps": steps}

    monkeypatch.setattr(distillation, "distilled_int8", standin)
    module = backend_module(backend)
    distilled = module.distilled_ir if backend == "openvino" else module.distilled_onnx
    checkpoint = load_checkpoint(str(tiny_checkpoint))
    example = make_batches(tokenize(checkpoint.tokenizer, ["good film"], 128), 1).inputs[0]

    def hit(steps: int = 2, remainder: str = "fp32", target: float = 0.5, seed: int = 0,
            rows: str = "a fun film", model=checkpoint, checked: str = "it") -> bool:
        options = BuildOptions(precision="int8", remainder=remainder, min_agreement=target,
                               distill_steps=steps)
        _, record = distilled(model, example, _calibration(checkpoint.tokenizer, seed, rows,
                                                           checked),
                              module.build_recipe(options), BuildCache(tmp_path))
        return record["cached"]

    assert hit() is False and hit() is True
    assert hit(remainder="bf16", target=0.9, checked="good") is True and trained == [2]
    if change == "steps":
        assert hit(steps=3) is False
    elif change == "seed":
        assert hit(seed=1) is False
    elif change == "rows":
        assert hit(rows="a dull film indeed") is False
    elif change == "learning rate":
        monkeypatch.setitem(distillation.RECIPE, "learning_rate", 1e-5)
        assert hit() is False
    elif change == "int8 recipe":
        from common.backends import ov_quantize

        monkeypatch.setitem(ov_quantize.INT8_RECIPE, "preset", "performance")
        assert hit() is False
    elif change == "model":
        other = load_checkpoint(str(make_checkpoint(tmp_path / "other", seed=1)))
        assert hit(model=other) is False
    else:
        versions = module.library_versions()
        monkeypatch.setattr(module, "library_versions", lambda: {**versions, "torch": "0.0"})
        assert hit() is False
    assert len(trained) == 2


def test_distillation_rows_are_drawn_apart_from_calibration_slice_and_evaluation(train_file):
    from transformers import AutoTokenizer

    from common.inputs.calibration import draw_calibration

    tokenizer = AutoTokenizer.from_pretrained(str(ROOT / "models/bert-tiny-sst2"))
    drawn = draw_calibration(str(train_file), None, 0, 10, tokenizer, 128, ["a fun film ."],
                             validation=20, distillation=25)
    calibrated, checked = set(drawn.indices), set(drawn.validation_indices)
    trained = set(drawn.distillation_indices)
    assert (len(calibrated), len(checked), len(trained)) == (10, 20, 25) == (
        len(drawn.encoded), len(drawn.validation), len(drawn.distillation))
    assert not trained & (calibrated | checked) and not calibrated & checked
    again = draw_calibration(str(train_file), None, 1, 10, tokenizer, 128, ["a fun film ."],
                             validation=20, distillation=25)
    assert set(again.distillation_indices) != trained  # drawn with the seed
    alone = draw_calibration(str(train_file), None, 0, 10, tokenizer, 128, ["a fun film ."],
                             distillation=25)  # no slice asked for
    assert alone.validation is None and len(alone.distillation_indices) == 25
    assert not set(alone.distillation_indices) & set(alone.indices)


def test_distill_steps_without_min_agreement_is_said_under_the_table():
    from common.run.cli import parse_command_line
    from common.run.flags import check_flags

    def notes(*flags):
        args = parse_command_line(bert_quantize.SPEC, ["--distill-steps", "10", *flags])
        return check_flags(args, [Candidate("openvino", "int8")], calibrate=True)

    assert notes() == ["--distill-steps: a lever of --min-agreement, which is not set; ignored"]
    assert notes("--min-agreement", "0.99") == []
