from pathlib import Path

import pytest
from conftest import ROOT, SENTENCES, write_data

from common.host.errors import UserError
from common.inputs.examples import BINARIZED, load_examples

SST_FLOAT = ROOT / "tests" / "data" / "sst-float-labels.tsv"


@pytest.mark.parametrize("suffix", [".tsv", ".csv", ".parquet", ".jsonl"])
def test_every_format_gives_the_same_rows_in_order(tmp_path, suffix):
    examples = load_examples(str(write_data(tmp_path / f"data{suffix}")))
    assert examples.sentences == [s for s, _ in SENTENCES]
    assert examples.labels.tolist() == [label for _, label in SENTENCES]


def test_tsv_keeps_quotes_and_words_pandas_would_read_as_missing(tmp_path):
    path = tmp_path / "odd.tsv"
    path.write_text('sentence\tlabel\n"quoted" start\t1\nnan\t0\nnull\t1\n')
    assert load_examples(str(path)).sentences == ['"quoted" start', "nan", "null"]


def test_limit_takes_the_first_rows(data_file):
    assert load_examples(str(data_file), limit=3).sentences == [s for s, _ in SENTENCES[:3]]


def test_float_sentiment_is_binarised_as_the_original_did_above_one_half():
    examples = load_examples(str(SST_FLOAT))
    # 0.91667 0.125 0.5 0.36111 0.51389 0.0 1.0 0.48611: 0.5 itself is negative (y > 0.5)
    assert examples.labels.tolist() == [1, 0, 0, 0, 1, 0, 1, 0]
    assert examples.labels_rule == BINARIZED


def test_zero_one_labels_are_kept_as_they_are(data_file):
    examples = load_examples(str(data_file))
    assert examples.labels_rule == ""
    assert examples.labels.tolist() == [label for _, label in SENTENCES]


def test_a_split_column_selects_rows_and_a_file_without_one_refuses_split(tmp_path, data_file):
    path = write_data(tmp_path / "both.tsv", [(s, label, "test" if i % 3 == 0 else "train")
                                               for i, (s, label) in enumerate(SENTENCES)],
                      columns=("sentence", "label", "split"))
    assert load_examples(str(path), "test").sentences == [s for s, _ in SENTENCES[::3]]
    assert len(load_examples(str(path)).sentences) == len(SENTENCES)  # no split: the whole file
    with pytest.raises(UserError, match=r"--split dev: no row of .* has it \(its splits: test, train\)"):
        load_examples(str(path), "dev")
    with pytest.raises(UserError, match=r"--split test: .* is one table \(no 'split' column\)"):
        load_examples(str(data_file), "test")


def test_which_split_each_dataset_is_evaluated_on(data_file):
    from common.inputs.sources import calibration_wanted, data_wanted

    sst = data_wanted("dataset", "sst", None, "--dataset")
    assert (sst.name, sst.split) == ("stanfordnlp/sst", "test")  # the original proof points'
    assert data_wanted("dataset", "stanfordnlp/sst2", None, "--dataset").split == "validation"
    assert data_wanted("dataset", "stanfordnlp/sst2", "train", "--dataset").split == "train"
    assert data_wanted("dataset", str(data_file), None, "--dataset").split is None  # whole file
    assert calibration_wanted(None, "sst").split == "train"
    assert calibration_wanted(str(data_file), "sst").split is None


@pytest.mark.parametrize("name", ["data.tsv", "data.csv", "data.jsonl", "data.tsv.xz",
                                  "data.csv.gz", "data.tsv.bz2"])
def test_local_text_files_are_read_without_datasets(tmp_path, monkeypatch, name):
    """A stock PyTorch image has no `datasets`: local text tables need none."""
    import bz2
    import gzip
    import lzma
    import sys

    plain = write_data(tmp_path / ("plain" + "".join(Path(name).suffixes[:1])))
    compress = {".xz": lzma.compress, ".gz": gzip.compress, ".bz2": bz2.compress}.get(
        Path(name).suffix, lambda data: data)
    (tmp_path / name).write_bytes(compress(plain.read_bytes()))
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets fails
    examples = load_examples(str(tmp_path / name))
    assert examples.sentences == [s for s, _ in SENTENCES]
    assert examples.labels.tolist() == [label for _, label in SENTENCES]


def test_what_needs_datasets_without_it_is_one_line(tmp_path, monkeypatch):
    import sys

    parquet = write_data(tmp_path / "data.parquet")
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(UserError, match=r"^reading '.*data.parquet' needs the datasets package "
                                        r"\(pip install datasets\); local \.tsv, \.csv, \.jsonl "
                                        r"files do not$"):
        load_examples(str(parquet))
    with pytest.raises(UserError, match=r"^hub dataset 'someone/sst' needs the datasets package"):
        load_examples("someone/sst")


@pytest.mark.parametrize("text, message", [
    ("sentence\tlabel\ngood\t1\nbad\t0\textra\n", r"cannot read '.*': row 3 has 3 fields, the header 2$"),
    ('{"sentence": "good", "label": 1}\n[1, 2]\n', r"cannot read '.*': line 2 is not a JSON object$"),
    ('{"sentence": "good", "label": 1}\n{"sentence": \n', r"cannot read '.*': line 2 is not JSON"),
])
def test_a_malformed_text_table_is_one_line(tmp_path, text, message):
    path = tmp_path / ("bad.jsonl" if text.startswith("{") else "bad.tsv")
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        load_examples(str(path))


def test_a_damaged_compressed_file_is_one_line(tmp_path):
    path = tmp_path / "train.tsv.xz"
    path.write_bytes(b"not xz at all")
    with pytest.raises(UserError, match=r"^cannot read '.*train.tsv.xz': "):
        load_examples(str(path))
