import csv
import json

import numpy as np

import bert_tiny
from common.backends.base import Runner
from common.run.evaluate import Evaluation
from common.run.mismatches import HEADER, write_mismatches
from common.run.proofpoint import main
from common.inputs.examples import Examples


def _evaluation(logits):
    runner = Runner(name="x", backend="x", device="cpu", precision="fp32", predict=lambda b: None)
    return Evaluation(runner, np.asarray(logits, dtype=np.float32), 1.0)


def test_lists_exactly_the_flipped_sentences(tmp_path):
    examples = Examples(sentences=["good", 'a "quoted"\tone', "bad"], labels=np.array([1, 1, 0]))
    reference = _evaluation([[0, 1], [0, 1], [1, 0]])
    built = _evaluation([[0, 1], [1, 0], [0.2, 0.1]])
    path = tmp_path / "m.tsv"
    assert write_mismatches(path, examples, reference, built) == 1
    rows = list(csv.reader(path.open(), delimiter="\t"))
    assert rows[0] == list(HEADER)
    assert rows[1][:5] == ["1", 'a "quoted"\tone', "1", "1", "0"]
    assert rows[1][5:] == ["0.000000 1.000000", "1.000000 0.000000"]


def test_header_only_when_nothing_differs(tiny_checkpoint, data_file, tmp_path):
    path, out = tmp_path / "m.tsv", tmp_path / "r.json"
    assert main(bert_tiny.SPEC, ["--model", str(tiny_checkpoint), "--dataset", str(data_file),
                                 "--cache-dir", str(tmp_path / "c"), "--mismatches", str(path),
                                 "--json", str(out)]) == 0
    assert json.loads(out.read_text())["runs"][1]["agreement"] == 1.0
    assert path.read_text() == "\t".join(HEADER) + "\n"
