"""The examples a proof point evaluates or calibrates on: SST-2 or any sentence/label set, from the
hub or a local file, loaded and validated."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..host.errors import UserError, first_line
from ..host.files import file_sha256
from .tables import OPENERS, READ_HERE, Table, from_dataset, numbers, read_text_table

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


def data_identity(location: str, table: Table) -> dict:
    """SHA-256 of a local file; the `datasets` fingerprint of a hub split."""
    path = Path(location).expanduser()
    if path.is_file():
        return {"sha256": file_sha256(path)}
    return {"datasets_fingerprint": table.fingerprint or "unknown"}


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


# the text columns found without flags: a known GLUE pair, else one text column
GLUE_PAIRS = (("sentence1", "sentence2"), ("question", "sentence"), ("premise", "hypothesis"),
              ("question1", "question2"))
TEXT_COLUMNS = ("sentence", "text")


@dataclass(frozen=True)
class Columns:
    """Which columns hold the text, the second text of a pair, and the label; None: found."""
    text: str | None = None
    pair: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class LabelSpace:
    """The model's labels: how many, and their names (lower case) -> ids, from its label2id."""
    count: int = 2
    names: dict = field(default_factory=dict)

    def describe(self) -> str:
        named = {i: n for n, i in self.names.items()}
        return ", ".join(f"{i} ({named[i]})" if i in named else str(i) for i in range(self.count))


@dataclass(frozen=True)
class Examples:
    sentences: list[str]  # the (first) text of each row
    labels: np.ndarray  # int64 in [0, number of the model's labels)
    identity: dict = field(default_factory=dict)  # SHA-256 of the file, or the hub split's fingerprint
    labels_rule: str = ""  # how labels became ids; "" when the file had the ids themselves
    pairs: list[str] | None = None  # the second text of each row, for sentence-pair tasks
    columns: dict = field(default_factory=dict)  # the columns read: text, pair, label

    def texts(self) -> list[str]:
        """Each row's text as one string (a pair joined by a tab): what a row says."""
        if self.pairs is None:
            return list(self.sentences)
        return [f"{a}\t{b}" for a, b in zip(self.sentences, self.pairs)]


def _local_split(table: Table, source: str, split: str | None) -> Table:
    """A local file is read whole; with a split named, only the rows of its 'split' column that
    hold that name (a file without one is refused: it would be read whole while the JSON said
    otherwise)."""
    if split is None:
        return table
    if "split" not in table.column_names:
        raise UserError(f"--split {split}: '{source}' is one table (no 'split' column); leave "
                        "--split out, or use a file with a split column")
    rows = table.rows([i for i, value in enumerate(table["split"]) if str(value) == split])
    if len(rows) == 0:
        raise UserError(f"--split {split}: no row of '{source}' has it (its splits: "
                        f"{', '.join(sorted(set(map(str, table['split']))))})")
    return rows


def _datasets(needed_for: str):
    """The `datasets` package, quiet; one line where it is not installed."""
    try:
        import datasets
    except ImportError:
        raise UserError(f"{needed_for} needs the datasets package (pip install datasets); local "
                        f"{', '.join(READ_HERE)} files do not") from None
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    return datasets


def _load_table(source: str, split: str | None, config: str | None = None) -> Table:
    path = Path(source).expanduser()
    kind = data_format(path)
    if kind is not None or path.exists():
        if not path.is_file():
            raise UserError(f"data file '{source}' does not exist")
        if kind is None:
            raise UserError(f"data file '{source}' has an unknown format; use one of "
                            f"{', '.join(FILE_FORMATS)} (text formats may end in "
                            f"{', '.join(COMPRESSIONS)})")
        if kind in READ_HERE and path.suffix.lower() in (kind, *OPENERS):
            table = read_text_table(path, kind, source)
        else:
            table = _read_with_datasets(path, kind, source)
        if len(table) == 0:
            raise UserError(f"'{source}' has no rows")
        return _local_split(table, source, split)
    datasets = _datasets(f"hub dataset '{source}'")
    try:
        return from_dataset(datasets.load_dataset(source, config, split=split))
    except ValueError as exc:
        raise UserError(f"dataset '{source}' has no split '{split}': {first_line(exc)}") from None
    except Exception as exc:
        raise UserError(f"cannot load dataset '{source}' from the hub: {first_line(exc)}; "
                        f"{LOCAL_DATA_HINT.format(flag='--dataset')}") from None


