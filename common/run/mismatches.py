"""The sentences whose prediction a build changed, as a TSV a person can read."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from ..host.files import write_results_file
from ..inputs.examples import Examples
from .evaluate import Evaluation

HEADER = ("index", "sentence", "label", "reference_prediction", "built_prediction",
          "reference_logits", "built_logits")


def _logits(row: np.ndarray) -> str:
    return " ".join(f"{x:.6f}" for x in row)


def mismatch_rows(examples: Examples, reference: Evaluation, built: Evaluation) -> list[tuple]:
    """index, sentence, (its pair,) label, both predictions, both logits: each differing row."""
    flipped = np.flatnonzero(reference.predictions != built.predictions)
    pair = (lambda i: (examples.pairs[i],)) if examples.pairs is not None else (lambda i: ())
    return [(int(i), examples.sentences[i], *pair(i), int(examples.labels[i]),
             int(reference.predictions[i]), int(built.predictions[i]),
             _logits(reference.logits[i]), _logits(built.logits[i])) for i in flipped]


def write_mismatches(path: Path, examples: Examples, reference: Evaluation, built: Evaluation) -> int:
    """Header only when nothing differs. Returns the number of sentences listed."""
    rows = mismatch_rows(examples, reference, built)
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t", quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    writer.writerow(HEADER if examples.pairs is None else HEADER[:2] + ("pair",) + HEADER[2:])
    writer.writerows(rows)
    write_results_file(path, out.getvalue())
    return len(rows)
