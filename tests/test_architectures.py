"""Any 2-label sequence classifier a user brings: fed by name, exported faithfully, or refused."""
import json

import pytest
import torch
import transformers

import bert_tiny
from common.run.proofpoint import main
from conftest import OV, make_checkpoint

KINDS = ["distilbert", "roberta", "electra", "albert", "minilm"]


@pytest.fixture(scope="module", params=KINDS)
def checkpoint_of_kind(request, tmp_path_factory):
    return request.param, make_checkpoint(tmp_path_factory.mktemp(request.param), kind=request.param)


@pytest.mark.parametrize("backend", ["onnxruntime", OV])
def test_each_architecture_builds_and_agrees_with_pytorch(checkpoint_of_kind, backend, data_file,
                                                          tmp_path):
    kind, folder = checkpoint_of_kind
    out = tmp_path / "out.json"
    assert main(bert_tiny.SPEC, ["--model", str(folder), "--dataset", str(data_file), "--cache-dir",
                                 str(tmp_path / "c"), "--json", str(out), "--backend", backend,
                                 "--precision", "fp32", "--repeats", "1"]) == 0
    built = json.loads(out.read_text())["runs"][1]
    assert built["agreement"] >= 0.999, kind
    assert built["max_abs_logit_diff"] < 1e-4, kind


def test_distilbert_gets_no_token_type_ids():
    from common.backends.export import model_input_names
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    model = DistilBertForSequenceClassification(DistilBertConfig(dim=32, n_layers=1, n_heads=2,
                                                                 hidden_dim=64))
    assert model_input_names(model) == ("input_ids", "attention_mask")


def _run_expecting_error(folder, data_file, tmp_path, capsys) -> str:
    code = main(bert_tiny.SPEC, ["--model", str(folder), "--dataset", str(data_file), "--cache-dir",
                                 str(tmp_path / "c"), "--backend", "onnxruntime"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert not (tmp_path / "c" / "entries").exists() or \
        not list((tmp_path / "c" / "entries").iterdir())
    return err.strip().splitlines()[-1]


def test_a_model_that_does_not_export_is_one_line_naming_its_architecture(
        tiny_checkpoint, data_file, tmp_path, capsys, monkeypatch):
    def broken_export(*args, **kwargs):
        raise RuntimeError("Unsupported: ONNX export of operator foo\nmore detail")

    monkeypatch.setattr(torch.onnx, "export", broken_export)
    assert _run_expecting_error(tiny_checkpoint, data_file, tmp_path, capsys) == (
        "bert_tiny: error: BertForSequenceClassification does not export to ONNX with transformers "
        f"{transformers.__version__} (Unsupported: ONNX export of operator foo)")


def test_an_export_that_answers_differently_is_refused(tiny_checkpoint, data_file, tmp_path,
                                                       capsys, monkeypatch):
    """Never a wrong export: a graph whose logits differ from PyTorch's is not built from."""
    from common.backends import export

    forward = export.LogitsByName.forward
    monkeypatch.setattr(export.LogitsByName, "forward", lambda self, *x: forward(self, *x) * 1.5)
    line = _run_expecting_error(tiny_checkpoint, data_file, tmp_path, capsys)
    assert line.startswith("bert_tiny: error: the ONNX export of BertForSequenceClassification does "
                           "not reproduce PyTorch's logits (max |Δlogit| ")


def test_every_weight_matmul_of_each_architecture_is_of_one_kind_for_min_agreement(
        checkpoint_of_kind, tmp_path):
    """--min-agreement keeps kinds of layer in float by operation name: each architecture's
    export has all six kinds, and no operation in two of them."""
    import onnx

    from common.builds import fidelity
    from common.inputs.batching import make_batches, tokenize
    from common.builds.cache import BuildCache
    from common.inputs.checkpoints import load_checkpoint
    from common.backends.export import EXPORT_FILE, cached_export

    kind, folder = checkpoint_of_kind
    checkpoint = load_checkpoint(str(folder))
    example = make_batches(tokenize(checkpoint.tokenizer, ["a fine film"], 128), 1).inputs[0]
    export = cached_export(checkpoint, example, BuildCache(tmp_path / "c"))
    graph = onnx.load(str(export.folder / EXPORT_FILE)).graph
    names = [node.name for node in graph.node if node.op_type in ("MatMul", "Gemm")]
    kinds_of = {name: [k for k, _ in fidelity.KINDS if fidelity.matching([k], [name])]
                for name in names}
    assert all(len(kinds) <= 1 for kinds in kinds_of.values()), kind
    assert {k for kinds in kinds_of.values() for k in kinds} == {k for k, _ in fidelity.KINDS}, kind
    # what no kind holds stays INT8: ALBERT's and ELECTRA's embedding projections only
    assert all("embedding" in name for name, kinds in kinds_of.items() if not kinds), kind
