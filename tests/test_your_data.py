"""Your classifier on your data: any number of labels, labels by name, other column names, sentence
pairs; each figure checked against the model called directly, not against the pipeline itself."""
import inspect
import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import bert_quantize
import bert_tiny
from common.backends.torch_ref import reference_runner
from common.inputs.batching import make_batches, tokenize
from common.inputs.checkpoints import load_checkpoint
from common.run.evaluate import evaluate
from common.run.proofpoint import main
from common.inputs.examples import Columns, load_examples
from conftest import WORDS, make_checkpoint, write_data

NAMES = ("negative", "neutral", "positive")


def texts(count: int, seed: int, words: int = 5) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS[:16], size=int(rng.integers(2, words)))) + f" {i}"
            for i in range(count)]


def direct(folder, first: list[str], second: list[str] | None = None) -> np.ndarray:
    """The model's logits from a plain transformers call, one row at a time."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    takes = inspect.signature(model.forward).parameters  # DistilBERT: no token_type_ids
    rows = []
    with torch.no_grad():
        for i, text in enumerate(first):
            encoded = tokenizer(text, second[i] if second else None, truncation=True,
                                max_length=128, return_tensors="pt")
            rows.append(model(**{k: v for k, v in encoded.items() if k in takes}).logits[0].numpy())
    return np.stack(rows)


@pytest.fixture(scope="module")
def three_labels(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("three") / "m", num_labels=3, labels=NAMES)


def test_a_3_label_model_on_a_csv_with_text_and_label_names(three_labels, tmp_path):
    sentences = texts(40, 1)
    names = [NAMES[i % 3].upper() if i % 4 == 0 else NAMES[i % 3] for i in range(40)]  # any case
    data = write_data(tmp_path / "intents.csv", list(zip(sentences, names)), columns=("text", "label"))
    out = tmp_path / "r.json"
    assert main(bert_tiny.SPEC, ["--model", str(three_labels), "--dataset", str(data),
                                 "--precision", "fp32", "--repeats", "1", "--cache-dir",
                                 str(tmp_path / "c"), "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    reference, built = doc["runs"]
    predicted = direct(three_labels, sentences).argmax(axis=1)
    truth = np.array([i % 3 for i in range(40)])
    assert reference["accuracy"] == pytest.approx(float((predicted == truth).mean()))
    assert built["agreement"] == 1.0 and built["accuracy"] == reference["accuracy"]
    assert doc["columns"] == {"text": "text", "pair": None, "label": "label"}
    assert doc["num_labels"] == 3 and doc["labels"] == "names mapped through the model's label2id"
    expected = np.zeros((3, 3), int)
    np.add.at(expected, (truth, predicted), 1)
    assert reference["confusion_against_labels"] == expected.tolist()
    assert built["confusion_against_reference"] == np.diag(np.bincount(predicted, minlength=3)).tolist()


@pytest.mark.parametrize("kind", ["bert", "distilbert"])
def test_a_pair_model_is_fed_pairs_as_transformers_tokenizes_them(kind, tmp_path):
    """BERT gets token_type_ids for the second text; DistilBERT takes none."""
    folder = make_checkpoint(tmp_path / kind, kind=kind, seed=3)
    first, second = texts(24, 2), texts(24, 3, words=9)
    labels = [i % 2 for i in range(24)]
    data = write_data(tmp_path / "pairs.tsv", list(zip(first, second, labels)),
                      columns=("sentence1", "sentence2", "label"))
    checkpoint = load_checkpoint(str(folder))
    examples = load_examples(str(data), labels=checkpoint.labels)
    assert (examples.sentences, examples.pairs) == (first, second)
    batches = make_batches(tokenize(checkpoint.tokenizer, examples.sentences, 128, examples.pairs), 8)
    logits = evaluate(reference_runner(checkpoint.model), batches).logits
    np.testing.assert_allclose(logits, direct(folder, first, second), atol=1e-5)
    out = tmp_path / "r.json"
    assert main(bert_tiny.SPEC, ["--model", str(folder), "--dataset", str(data), "--repeats", "1",
                                 "--cache-dir", str(tmp_path / "c"), "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["columns"] == {"text": "sentence1", "pair": "sentence2", "label": "label"}
    reference, built = doc["runs"]
    truth = np.array(labels)
    assert reference["accuracy"] == pytest.approx(float((logits.argmax(axis=1) == truth).mean()))
    assert built["agreement"] >= 23 / 24


def test_columns_named_by_flag_and_a_pair_found_among_the_glue_names(tmp_path):
    names = ["question", "sentence", "label", "idx"]
    from common.inputs.examples import find_columns

    assert find_columns(names, Columns(), "f") == Columns("question", "sentence", "label")
    assert find_columns(["text", "label"], Columns(), "f") == Columns("text", None, "label")
    assert find_columns(["review", "pros", "stars"], Columns("review", "pros", "stars"), "f") == \
        Columns("review", "pros", "stars")


def test_int8_of_a_3_label_model_calibrates_on_its_texts_and_records_what_it_traded(
        three_labels, tmp_path):
    evaluated = write_data(tmp_path / "eval.csv", [(t, NAMES[i % 3]) for i, t in
                                                   enumerate(texts(30, 4))], columns=("text", "label"))
    train = write_data(tmp_path / "train.csv", [(t, NAMES[i % 3]) for i, t in
                                                enumerate(texts(60, 5))], columns=("text", "label"))
    out = tmp_path / "q.json"
    assert main(bert_quantize.SPEC, ["--model", str(three_labels), "--dataset", str(evaluated),
                                     "--calibration-dataset", str(train), "--calibration-samples",
                                     "40", "--backend", "onnxruntime", "--repeats", "1",
                                     "--cache-dir", str(tmp_path / "c"), "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    reference, built = doc["runs"]
    assert built["precision"] == "int8+fp32" and doc["calibration"]["count"] == 40
    confusion = np.array(built["confusion_against_reference"])
    assert confusion.shape == (3, 3) and confusion.sum() == 30
    assert np.trace(confusion) / 30 == pytest.approx(built["agreement"])
    reference_predictions = direct(three_labels, load_examples(
        str(evaluated), labels=load_checkpoint(str(three_labels)).labels).sentences).argmax(axis=1)
    assert confusion.sum(axis=1).tolist() == np.bincount(reference_predictions, minlength=3).tolist()
