"""Integration: the real SST-2 checkpoints in ../shared (skipped where ../shared is absent)."""
import csv
import json
import re

import numpy as np
import pytest

import bert_base
import bert_quantize
import bert_tiny
from common.backends import backend_module
from common.backends.torch_ref import reference_runner
from common.inputs.batching import make_batches, tokenize
from common.inputs.checkpoints import load_checkpoint
from common.run.proofpoint import main
from common.inputs.examples import load_examples
from conftest import OV, SHARED, chosen_by_the_rule, long_test, requires_openvino, requires_shared

pytestmark = requires_shared
VALIDATION = SHARED / "data" / "sst2" / "validation.tsv"
TRAIN = SHARED / "data" / "sst2" / "train.tsv"
MINILM = SHARED / "models" / "minilm-l6-sst2"


def recorded_accuracy(model: str) -> float:
    text = (SHARED / "models" / model / "TRAINING.md").read_text()
    return float(re.search(r"accuracy[^:]*:\s*([0-9.]+)", text).group(1))


def _run(spec, tmp_path, *argv) -> dict:
    out = tmp_path / "out.json"
    assert main(spec, ["--dataset", str(VALIDATION), "--cache-dir", str(tmp_path / "c"),
                       "--json", str(out), *argv]) == 0
    return json.loads(out.read_text())


@pytest.mark.parametrize("backend", ["onnxruntime", OV])
def test_bert_tiny_matches_its_recorded_accuracy(tmp_path, backend):
    doc = _run(bert_tiny.SPEC, tmp_path, "--model", str(SHARED / "models" / "bert-tiny-sst2"),
               "--backend", backend)
    reference, built = doc["runs"]
    assert doc["samples"] == 872
    assert reference["accuracy"] == pytest.approx(recorded_accuracy("bert-tiny-sst2"), abs=0.001)
    assert built["accuracy"] == pytest.approx(reference["accuracy"], abs=0.001)
    assert built["agreement"] >= 0.999


def test_minilm_runs_the_build_its_trial_measured_fastest(tmp_path):
    doc = _run(bert_base.SPEC, tmp_path, "--model", str(MINILM))
    reference, built = doc["runs"]
    choice = doc["choice"]
    assert reference["accuracy"] == pytest.approx(recorded_accuracy("minilm-l6-sst2"), abs=0.001)
    chosen = next(c for c in choice["candidates"] if c["candidate"] == choice["chosen"])
    assert built["name"] == chosen["ran"]
    assert chosen is chosen_by_the_rule(choice)
    assert built["agreement"] >= 0.995


@requires_openvino
def test_minilm_fp32_on_openvino_agrees_exactly(tmp_path):
    doc = _run(bert_base.SPEC, tmp_path, "--model", str(MINILM), "--backend", "openvino",
               "--precision", "fp32", "--repeats", "1")
    built = doc["runs"][1]
    assert (built["backend"], built["precision"]) == ("openvino", "fp32")
    assert built["agreement"] == 1.0 and built["max_abs_logit_diff"] < 1e-3


@pytest.mark.parametrize("backend, max_drop, min_agreement", [
    pytest.param("openvino", 0.005, 0.985, marks=requires_openvino),  # NNCF's recipe targets
    ("onnxruntime", 0.01, 0.98),
])
def test_minilm_int8_accuracy_and_its_mismatch_list(tmp_path, backend, max_drop, min_agreement):
    """The recipe's targets, as measured: OpenVINO's with the bf16 remainder (with the fp32
    remainder the same INT8 agreed on 0.9794 only, bench/results/.../quantize-int8-fp32.json; which
    of the two the trial picks depends on speed, not on this test)."""
    remainder = []
    if backend == "openvino":
        if "bf16" not in [c.remainder for c in backend_module("openvino").offers("cpu", "static").trialled]:
            pytest.skip("OpenVINO compiles no bf16 here: the recipe's targets were measured with it")
        remainder = ["--precision", "int8+bf16"]
    flips = tmp_path / "flips.tsv"
    doc = _run(bert_quantize.SPEC, tmp_path, "--model", str(MINILM), "--calibration-dataset",
               str(TRAIN), "--backend", backend, *remainder, "--mismatches", str(flips),
               "--repeats", "1")
    reference, built = doc["runs"]
    assert built["precision"].startswith("int8+")
    assert reference["accuracy"] - built["accuracy"] <= max_drop
    assert built["agreement"] >= min_agreement
    # every listed sentence is the data file's row, and the reference really predicts what it says
    rows = list(csv.reader(flips.open(), delimiter="\t"))[1:]
    assert rows and len(rows) == round((1 - built["agreement"]) * 872)
    examples = load_examples(str(VALIDATION))
    assert [row[1] for row in rows] == [examples.sentences[int(row[0])] for row in rows]
    checkpoint = load_checkpoint(str(MINILM))
    batch = make_batches(tokenize(checkpoint.tokenizer, [row[1] for row in rows], 128), len(rows))
    logits = batch.scatter([reference_runner(checkpoint.model)(batch.inputs[0])])
    assert logits.argmax(1).tolist() == [int(row[3]) for row in rows]
    assert all(row[3] != row[4] for row in rows)
    np.testing.assert_allclose(np.array([row[5].split() for row in rows], dtype=np.float32),
                               logits, atol=1e-4)


@requires_openvino
@long_test
def test_minilm_min_agreement_keeps_a_feed_forward_kind_in_float_and_agrees_more(tmp_path):
    """Measured (frontier-openvino.json): plain INT8 agrees on 0.992 of the 1000-sentence slice
    (at least 0.987 with 95% confidence), so 0.993 needs a kind in float, a feed-forward one first;
    on the evaluated sentences the result then agrees more than plain INT8 does (fp32 remainder:
    0.9794 plain, quantize-int8-fp32.json)."""
    common = ["--model", str(MINILM), "--calibration-dataset", str(TRAIN), "--backend", "openvino",
              "--precision", "int8+fp32", "--repeats", "1"]
    plain = _run(bert_quantize.SPEC, tmp_path, *common)["runs"][1]
    doc = _run(bert_quantize.SPEC, tmp_path, *common, "--min-agreement", "0.993")
    control = doc["runs"][1]["build_facts"]["accuracy_control"]
    assert control["reached"] and control["plain_int8"]["agreement"] < 0.993
    assert control["kept_in_float"][0] in ("feed-forward output", "feed-forward input")
    assert doc["runs"][1]["agreement"] > plain["agreement"]
