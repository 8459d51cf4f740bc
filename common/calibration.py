"""Draw seeded calibration samples from training data, never from what is evaluated."""
from __future__ import annotations

import sys
from typing import Sequence

import numpy as np
from transformers import PreTrainedTokenizerBase

from .backends.base import Calibration
from .batching import tokenize
from .errors import UserError
from .sst2 import load_examples


def draw_indices(total: int, count: int, seed: int) -> np.ndarray:
    """`count` distinct rows of `total`, uniform, reproducible for a seed, in ascending order."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(total, size=min(count, total), replace=False))


def normalized(sentence: str) -> str:
    """The sentence as content: case, spacing and surrounding blanks do not make it another one."""
    return " ".join(sentence.casefold().split())


def check_no_overlap(drawn: Sequence[str], evaluated: Sequence[str], source: str) -> None:
    """Refuse calibration sentences that are also evaluated, whatever file or split they came from."""
    evaluated_set = {normalized(s) for s in evaluated}
    shared = [s for s in drawn if normalized(s) in evaluated_set]
    if shared:
        raise UserError(f"{len(shared)} of the {len(drawn)} calibration sentences drawn from "
                        f"'{source}' are also evaluated (e.g. '{shared[0].strip()[:60]}'); "
                        "calibrate on training data, never on what is evaluated")


def draw_calibration(location: str, split: str, seed: int, count: int,
                     tokenizer: PreTrainedTokenizerBase, max_length: int,
                     evaluated: Sequence[str]) -> Calibration:
    """Tokenized exactly as evaluation is (truncation at max_length); backends batch them."""
    examples = load_examples(location, split=split)
    total = len(examples.sentences)
    if total < count:
        print(f"calibration: '{location}' has {total} rows, fewer than the {count} asked for; "
              f"using all {total}", file=sys.stderr)
    indices = draw_indices(total, count, seed)
    drawn = [examples.sentences[i] for i in indices]
    check_no_overlap(drawn, evaluated, location)
    return Calibration(source=location, seed=seed, indices=indices,
                       encoded=tokenize(tokenizer, drawn, max_length), requested=count,
                       identity=examples.identity)
