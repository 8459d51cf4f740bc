"""The backend interface: what every backend takes (options, calibration) and gives back (a Runner).

ONNX Runtime, OpenVINO, PyTorch-compiled and GroqFlow are implementations of `Backend`. Each
answers what it builds on a device (`offers`); which one runs is not decided here but by the user's
flags or by measurement on the host (common/run/offers.py, common/run/trial.py).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol, Sequence, Tuple

import numpy as np

from ..builds.cache import cache_key
from ..builds.fidelity import rule_in_key
from ..builds.precision import Precision
from ..host.errors import UserError
from ..inputs.batching import Batch
from ..inputs.calibration import Calibration

QUANTIZATIONS = ("static", "dynamic")


@dataclass(frozen=True)
class BuildOptions:
    """Everything the user chooses that can change a build; part of the cache key."""
    precision: str = "fp32"  # fp32 | bf16 | fp16 | int8
    quantization: str = "static"  # int8 only
    remainder: str = "fp32"  # int8 only: the precision of what stays in float
    # int8 only: the share of a validation slice on which the INT8 model must answer as the float
    # model does; layers are kept in float until it does (None: plain INT8)
    min_agreement: Optional[float] = None
    # int8 with min_agreement (OpenVINO, ONNX Runtime): steps of quantization-aware distillation,
    # tried before the kinds search (common/backends/distillation.py); 0: not tried
    distill_steps: int = 0
    device: str = "cpu"  # cpu | cuda
    num_chips: int = 1  # GroqFlow
    compiler_flags: Optional[Tuple[str, ...]] = None  # GroqFlow; None: its defaults
    max_length: int = 128
    # backend-specific settings that override the backend's RECIPE (the variants benchmarks)
    recipe: Tuple[Tuple[str, object], ...] = ()

    @property
    def precision_of(self) -> Precision:
        """The precision it builds: a float one, or INT8 with its remainder."""
        int8 = Precision(self.precision).int8
        return Precision(self.precision, self.remainder if int8 else None)

    @property
    def int8(self) -> bool:
        return self.precision_of.int8

    @property
    def quantized(self) -> Optional[str]:
        """The INT8 mode it builds (None for a float build): what `Backend.offers` is asked."""
        return self.quantization if self.int8 else None

    @property
    def label(self) -> str:
        """As a Candidate's: fp32, bf16, fp16 or int8+<remainder>."""
        return self.precision_of.label


def build_key(backend: str, model: str, options: BuildOptions, keyed: Sequence[str],
              versions: dict[str, str], recipe: dict, calibration: Optional[Calibration] = None,
              **facts) -> str:
    """The one cache key of every backend's build: everything its files depend on, so that
    changing any of it means a rebuild. The model's identity (weights, config, tokenizer), the
    options the backend's files depend on (`keyed`: e.g. OpenVINO's float IR serves every float
    precision, so none of them), the rule of --min-agreement and the CPU its search scored on,
    where it is set, further `facts` of the build (e.g. the inputs GroqFlow compiles), the library
    versions, the backend's recipe (opset, quantizer settings, fusions) and the calibration
    samples."""
    chosen = {name: getattr(options, name) for name in keyed}
    if "min_agreement" in keyed:
        chosen.update(rule_in_key(options.min_agreement))
        if options.min_agreement is not None:  # the search scored candidates on a CPU's
            chosen["searched_on"] = calibration.searched_on()  # arithmetic: another may differ
    parts = {"backend": backend, "model": model, "options": {**chosen, **facts},
             "versions": versions, "recipe": recipe}
    if calibration is not None:
        parts["calibration"] = calibration.cache_parts()
    return cache_key(parts)


def merged_recipe(defaults: dict, options: BuildOptions) -> dict:
    """The backend's default recipe with the options' overrides; an unknown setting is a mistake."""
    unknown = {name for name, _ in options.recipe} - set(defaults)
    if unknown:
        raise ValueError(f"unknown recipe setting(s) {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(sorted(defaults))}")
    return {**defaults, **dict(options.recipe)}


@dataclass(frozen=True)
class Candidate:
    """One build a backend can make on a device: what the trial times and the user can force."""
    backend: str
    precision: str  # fp32 | bf16 | fp16 | int8
    remainder: Optional[str] = None  # int8: the precision of the layers left in float, if known
    device: str = "cpu"  # cpu | cuda | groqchip: where the build runs

    @property
    def label(self) -> str:
        """fp32, bf16, fp16, int8, or int8+<remainder>."""
        return Precision(self.precision, self.remainder).label

    @property
    def int8(self) -> bool:
        return Precision(self.precision).int8

    def __str__(self) -> str:
        """Named with its device where that is the GPU (the CPU's and GroqFlow's go without)."""
        return f"{self.backend} {self.label}" + (" on cuda" if self.device == "cuda" else "")


