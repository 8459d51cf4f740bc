"""Tokenize once, then cut length-sorted batches padded only as far as each batch needs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict

import numpy as np

if TYPE_CHECKING:  # transformers takes seconds to import: --help must not wait for it
    from transformers import PreTrainedTokenizerBase

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
Batch = Dict[str, np.ndarray]  # typing.Dict: GroqWare hosts run Python 3.8


@dataclass(frozen=True)
class Encoded:
    """Token ids of every sentence, unpadded, in dataset order."""
    ids: list[np.ndarray]
    type_ids: list[np.ndarray]
    max_length: int
    pad_id: int

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Batches:
    """Padded input arrays, plus which dataset row each batch row is."""
    inputs: list[Batch]
    rows: list[np.ndarray]
    count: int  # number of sentences

    def scatter(self, outputs: list[np.ndarray]) -> np.ndarray:
        """Put per-batch outputs back into dataset order."""
        first = outputs[0]
        result = np.empty((self.count,) + first.shape[1:], dtype=first.dtype)
        for rows, out in zip(self.rows, outputs):
            result[rows] = out
        return result


def tokenize(tokenizer: PreTrainedTokenizerBase, sentences: list[str], max_length: int,
             pairs: list[str] | None = None) -> Encoded:
    """Tokenize with truncation at max_length, as the reference and every build will see it;
    sentence pairs as pairs (`tokenizer(a, b)`, the longer text truncated first)."""
    enc = tokenizer(sentences, pairs, truncation="longest_first" if pairs else True,
                    max_length=max_length, return_token_type_ids=True)
    ids = [np.asarray(x, dtype=np.int64) for x in enc["input_ids"]]
    type_ids = [np.asarray(x, dtype=np.int64) for x in enc["token_type_ids"]]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return Encoded(ids=ids, type_ids=type_ids, max_length=max_length, pad_id=pad_id)


def make_batches(encoded: Encoded, batch_size: int, static_shape: bool = False) -> Batches:
    """Sort by length so padding is small; a static-shape backend gets batch 1 padded to max_length."""
    if static_shape:
        order = np.arange(len(encoded))
        batch_size = 1
    else:
        lengths = np.fromiter((len(x) for x in encoded.ids), dtype=np.int64, count=len(encoded))
        order = np.argsort(lengths, kind="stable")
    inputs, rows = [], []
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        width = encoded.max_length if static_shape else max(len(encoded.ids[i]) for i in chunk)
        batch = {name: np.zeros((len(chunk), width), dtype=np.int64) for name in INPUT_NAMES}
        batch["input_ids"].fill(encoded.pad_id)
        for row, i in enumerate(chunk):
            n = len(encoded.ids[i])
            batch["input_ids"][row, :n] = encoded.ids[i]
            batch["attention_mask"][row, :n] = 1
            batch["token_type_ids"][row, :n] = encoded.type_ids[i]
        inputs.append(batch)
        rows.append(chunk)
    return Batches(inputs=inputs, rows=rows, count=len(encoded))
