"""PyTorch-compiled backend: `torch.compile` (inductor) of the checkpoint as PyTorch loaded it, on a
CUDA GPU (fp16 and bf16 in `auto`'s trial, fp32 on request) or, on request, the CPU (fp32, bf16).

The build every PyTorch user can make, with nothing but torch installed. Its shapes: the run's
batches are length-sorted, and each is padded to the next multiple of the recipe's `length_bucket`
(16) tokens, so a few shapes cover a data set; the model is compiled once with symbolic batch and
length (one graph for batches, one for single sentences: torch specialises size 1), at build time,
so `build s` is the compile and no timed pass compiles. On CUDA, CUDA graphs (inductor's
`reduce-overhead`) replay each shape without kernel-launch overhead; a shape is warmed and
captured the first time it comes (its seconds are in `runtime`), so timed passes replay. Inductor's own caches live under the build
cache, in a folder keyed like every build, so a later run compiles from them (faster, not free:
`build s` says what it took, `(cached)` that they were found).
"""
from __future__ import annotations

import copy
import math
import os
import shutil
import time
from pathlib import Path
from typing import Optional

import numpy as np

from ..builds.cache import BuildCache
from ..builds.precision import Precision
from ..host import gpu
from ..host.cpu import cpu_identity
from ..host.errors import BuildFailed, NotBuilt, root_cause
from ..host.progress import progress_bar
from ..host.provenance import package_versions
from ..inputs.batching import Batch
from ..inputs.calibration import Calibration
from ..inputs.checkpoints import Checkpoint
from .base import BuildOptions, Candidate, Offers, Runner, build_key, merged_recipe
from .export import LogitsByName, architecture, model_input_names

NAME = "torch_compile"
STATIC_SHAPE = False
QUANTIZATIONS: tuple = ()  # INT8 is OpenVINO's and ONNX Runtime's
ACCURACY_CONTROL = False
RECIPE = {"recipe_version": 1}
# settings a benchmark may override (BuildOptions.recipe); in the cache key
FLOAT_RECIPE = {"compiler": "inductor",  # torch.compile's backend
                "length_bucket": 16,  # batches padded to a multiple of this many tokens
                "dynamic": True,  # False: one compile per shape, as it first comes
                "cuda_graphs": True}  # on CUDA: inductor's reduce-overhead mode
# The options its compiled code depends on: all but INT8's and GroqFlow's
KEYED = ("precision", "device", "max_length")
CACHE_FOLDER = "torch-inductor"
# Compiled graphs dynamo keeps for one function before it runs it uncompiled (default 8): every
# build of a run compiles the same forward (LogitsByName's), and static shapes one graph per shape.
RECOMPILE_LIMIT = 64


def available(building: bool = False) -> tuple[bool, str]:
    import torch._dynamo

    if not torch._dynamo.is_dynamo_supported():
        return False, f"torch.compile is not supported by torch {torch.__version__} here"
    return True, ""


def _floats(device: str) -> tuple[str, ...]:
    """fp16 and bf16 on a GPU with bf16 arithmetic of its own (compute capability 8.0 on; not
    emulated), else fp16."""
    if device == "cuda" and not gpu.native_bf16():
        return ("fp16",)
    return ("fp16", "bf16")


def offers(device: str, quantization: Optional[str]) -> Offers:
    """On CUDA, fp16 and bf16 in the trial, fp32 on request (slower there). On the CPU, fp32 and
    bf16 on request only: measured slower than OpenVINO after tens of seconds of compiling
    (docs/trial.md)."""
    if quantization is not None:
        return Offers(why_none="INT8 is OpenVINO's and ONNX Runtime's")
    if device == "cuda":
        return Offers(tuple(Candidate(NAME, p, device=device) for p in _floats(device)),
                      (Candidate(NAME, "fp32", device=device),))
    return Offers(on_request=(Candidate(NAME, "fp32"), Candidate(NAME, "bf16")))


def library_versions() -> dict[str, str]:
    return package_versions("torch", "transformers", "triton")


def build_recipe(options: BuildOptions) -> dict:
    """What the build does beyond the user's options, with the options' overrides."""
    return {**RECIPE, **merged_recipe(FLOAT_RECIPE, options)}


def compiled_for(device: str) -> dict:
    """What inductor's compiled code is made for: the GPU (its name and compute capability), or
    the CPU (its model and vector instruction sets, which its C++ kernels are compiled for)."""
    return {"gpu": gpu.identity()} if device == "cuda" else {"cpu": cpu_identity()}