def _read_with_datasets(path: Path, kind: str, source: str) -> Table:
    """Parquet, JSON and zstd-compressed files, read by `datasets`."""
    datasets = _datasets(f"reading '{source}'")
    builder, options = FILE_FORMATS[kind]
    try:
        dataset = datasets.load_dataset(builder, data_files=str(path), split="train", **options)
    except Exception as exc:  # datasets wraps parser errors in many types
        if "corresponds to no data" in str(exc):  # what datasets says of a header-only file
            raise UserError(f"'{source}' has no rows") from None
        raise UserError(f"cannot read '{source}': {first_line(exc)}") from None
    return from_dataset(dataset)


def find_columns(names: list[str], wanted: Columns, source: str, with_label: bool = True
                 ) -> Columns:
    """The columns to read: the flags' where given, else `label`, and a known GLUE pair or a
    `sentence`/`text` column; a missing one is one line naming the columns found and the flag."""
    found = f"its columns: {', '.join(names) or 'none'}"
    text, pair = wanted.text, wanted.pair
    if text is None:
        glue = next(((a, b) for a, b in GLUE_PAIRS if a in names and b in names), None)
        if glue and pair is None:
            text, pair = glue
        else:
            text = next((name for name in TEXT_COLUMNS if name in names), None)
        if text is None:
            raise UserError(f"'{source}' has no text column ({' or '.join(TEXT_COLUMNS)}, or a "
                            f"pair: {', '.join('/'.join(p) for p in GLUE_PAIRS)}; {found}); name "
                            "it with --text-column NAME")
    label = None if not with_label else wanted.label or "label"
    for column, flag in ((text, "--text-column"), (pair, "--text-pair-column"),
                         (label, "--label-column")):
        if column is not None and column not in names:
            raise UserError(f"'{source}' has no column '{column}' ({found}); name the right one "
                            f"with {flag} NAME")
    return Columns(text, pair, label)


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


def label_ids(labels: list, space: LabelSpace) -> tuple[np.ndarray, str]:
    """Each label as the model's class id: an integer in [0, count); a name through the model's
    label2id, case ignored; for a 2-label model, float sentiment in [0, 1] binarised as the
    original proof points did. Anything else is refused at its first row, naming the labels."""
    if space.count == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                for v in labels):
        try:
            return binarized(labels)
        except UserError as exc:
            raise UserError(f"{exc}; the model's labels: {space.describe()}") from None
    ids, by_name = [], False
    for row, label in enumerate(labels):
        if isinstance(label, str) and label.strip().casefold() in space.names:
            ids.append(space.names[label.strip().casefold()])
            by_name = True
        elif isinstance(label, (int, float)) and not isinstance(label, bool) and \
                float(label).is_integer() and 0 <= label < space.count:
            ids.append(int(label))
        else:
            raise UserError(f"row {row + 1}: label {label!r} is not one of the model's labels: "
                            f"{space.describe()}")
    return np.asarray(ids, dtype=np.int64), "names mapped through the model's label2id" \
        if by_name else ""


def _texts(table, column: str, source: str) -> list[str]:
    texts = table[column]
    for row, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            what = "empty sentence" if column in TEXT_COLUMNS else f"empty '{column}'"
            raise UserError(f"'{source}' row {row + 1}: {what}")
    return list(texts)


def load_examples(source: str, split: str | None = None, limit: int | None = None,
                  columns: Columns = Columns(), labels: LabelSpace | None = LabelSpace(),
                  config: str | None = None) -> Examples:
    """Rows in file order (the first `limit` of them), checked: the text (and pair) and label
    columns (found, or as named), no empty text, labels the model has (LabelSpace), at least one
    row (`labels` None: the label column is not read, as for calibration). `split`: the hub split, or for a local file the value of its 'split' column to keep
    (None: the whole file); `config`: a hub dataset's configuration (GLUE's mrpc)."""
    table = _load_table(source, split, config)
    used = find_columns(table.column_names, columns, source, with_label=labels is not None)
    if limit is not None:
        table = table.rows(list(range(min(limit, len(table)))))
    if len(table) == 0:
        raise UserError(f"'{source}' has no rows" + (" (after --limit)" if limit is not None else ""))
    sentences = _texts(table, used.text, source)
    pairs = _texts(table, used.pair, source) if used.pair else None
    ids, rule = np.zeros(len(sentences), dtype=np.int64), ""
    if labels is not None:
        try:
            ids, rule = label_ids(numbers(table[used.label]), labels)
        except UserError as exc:
            raise UserError(f"'{source}' {exc}") from None
    return Examples(sentences=sentences, labels=ids, identity=data_identity(source, table),
                    labels_rule=rule, pairs=pairs,
                    columns={"text": used.text, "pair": used.pair, "label": used.label})
