"""Draw seeded calibration samples from training data, never from what is evaluated."""
from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from ..host.cpu import cpu_identity
from ..host.errors import UserError
from .batching import Encoded, tokenize
from .examples import Columns, load_examples

if TYPE_CHECKING:  # transformers takes seconds to import
    from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class Calibration:
    """Seeded calibration samples for static INT8, drawn from a training split."""
    source: str
    seed: int
    indices: np.ndarray  # row numbers in the source split
    encoded: Encoded  # tokenized as evaluation is
    requested: int
    identity: dict = field(default_factory=dict)  # the source file's SHA-256, or a fingerprint
    # for accuracy control: other rows of the same source, none calibrated on or evaluated
    validation_indices: Optional[np.ndarray] = None
    validation: Optional[Encoded] = None
    # for --distill-steps: further rows of the same source, none of the above or evaluated
    distillation_indices: Optional[np.ndarray] = None
    distillation: Optional[Encoded] = None

    def record(self) -> dict:
        """What the results JSON records: enough to draw the same samples again."""
        record = {"source": self.source, "seed": self.seed, "indices": self.indices.tolist(),
                  **self.identity}
        if self.validation_indices is not None:
            record["validation_indices"] = self.validation_indices.tolist()
        if self.distillation_indices is not None:
            record["distillation_indices"] = self.distillation_indices.tolist()
        return record

    def searched_on(self) -> dict:
        """The CPU whose arithmetic a --min-agreement search scores its slice on: this one."""
        return cpu_identity()

    def cache_parts(self) -> dict:
        """record() plus a hash of everything the samples feed the model (token ids, token type
        ids, the padding id, the length cut), so an edited calibration file or tokenizer means a
        new build."""
        encoded = [e for e in (self.encoded, self.validation, self.distillation) if e is not None]
        tokens = hashlib.sha256()
        for e in encoded:
            tokens.update(f"pad {e.pad_id} max {e.max_length}|".encode())
            for ids, types in zip(e.ids, e.type_ids):
                tokens.update(ids.tobytes() + b"|" + types.tobytes() + b"|")
        return {**self.record(), "tokens": tokens.hexdigest()}


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