def inductor_cache(cache: BuildCache, key: str) -> tuple[Path, bool]:
    """The folder inductor keeps this build's compiled code in, and whether an earlier run (or
    the --build it was copied from) left it there. The rebuild policy applies to it as to every
    build, but under --execute: compiling is how torch loads a compiled model (from that folder
    where it can), and it needs nothing --build made, so where no code was copied for this
    host's device, it compiles here (the runner says so: `compiled_here`)."""
    folder = cache.root / CACHE_FOLDER / key[:16]
    found = folder.is_dir() and any(folder.iterdir())
    if cache.rebuild == "never" and not found and not cache.executing:
        raise NotBuilt(f"{cache.never_flag}: no cached torch.compile build '{folder.name}' in "
                        f"'{cache.root}'")
    if cache.rebuild == "always" and folder.exists():
        shutil.rmtree(folder)
        found = False
    return folder, found


def bucketed(batch: Batch, bucket: int, limit: int, pad_id: int) -> Batch:
    """The batch padded to the next multiple of `bucket` tokens (at most `limit`), the padding
    masked out as the batch's own is."""
    width = batch["input_ids"].shape[1]
    extra = min(max(limit, width), math.ceil(width / bucket) * bucket) - width
    if extra == 0:
        return batch
    return {name: np.pad(array, ((0, 0), (0, extra)),
                         constant_values=pad_id if name == "input_ids" else 0)
            for name, array in batch.items()}


COUNTED = {"graphs_compiled": ("stats", "unique_graphs"),
           "cuda_graph_skips": ("inductor", "cudagraph_skips"),
           # inductor's compiled graphs found in its cache folder (a later run, or a copy of
           # another machine's) and compiled anew
           "fx_graph_cache_hits": ("inductor", "fxgraph_cache_hit"),
           "fx_graph_cache_misses": ("inductor", "fxgraph_cache_miss")}


def _compile_counts() -> tuple[int, ...]:
    """What torch counts for the whole process so far, of COUNTED."""
    from torch._dynamo.utils import counters

    return tuple(int(counters[group][name]) for group, name in COUNTED.values())


def _compile_into(folder: Path) -> None:
    """Inductor's and Triton's caches in this build's folder, for what it compiles next (each
    build and each new shape points them there again: another build may have compiled between;
    left unset, inductor sets Triton's once, to the first build's folder)."""
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
    os.environ["TRITON_CACHE_DIR"] = str(folder / "triton")


class FloatLogits(LogitsByName):
    """The logits as float32, cast inside the compiled function (no kernel of its own after it)."""

    def forward(self, *inputs):
        return super().forward(*inputs).float()


class StagedInputs:
    """Each batch's inputs padded to its length bucket and packed into one host tensor (pinned
    on a GPU) the first time it comes, so a timed call does one copy to the device and no host
    work. Keyed by the batch's own arrays (held, so their ids stay theirs)."""

    LIMIT = 4096  # batches kept; a run has far fewer (its batches, timed subset and singles)

    def __init__(self, names: tuple, device, bucket: int, limit: int, pad_id: int):
        self.names, self.device, self.bucket, self.limit, self.pad_id = \
            names, device, bucket, limit, pad_id
        self.staged: dict = {}

    def host(self, batch: Batch):
        """The batch's packed host tensor [inputs, batch, bucketed length]."""
        import torch

        key = id(batch["input_ids"])
        held = self.staged.get(key)
        if held is None or held[0] is not batch["input_ids"]:
            padded = bucketed(batch, self.bucket, self.limit, self.pad_id)
            packed = torch.from_numpy(np.stack([padded[name] for name in self.names]))
            held = (batch["input_ids"], packed.pin_memory() if self.device.type == "cuda"
                    else packed)
            if len(self.staged) >= self.LIMIT:
                self.staged.pop(next(iter(self.staged)))
            self.staged[key] = held
        return held[1]

    def on_device(self, host) -> tuple:
        """One copy to the device; the inputs as views of it."""
        return host.to(self.device, non_blocking=True).unbind(0)


