"""Draw seeded calibration samples from a training split, never from the evaluation data."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from transformers import PreTrainedTokenizerBase

from .backends.base import Calibration
from .batching import tokenize
from .errors import UserError
from .sst2 import load_examples


def calibration_source(calibration_dataset: str | None, dataset: str) -> str:
    """The explicit --calibration-dataset, else the hub dataset's own training split."""
    if calibration_dataset:
        source = calibration_dataset
    elif Path(dataset).expanduser().exists():
        raise UserError("--dataset is a local file, so name the training data to calibrate on with "
                        "--calibration-dataset FILE (e.g. SST-2's train.tsv)")
    else:
        source = dataset
    if Path(source).expanduser().exists() and Path(dataset).expanduser().exists() \
            and Path(source).expanduser().resolve() == Path(dataset).expanduser().resolve():
        raise UserError(f"--calibration-dataset '{source}' is the evaluation file; calibrate on "
                        "training data, never on what is evaluated")
    return source


def draw_indices(total: int, count: int, seed: int) -> np.ndarray:
    """`count` distinct rows of `total`, uniform, reproducible for a seed, in ascending order."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(total, size=min(count, total), replace=False))


def draw_calibration(source: str, seed: int, count: int, tokenizer: PreTrainedTokenizerBase,
                     max_length: int) -> Calibration:
    """Tokenized exactly as evaluation is (truncation at max_length); backends batch them."""
    examples = load_examples(source, split="train")
    total = len(examples.sentences)
    if total < count:
        print(f"calibration: '{source}' has {total} rows, fewer than the {count} asked for; "
              f"using all {total}", file=sys.stderr)
    indices = draw_indices(total, count, seed)
    encoded = tokenize(tokenizer, [examples.sentences[i] for i in indices], max_length)
    return Calibration(source=source, seed=seed, indices=indices, encoded=encoded, requested=count)
