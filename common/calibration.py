"""Draw seeded calibration samples from training data, never from what is evaluated."""
from __future__ import annotations

import sys
from typing import Sequence

import numpy as np
from transformers import PreTrainedTokenizerBase

from .backends.base import Calibration
from .batching import tokenize
from .errors import UserError
from .examples import Columns, load_examples


def draw_indices(total: int, count: int, seed: int) -> np.ndarray:
    """`count` distinct rows of `total`, uniform, reproducible for a seed, in ascending order."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(total, size=min(count, total), replace=False))


def normalized(sentence: str) -> str:
    """The sentence as content: case, spacing and surrounding blanks do not make it another one."""
    return " ".join(sentence.casefold().split())


def check_no_overlap(drawn: Sequence[str], evaluated: Sequence[str], source: str) -> None:
    """Refuse calibration sentences (or pairs: Examples.texts) that are also evaluated, whatever
    file or split they came from."""
    evaluated_set = {normalized(s) for s in evaluated}
    shared = [s for s in drawn if normalized(s) in evaluated_set]
    if shared:
        raise UserError(f"{len(shared)} of the {len(drawn)} calibration sentences drawn from "
                        f"'{source}' are also evaluated (e.g. '{shared[0].strip()[:60]}'); "
                        "calibrate on training data, never on what is evaluated")


def draw_aside(sentences: Sequence[str], taken: Sequence[int], count: int, seed: int,
               evaluated: Sequence[str], what: str) -> np.ndarray:
    """`count` rows drawn with `seed` from those whose sentence (by content) is neither evaluated
    nor among the rows already `taken`: what steers the quantization is never what is measured,
    and accuracy control's validation slice is never what distillation trains on. Ascending."""
    excluded = {normalized(s) for s in evaluated} | {normalized(sentences[i]) for i in taken}
    rows = np.asarray([i for i, s in enumerate(sentences) if normalized(s) not in excluded])
    if len(rows) == 0:
        raise UserError(f"no training sentence is left for the {what} once calibration "
                        "and evaluation sentences are set aside")
    if len(rows) < count:
        print(f"{what}: {len(rows)} training rows are neither calibrated on nor evaluated, fewer "
              f"than the {count} asked for; using all {len(rows)}", file=sys.stderr)
    return np.sort(rows[draw_indices(len(rows), count, seed)])


def draw_calibration(location: str, split: str | None, seed: int, count: int,
                     tokenizer: PreTrainedTokenizerBase, max_length: int,
                     evaluated: Sequence[str], validation: int = 0,
                     columns: Columns = Columns(), config: str | None = None,
                     distillation: int = 0) -> Calibration:
    """Tokenized exactly as evaluation is (truncation at max_length, pairs as pairs); backends
    batch them. `evaluated`: the evaluated rows' texts (Examples.texts). With `validation`, also
    that many other rows for accuracy control's slice (drawn with seed + 1), and with
    `distillation` that many rows again for --distill-steps (seed + 2), each set apart from the
    others (draw_aside). Labels are not read."""
    examples = load_examples(location, split=split, columns=columns, labels=None, config=config)
    texts = examples.texts()
    total = len(texts)
    if total < count:
        print(f"calibration: '{location}' has {total} rows, fewer than the {count} asked for; "
              f"using all {total}", file=sys.stderr)
    indices = draw_indices(total, count, seed)
    check_no_overlap([texts[i] for i in indices], evaluated, location)
    checked = trained = None
    if validation:
        checked = draw_aside(texts, indices, validation, seed + 1, evaluated, "validation slice")
    if distillation:
        taken = indices if checked is None else np.concatenate([indices, checked])
        trained = draw_aside(texts, taken, distillation, seed + 2, evaluated, "distillation rows")

    def encoded(rows):
        pairs = None if examples.pairs is None else [examples.pairs[i] for i in rows]
        return tokenize(tokenizer, [examples.sentences[i] for i in rows], max_length, pairs)

    return Calibration(source=location, seed=seed, indices=indices, encoded=encoded(indices),
                       requested=count, identity=examples.identity, validation_indices=checked,
                       validation=None if checked is None else encoded(checked),
                       distillation_indices=trained,
                       distillation=None if trained is None else encoded(trained))
