import pytest
from conftest import SENTENCES, write_data

from common.sst2 import load_examples


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
