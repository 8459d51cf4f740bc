"""Integration: the real SST-2 checkpoints in ../shared (skipped where ../shared is absent)."""
import csv
import json
import re

import pytest

import bert_quantize
import bert_tiny
from common.proofpoint import main
from conftest import SHARED, requires_shared

pytestmark = requires_shared
VALIDATION = SHARED / "data" / "sst2" / "validation.tsv"
TRAIN = SHARED / "data" / "sst2" / "train.tsv"


def recorded_accuracy(model: str) -> float:
    text = (SHARED / "models" / model / "TRAINING.md").read_text()
    return float(re.search(r"accuracy[^:]*:\s*([0-9.]+)", text).group(1))


def test_bert_tiny_matches_its_recorded_accuracy(tmp_path):
    out = tmp_path / "tiny.json"
    assert main(bert_tiny.SPEC, ["--model", str(SHARED / "models" / "bert-tiny-sst2"),
                                 "--dataset", str(VALIDATION), "--cache-dir", str(tmp_path / "c"),
                                 "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    reference, built = doc["runs"]
    assert doc["samples"] == 872
    assert reference["accuracy"] == pytest.approx(recorded_accuracy("bert-tiny-sst2"), abs=0.001)
    assert built["accuracy"] == pytest.approx(reference["accuracy"], abs=0.001)
    assert built["agreement"] >= 0.999


def test_minilm_int8_stays_within_one_point(tmp_path):
    out, flips = tmp_path / "q.json", tmp_path / "flips.tsv"
    assert main(bert_quantize.SPEC, ["--model", str(SHARED / "models" / "minilm-l6-sst2"),
                                     "--dataset", str(VALIDATION), "--calibration-dataset", str(TRAIN),
                                     "--cache-dir", str(tmp_path / "c"), "--json", str(out),
                                     "--mismatches", str(flips)]) == 0
    doc = json.loads(out.read_text())
    reference, built = doc["runs"]
    assert reference["accuracy"] == pytest.approx(recorded_accuracy("minilm-l6-sst2"), abs=0.001)
    assert built["precision"] == "int8"
    assert abs(built["accuracy"] - reference["accuracy"]) <= 0.01
    rows = list(csv.reader(flips.open(), delimiter="\t"))[1:]
    assert len(rows) == round((1 - built["agreement"]) * doc["samples"])
    assert all(row[3] != row[4] for row in rows)