@dataclass(frozen=True)
class Offers:
    """A backend's one answer about a device and a quantization: the builds `auto` trials there,
    those it makes only when named with --backend (measured too slow or too costly for the
    trial), and, where it makes none, why not."""
    trialled: Tuple[Candidate, ...] = ()
    on_request: Tuple[Candidate, ...] = ()
    why_none: str = ""

    @property
    def every(self) -> Tuple[Candidate, ...]:
        return self.trialled + self.on_request

    def check(self, name: str, options: BuildOptions) -> None:
        """Refuse a build these offers lack (a direct `build` call; the flags' builds come from
        the offers), before any work."""
        labels = [Precision(c.precision, c.remainder or "fp32").label if c.int8 else c.label
                  for c in self.every]
        if options.label not in labels:
            builds = " or ".join(dict.fromkeys(c.label for c in self.every)) or \
                f"nothing ({self.why_none})"
            raise UserError(f"{name} builds {builds} on {options.device}, not {options.label}")


Predict = Callable[[Batch], np.ndarray]
# logits per batch, and seconds per batch where the backend measures them (None: it does not)
PredictMany = Callable[[Sequence[Batch]], Tuple[list, Optional[list]]]


@dataclass
class Runner:
    """A built (or reference) model: logits float32 [batch, 2] for a batch of int64 arrays."""
    name: str
    backend: str
    device: str
    precision: str
    predict: Predict
    # Every batch of a pass at once -> (logits per batch, seconds per batch): for backends that keep
    # several batches in flight (OpenVINO) or take a whole pass in one call (GroqFlow's run_abunch).
    predict_many: Optional[PredictMany] = None
    # False where one call per sentence is costly by design (GroqFlow's run() starts a process):
    # such a runner is timed in whole passes over every sentence, and has no batch-1 latency
    single_calls: bool = True
    # batches a pass keeps in flight (OpenVINO's infer requests); above 1 a batch's seconds run from
    # its launch to its result with others queued beside it, not alone
    in_flight: int = 1
    build_seconds: Optional[float] = None
    cache_hit: Optional[bool] = None
    files: dict = field(default_factory=dict)  # model file -> bytes
    facts: dict = field(default_factory=dict)  # backend-specific build facts for the report
    runtime: dict = field(default_factory=dict)  # threads, streams, providers: read back, not asked

    def __call__(self, batch: Batch) -> np.ndarray:
        return self.predict(batch)

    def run_all(self, batches: Sequence[Batch], progress: Callable[[int], None] = lambda n: None
                ) -> Tuple[list, Optional[list]]:
        """Logits of every batch, in order, and each batch's seconds (None if not measured)."""
        if self.predict_many is not None:
            outputs, seconds = self.predict_many(batches)
            progress(len(batches))
            return outputs, seconds
        outputs, seconds = [], []
        for batch in batches:
            start = time.perf_counter()
            outputs.append(self.predict(batch))
            seconds.append(time.perf_counter() - start)
            progress(1)
        return outputs, seconds


class Backend(Protocol):
    """A backend module: `common/backends/<NAME>.py` defines every one of these names
    (common/backends/README.md: how to add one)."""
    NAME: str
    STATIC_SHAPE: bool  # batch 1 padded to max_length (GroqFlow compiles one shape)
    QUANTIZATIONS: Tuple[str, ...]  # INT8 modes it builds
    ACCURACY_CONTROL: bool  # whether it builds --min-agreement's INT8 (common/builds/fidelity.py)

    def available(self, building: bool = False) -> Tuple[bool, str]:
        """(True, "") where it can run here (`building`: build, for --build), else (False, why
        not)."""

    def offers(self, device: str, quantization: Optional[str]) -> Offers:
        """What it builds on `device` (cpu or cuda): float builds for quantization None, else
        INT8 ones (one per float remainder it can compile); why none, where it builds none."""

    def library_versions(self) -> dict:
        """Versions that go into the cache key and the results JSON."""

    def build_recipe(self, options: BuildOptions) -> dict:
        """What a build with these options does beyond them (in its cache key and the trial's)."""

    def build(self, checkpoint, example: Batch, *, options: BuildOptions, cache,
              calibration: Optional[Calibration] = None) -> Runner:
        """Build (or find in the cache) and return the Runner."""
