"""Load SST-2, or any sentence/label set, from the hub or a local file, and validate it."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import UserError, first_line
from .files import file_sha256

DEFAULT_DATASET = "stanfordnlp/sst2"
# the original proof points' dataset: SST with float sentiment in [0, 1], evaluated on its test split
ORIGINAL_DATASET = {"sst": "stanfordnlp/sst"}
HUB_SPLITS = {"stanfordnlp/sst": "test"}  # the split a hub dataset is evaluated on, if not validation
BINARIZED = "label > 0.5 is positive (float sentiment, binarised as the original proof points did)"
LOCAL_DATA_HINT = "pass a local .tsv/.csv/.parquet/.jsonl file with {flag} FILE"
COMPRESSIONS = (".gz", ".xz", ".bz2", ".zst")  # datasets decompresses text formats as it reads
# extension -> (datasets builder, its reader options)
FILE_FORMATS = {
    ".tsv": ("csv", {"delimiter": "\t", "quoting": 3, "keep_default_na": False}),
    ".csv": ("csv", {"keep_default_na": False}),
    ".parquet": ("parquet", {}),
    ".jsonl": ("json", {}),
    ".json": ("json", {}),
}


def data_identity(location: str, table) -> dict:
    """SHA-256 of a local file; the `datasets` fingerprint of a hub split."""
    path = Path(location).expanduser()
    if path.is_file():
        return {"sha256": file_sha256(path)}
    return {"datasets_fingerprint": getattr(table, "_fingerprint", "unknown")}


def data_format(path: Path) -> str | None:
    """The table format a file name says (".tsv" for "train.tsv.xz"), or None."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes.pop()
    if not suffixes or suffixes[-1] not in FILE_FORMATS:
        return None
    if suffixes[-1] == ".parquet" and path.suffix.lower() in COMPRESSIONS:
        return None  # parquet compresses inside the file
    return suffixes[-1]


def hub_id(name: str) -> str:
    """The hub id a dataset name means: `sst` is the original proof points' stanfordnlp/sst."""
    return ORIGINAL_DATASET.get(name, name)


def default_split(name: str) -> str:
    """The hub split evaluated when --split is not given."""
    return HUB_SPLITS.get(hub_id(name), "validation")


@dataclass(frozen=True)
class Examples:
    sentences: list[str]
    labels: np.ndarray  # int64, 0 = negative, 1 = positive
    identity: dict = field(default_factory=dict)  # SHA-256 of the file, or the hub split's fingerprint
    labels_rule: str = ""  # how float labels became 0/1; "" when the file had 0/1 labels


def _local_split(table, source: str, split: str | None):
    """A local file is read whole; with a split named, only the rows of its 'split' column that
    hold that name (a file without one is refused: it would be read whole while the JSON said
    otherwise)."""
    if split is None:
        return table
    if "split" not in table.column_names:
        raise UserError(f"--split {split}: '{source}' is one table (no 'split' column); leave "
                        "--split out, or use a file with a split column")
    rows = table.filter(lambda row: row["split"] == split)
    if len(rows) == 0:
        raise UserError(f"--split {split}: no row of '{source}' has it (its splits: "
                        f"{', '.join(sorted(set(map(str, table['split']))))})")
    return rows


def _load_table(source: str, split: str | None):
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    path = Path(source).expanduser()
    kind = data_format(path)
    if kind is not None or path.exists():
        if not path.is_file():
            raise UserError(f"data file '{source}' does not exist")
        if kind is None:
            raise UserError(f"data file '{source}' has an unknown format; use one of "
                            f"{', '.join(FILE_FORMATS)} (text formats may end in "
                            f"{', '.join(COMPRESSIONS)})")
        builder, options = FILE_FORMATS[kind]
        try:
            table = datasets.load_dataset(builder, data_files=str(path), split="train", **options)
        except Exception as exc:  # datasets wraps parser errors in many types
            if "corresponds to no data" in str(exc):  # what datasets says of a header-only file
                raise UserError(f"'{source}' has no rows") from None
            raise UserError(f"cannot read '{source}': {first_line(exc)}") from None
        return _local_split(table, source, split)
    try:
        return datasets.load_dataset(source, split=split)
    except ValueError as exc:
        raise UserError(f"dataset '{source}' has no split '{split}': {first_line(exc)}") from None
    except Exception as exc:
        raise UserError(f"cannot load dataset '{source}' from the hub: {first_line(exc)}; "
                        f"{LOCAL_DATA_HINT.format(flag='--dataset')}") from None


def binarized(labels: list) -> tuple[np.ndarray, str]:
    """0/1 labels as they are; float sentiment in [0, 1] (SST) as the original proof points'
    binarize_labels did: positive above 0.5. Anything else is refused, row by row."""
    for row, label in enumerate(labels):
        if isinstance(label, bool) or not isinstance(label, (int, float)) or not 0 <= label <= 1:
            raise UserError(f"row {row + 1}: label {label!r} is not 0 or 1 (nor a sentiment in "
                            "[0, 1])")
    values = np.asarray(labels, dtype=np.float64)
    if np.isin(values, (0.0, 1.0)).all():
        return values.astype(np.int64), ""
    return (values > 0.5).astype(np.int64), BINARIZED


def load_examples(source: str, split: str | None = None, limit: int | None = None) -> Examples:
    """Rows in file order (the first `limit` of them), checked: sentence/label columns, no empty
    sentence, labels 0/1 or sentiment in [0, 1] (binarised), at least one row. `split`: the hub
    split, or for a local file the value of its 'split' column to keep (None: the whole file)."""
    table = _load_table(source, split)
    missing = {"sentence", "label"} - set(table.column_names)
    if missing:
        raise UserError(f"'{source}' lacks the column(s) {', '.join(sorted(missing))} "
                        f"(it has: {', '.join(table.column_names) or 'none'})")
    if limit is not None:
        table = table.select(range(min(limit, len(table))))
    if len(table) == 0:
        raise UserError(f"'{source}' has no rows" + (" (after --limit)" if limit is not None else ""))
    sentences = table["sentence"]
    labels = table["label"]
    for row, sentence in enumerate(sentences):
        if not isinstance(sentence, str) or not sentence.strip():
            raise UserError(f"'{source}' row {row + 1}: empty sentence")
    try:
        binary, rule = binarized(labels)
    except UserError as exc:
        raise UserError(f"'{source}' {exc}") from None
    return Examples(sentences=list(sentences), labels=binary,
                    identity=data_identity(source, table), labels_rule=rule)

