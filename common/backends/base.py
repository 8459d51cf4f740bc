"""What every backend takes (options, calibration) and gives back (a Runner)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..batching import Batch, Encoded

PRECISIONS = ("fp32", "fp16", "int8")
QUANTIZATIONS = ("static", "dynamic")


@dataclass(frozen=True)
class BuildOptions:
    """Everything that changes what a build produces; part of the cache key."""
    precision: str = "fp32"
    quantization: str = "static"  # int8 only
    device: str = "cpu"  # ONNX Runtime: cpu | cuda
    num_chips: int = 1  # GroqFlow
    max_length: int = 128


@dataclass(frozen=True)
class Calibration:
    """Seeded calibration samples for static INT8, drawn from a training split."""
    source: str
    seed: int
    indices: np.ndarray  # row numbers in the source split
    encoded: Encoded  # tokenized as evaluation is
    requested: int

    def key(self) -> dict:
        return {"source": self.source, "seed": self.seed, "indices": self.indices.tolist()}


@dataclass
class Runner:
    """A built (or reference) model: logits float32 [batch, 2] for a batch of int64 arrays."""
    name: str
    backend: str
    device: str
    precision: str
    predict: Callable[[Batch], np.ndarray]
    static_shape: bool = False  # True: feed batch 1 padded to max_length
    build_seconds: float | None = None
    cache_hit: bool | None = None
    files: dict[str, int] = field(default_factory=dict)  # model file -> bytes
    facts: dict = field(default_factory=dict)  # backend-specific build facts for the report

    def __call__(self, batch: Batch) -> np.ndarray:
        return self.predict(batch)