class CompiledModel:
    """The compiled model as a predict function: each batch staged once (bucketed, packed), a new
    shape warmed and captured (CUDA graphs) before its first answer, and in `runtime` what its own
    calls compiled and the shapes they met."""

    def __init__(self, model, recipe: dict, device, max_length: int, pad_id: int, folder: Path):
        import torch
        import torch.fx.experimental._config as shape_config

        self.names = model_input_names(model)
        self.graphs = recipe["cuda_graphs"] and device.type == "cuda"
        mode = {"mode": "reduce-overhead"} if self.graphs and recipe["compiler"] == "inductor" \
            else {}
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit,
                                                   RECOMPILE_LIMIT)
        # no duck sizing: a batch whose size equals its padded length would tie the two symbols,
        # and the first batch where they differ would compile again
        shape_config.use_duck_shape = False
        self.compiled = torch.compile(FloatLogits(model, self.names),
                                      backend=recipe["compiler"], dynamic=recipe["dynamic"], **mode)
        self.inputs = StagedInputs(self.names, device, recipe["length_bucket"], max_length, pad_id)
        self.folder = folder
        self.seen: set = set()
        weights = next(model.parameters())  # where and in what it computes, read back
        self.runtime: dict = {"torch_device": str(weights.device),
                              "weights_dtype": str(weights.dtype).replace("torch.", ""),
                              "cuda_graphs": self.graphs,
                              "compiler": recipe["compiler"], "dynamic_shapes": recipe["dynamic"],
                              "shapes": [], "shape_warmup_seconds": 0.0,
                              **dict.fromkeys(COUNTED, 0)}

    def _call(self, tensors):
        import torch

        if self.graphs:
            torch.compiler.cudagraph_mark_step_begin()
        return self.compiled(*tensors)

    def _warm(self, host, tensors) -> None:
        """A shape's first call: compiled (or not) and, with CUDA graphs, captured, its seconds
        and its compiles counted apart from every answer."""
        warm = time.perf_counter()
        counted = _compile_counts()  # its own calls: other builds compile between them
        _compile_into(self.folder)
        for _ in range(2 if self.graphs else 1):
            self._call(tensors)
        for name, before, now in zip(COUNTED, counted, _compile_counts()):
            self.runtime[name] += now - before
        self.seen.add(tuple(host.shape))
        self.runtime["shapes"].append(list(host.shape[1:]))
        self.runtime["shape_warmup_seconds"] += time.perf_counter() - warm

    def __call__(self, batch: Batch) -> np.ndarray:
        import torch

        host = self.inputs.host(batch)
        with torch.inference_mode():
            tensors = self.inputs.on_device(host)
            if tuple(host.shape) not in self.seen:
                self._warm(host, tensors)
            logits = self._call(tensors)
            return logits.cpu().numpy()  # waits for the device


def build(checkpoint: Checkpoint, example: Batch, *, options: BuildOptions, cache: BuildCache,
          calibration: Optional[Calibration] = None) -> Runner:
    offers(options.device, None).check(NAME, options)
    recipe = build_recipe(options)
    # compiled code is its device's: another GPU model, compute capability or CPU compiles again
    key = build_key(NAME, checkpoint.identity, options, KEYED, library_versions(), recipe,
                    **compiled_for(options.device))
    folder, found = inductor_cache(cache, key)
    _compile_into(folder)
    device = gpu.torch_device(options.device)
    start = time.perf_counter()
    model = copy.deepcopy(checkpoint.model).to(
        device=device, dtype=Precision(options.precision).torch_dtype()).eval()
    pad_id = getattr(checkpoint.tokenizer, "pad_token_id", None)
    predict = CompiledModel(model, recipe, device, options.max_length,
                            0 if pad_id is None else pad_id, folder)
    with progress_bar("build torch_compile", 2, "shape") as bar:
        for shape in (example, {name: array[:1] for name, array in example.items()}):
            try:
                predict(shape)
            except Exception as exc:  # inductor, Triton and the C++ compiler fail in many ways
                raise BuildFailed(f"torch.compile could not build "
                                  f"{architecture(checkpoint.model)} for {options.device} "
                                  f"{options.precision} ({root_cause(exc)})") from None
            bar.update()
    seconds = time.perf_counter() - start
    precision = Precision.of_torch_dtype(next(model.parameters()).dtype).label  # read back
    facts = {"compile_seconds": seconds, "build_folder": str(folder),
             "inductor_cache_found": found,
             **({"compiled_here": True} if cache.executing and not found else {}),
             "weights_bytes": sum(p.numel() * p.element_size() for p in model.parameters())}
    return Runner(name=f"{NAME}-{precision}", backend=NAME, device=options.device,
                  precision=precision, predict=predict, build_seconds=seconds, cache_hit=found,
                  facts=facts, runtime=predict.runtime)
