"""What every backend takes (options, calibration) and gives back (a Runner)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..batching import Batch, Encoded

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
        """What the results JSON records: enough to draw the same samples again."""
        return {"source": self.source, "seed": self.seed, "indices": self.indices.tolist()}

    def cache_parts(self) -> dict:
        """key() plus a hash of the token ids, so an edited calibration file means a new build."""
        tokens = hashlib.sha256(b"".join(ids.tobytes() for ids in self.encoded.ids)).hexdigest()
        return {**self.key(), "tokens": tokens}


def build_key_parts(backend: str, weights: str, options: dict, versions: dict[str, str],
                    calibration: Calibration | None) -> dict:
    """Everything a backend's build depends on, hashed into its cache key or build name."""
    parts = {"backend": backend, "weights": weights, "options": options, "versions": versions}
    if calibration is not None:
        parts["calibration"] = calibration.cache_parts()
    return parts


@dataclass
class Runner:
    """A built (or reference) model: logits float32 [batch, 2] for a batch of int64 arrays."""
    name: str
    backend: str
    device: str
    precision: str
    predict: Callable[[Batch], np.ndarray]
    build_seconds: float | None = None
    cache_hit: bool | None = None
    files: dict[str, int] = field(default_factory=dict)  # model file -> bytes
    facts: dict = field(default_factory=dict)  # backend-specific build facts for the report

    def __call__(self, batch: Batch) -> np.ndarray:
        return self.predict(batch)
