"""Rows of a data file as columns of values. Local TSV, CSV and JSON lines (plain, or .gz, .xz,
.bz2) are read with the standard library: a stock PyTorch image, torch and transformers but no
`datasets`, runs the proof points on local data. Hub datasets, Parquet, JSON and zstd go through
`datasets` (`from_dataset`)."""
from __future__ import annotations

import bz2
import csv
import gzip
import json
import lzma
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..host.errors import UserError, first_line

OPENERS = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}
DIALECTS = {".tsv": {"delimiter": "\t", "quoting": csv.QUOTE_NONE}, ".csv": {}}
READ_HERE = (*DIALECTS, ".jsonl")  # the formats read without `datasets`
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
INTEGER = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class Table:
    """Column name -> the column's values, in row order; a hub split's `datasets` fingerprint."""
    columns: dict
    fingerprint: Optional[str] = None

    @property
    def column_names(self) -> list[str]:
        return list(self.columns)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()), []))

    def __getitem__(self, name: str) -> list:
        return self.columns[name]

    def rows(self, keep: list[int]) -> "Table":
        return Table({name: [values[i] for i in keep] for name, values in self.columns.items()},
                     self.fingerprint)


def from_dataset(dataset) -> Table:
    """A `datasets` split as a Table (its fingerprint kept: the identity of a hub split)."""
    return Table({name: list(dataset[name]) for name in dataset.column_names},
                 getattr(dataset, "_fingerprint", "unknown"))


def numbers(values: list) -> list:
    """A column of text that all reads as numbers, as numbers (integers where every one is), as a
    table reader infers a column's type; anything else as it is."""
    if not values or not all(isinstance(v, str) and NUMBER.fullmatch(v.strip()) for v in values):
        return values
    if all(INTEGER.fullmatch(v.strip()) for v in values):
        return [int(v) for v in values]
    return [float(v) for v in values]


def read_text_table(path: Path, kind: str, source: str) -> Table:
    """A TSV or CSV file (a header row, then rows; blank lines skipped; TSV unquoted, as GLUE
    writes it) or JSON lines (one object a line), each text cell kept as written. Anything it
    cannot read as such is one line."""
    opener = OPENERS.get(path.suffix.lower(), open)
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
            if kind == ".jsonl":
                return _json_lines(handle, source)
            return _delimited(csv.reader(handle, **DIALECTS[kind]), source)
    except (OSError, EOFError, lzma.LZMAError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"cannot read '{source}': {first_line(exc)}") from None


def _delimited(reader, source: str) -> Table:
    lines = (row for row in reader if row)
    header = next(lines, None)
    if header is None:
        raise UserError(f"'{source}' has no rows")
    columns: dict = {name: [] for name in header}
    for number, row in enumerate(lines, start=2):
        if len(row) != len(header):
            raise UserError(f"cannot read '{source}': row {number} has {len(row)} fields, the "
                            f"header {len(header)}")
        for values, cell in zip(columns.values(), row):
            values.append(cell)
    return Table(columns)


def _json_lines(handle, source: str) -> Table:
    records = []
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise UserError(f"cannot read '{source}': line {number} is not JSON "
                            f"({first_line(exc)})") from None
        if not isinstance(record, dict):
            raise UserError(f"cannot read '{source}': line {number} is not a JSON object")
        records.append(record)
    names = list(dict.fromkeys(name for record in records for name in record))
    return Table({name: [record.get(name) for record in records] for name in names})
