import numpy as np
from transformers import AutoTokenizer

from common.inputs.batching import make_batches, tokenize


def test_length_sorted_batches_come_back_in_dataset_order(tiny_checkpoint):
    from conftest import SENTENCES

    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    encoded = tokenize(tokenizer, [s for s, _ in SENTENCES], max_length=128)
    batches = make_batches(encoded, batch_size=5)
    widths = [b["input_ids"].shape[1] for b in batches.inputs]
    assert widths == sorted(widths), "batches are length-sorted"
    assert max(widths) < 128, "padding only as far as the batch needs"
    # each batch row answers with the dataset row it holds; scatter must restore dataset order
    assert sorted(np.concatenate(batches.rows).tolist()) == list(range(len(SENTENCES)))
    for batch, rows in zip(batches.inputs, batches.rows):  # the rows are what the batch holds
        for row, i in enumerate(rows):
            n = len(encoded.ids[i])
            np.testing.assert_array_equal(batch["input_ids"][row, :n], encoded.ids[i])
    outputs = [np.stack([rows * 10, rows * 10 + 1], axis=1).astype(np.float32)
               for rows in batches.rows]
    restored = batches.scatter(outputs)
    np.testing.assert_array_equal(restored[:, 0], np.arange(len(SENTENCES)) * 10)
    np.testing.assert_array_equal(restored[:, 1], np.arange(len(SENTENCES)) * 10 + 1)
    for batch in batches.inputs:
        np.testing.assert_array_equal(batch["attention_mask"].sum(1) > 0, True)
        assert (batch["input_ids"][batch["attention_mask"] == 0] == tokenizer.pad_token_id).all()


def test_truncation_and_static_shape(tiny_checkpoint):
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    encoded = tokenize(tokenizer, ["good " * 50, "bad"], max_length=16)
    assert max(len(ids) for ids in encoded.ids) == 16
    static = make_batches(encoded, batch_size=8, static_shape=True)
    assert [b["input_ids"].shape for b in static.inputs] == [(1, 16), (1, 16)]
    assert [r.tolist() for r in static.rows] == [[0], [1]]
