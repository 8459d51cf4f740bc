"""The run's settings: built once from the command line, typed, the same fields for every script."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from typing import Optional

DEFAULT_CALIBRATION_SAMPLES = 1000
DEFAULT_VALIDATION_SAMPLES = 1000


@dataclass(frozen=True)
class Settings:
    """What the user asked for (common/run/cli.py says what each flag means). A float script has
    bert_quantize.py's fields too, at their defaults, so no code asks whether a flag exists."""
    command: tuple[str, ...]
    model: str
    dataset: str
    split: Optional[str]
    dataset_config: Optional[str]
    text_column: Optional[str]
    text_pair_column: Optional[str]
    label_column: Optional[str]
    limit: Optional[int]
    backend: str
    device: str
    num_chips: Optional[int]
    compiler_flags: Optional[str]
    batch_size: int
    max_length: int
    rebuild: str
    cache_dir: str
    json: Optional[str]
    mismatches: Optional[str]
    repeats: int
    precision: str
    stage: str = "both"  # both | build (-b/--build) | execute (-e/--execute)
    # bert_quantize.py's
    quantization: str = "static"
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES
    seed: Optional[int] = None
    min_agreement: Optional[float] = None
    distill_steps: int = 0
    validation_samples: int = DEFAULT_VALIDATION_SAMPLES
    calibration_dataset: Optional[str] = None


def settings_from(args: argparse.Namespace) -> Settings:
    """The parsed command line as Settings; a flag Settings does not hold is a mistake here."""
    known = {field.name for field in fields(Settings)}
    unknown = set(vars(args)) - known
    if unknown:
        raise ValueError(f"Settings has no field for {', '.join(sorted(unknown))}")
    values = vars(args)
    return Settings(**{**values, "command": tuple(values["command"])})
