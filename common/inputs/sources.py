"""Where the model and the data are loaded from: a local copy the user names, the hub, or, when the
hub cannot be reached, the copies bundled with the project (SST-2, and BERT-tiny for bert_tiny.py).

Everything is resolved before anything is loaded, so that one message covers all that cannot be
loaded, and each fallback is one line saying what is used instead."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..host.errors import UserError
from ..host.paths import ROOT
from .examples import DEFAULT_DATASET, LOCAL_DATA_HINT, data_format, default_split, hub_id
from .hub import hub_problem

BUNDLED_SST2 = {"validation": ROOT / "data" / "sst2" / "validation.tsv",
                "train": ROOT / "data" / "sst2" / "train.tsv.xz"}
UNREACHABLE = "the Hugging Face hub is unreachable"


@dataclass(frozen=True)
class Source:
    """What the user asked for and what is loaded for it."""
    requested: str
    location: str  # a hub id or a path: what the loader is given
    split: Optional[str]  # a hub split; a local file's split column value; None: the whole file
    copy: str  # local | hub | bundled

    @property
    def table_split(self) -> Optional[str]:
        """What the loader is given as the split: a bundled file is the split itself."""
        return None if self.copy == "bundled" else self.split

    def record(self) -> dict:
        return {"requested": self.requested, "loaded": self.location, "split": self.split,
                "copy": self.copy}


@dataclass(frozen=True)
class Wanted:
    """One thing to load, how to say it, and the bundled copy to use if the hub cannot serve it."""
    what: str  # "model", "dataset", "calibration dataset"
    name: str
    split: Optional[str]
    repo_type: str  # model | dataset
    hint: str  # the flag that takes a local copy
    fallback: Optional[Path] = None
    fallback_note: str = ""


def looks_local(name: str) -> bool:
    """A path, not a hub id ("owner/name" or "name")."""
    path = Path(name).expanduser()
    return (path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1
            or data_format(path) is not None)


def resolve(wanted: list[Wanted]) -> list[Source]:
    """A Source for each, in order; one UserError naming everything that cannot be loaded."""
    sources, problems, notes = [], [], []
    unreachable = None  # once the hub is unreachable, do not ask again
    for item in wanted:
        if looks_local(item.name):
            sources.append(Source(item.name, item.name, item.split, "local"))
            continue
        why = unreachable or hub_problem(item.name, item.repo_type)
        if why is None:
            sources.append(Source(item.name, item.name, item.split, "hub"))
            continue
        if why.startswith(UNREACHABLE):
            unreachable = why
        if item.fallback is not None:
            notes.append(f"{item.what} '{item.name}' cannot be loaded ({why}); using "
                         f"{item.fallback_note}")
            sources.append(Source(item.name, str(item.fallback), item.split, "bundled"))
        else:
            problems.append((item, why))
    if problems:
        whys = {why for _, why in problems}
        if len(whys) == 1:  # usually: the hub is unreachable
            items = " nor ".join(f"{item.what} '{item.name}' ({item.hint})" for item, _ in problems)
            raise UserError(f"cannot load {items}: {whys.pop()}")
        raise UserError("cannot load " + "; nor ".join(
            f"{item.what} '{item.name}' ({why}; {item.hint})" for item, why in problems))
    for note in notes:
        print(note, file=sys.stderr)
    return sources


def sst2_fallback(name: str, split: str) -> tuple[Optional[Path], str]:
    """The bundled SST-2 split for the default hub dataset, where there is one."""
    if name != DEFAULT_DATASET or split not in BUNDLED_SST2:
        return None, ""
    path = BUNDLED_SST2[split]
    return path, f"the bundled GLUE SST-2 {split} split ({path.relative_to(ROOT)})"


def model_wanted(name: str, default: str, bundled: Optional[Path]) -> Wanted:
    fallback = bundled if bundled is not None and name == default else None
    note = (f"the bundled BERT-tiny SST-2 checkpoint ({bundled.relative_to(ROOT)}; not "
            f"{default}: see its README.md and TRAINING.md)") if fallback else ""
    return Wanted("model", name, "", "model", "pass a local checkpoint folder with --model DIR",
                  fallback, note)


def data_wanted(what: str, name: str, split: Optional[str], flag: str,
                hub_split: Optional[str] = None) -> Wanted:
    """`split`: the one the user named, else None: for a hub dataset `hub_split` (default: the
    one it is evaluated on), for a local file the whole file. `sst` means stanfordnlp/sst."""
    if not looks_local(name):
        name, split = hub_id(name), split or hub_split or default_split(name)
    fallback, note = sst2_fallback(name, split)
    return Wanted(what, name, split, "dataset", LOCAL_DATA_HINT.format(flag=flag), fallback, note)


def calibration_wanted(calibration_dataset: Optional[str], dataset: str) -> Wanted:
    """The explicit --calibration-dataset, else the 'train' split of the hub dataset evaluated."""
    if calibration_dataset:
        return data_wanted("calibration dataset", calibration_dataset, None,
                           "--calibration-dataset", hub_split="train")
    if looks_local(dataset):
        raise UserError("--dataset is a local file, so name the training data to calibrate on with "
                        "--calibration-dataset FILE (e.g. data/sst2/train.tsv.xz)")
    return data_wanted("calibration dataset", dataset, None, "--calibration-dataset",
                       hub_split="train")
