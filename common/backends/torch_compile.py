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

from .. import gpu
from ..batching import Batch
from ..cache import BuildCache
from ..checkpoints import Checkpoint
from ..errors import UserError, first_line
from ..export import LogitsByName, architecture, model_input_names
from ..progress import progress_bar
from ..provenance import package_versions
from .base import BuildOptions, Calibration, Candidate, Runner, build_key, merged_recipe

NAME = "torch_compile"
STATIC_SHAPE = False
QUANTIZATIONS: tuple = ()  # INT8 is OpenVINO's and ONNX Runtime's
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


def available() -> tuple[bool, str]:
    import torch._dynamo

    if not torch._dynamo.is_dynamo_supported():
        return False, f"torch.compile is not supported by torch {torch.__version__} here"
    return True, ""


def _floats(device: str) -> tuple[str, ...]:
    """fp16 and bf16 on a GPU that has bf16 arithmetic (compute capability 8.0 on), else fp16."""
    import torch

    if gpu.torch_device(device).type == "cuda" and not torch.cuda.is_bf16_supported():
        return ("fp16",)
    return ("fp16", "bf16")


def candidates(device: str, quantization: Optional[str]) -> tuple[Candidate, ...]:
    """On CUDA, fp16 and bf16 (fp32 is slower there and on request). None on the CPU: measured
    slower than OpenVINO after tens of seconds of compiling (docs/trial.md), so built only on
    request (`on_request`)."""
    if device != "cuda" or quantization is not None:
        return ()
    return tuple(Candidate(NAME, p, device=device) for p in _floats(device))


def on_request(device: str, quantization: Optional[str]) -> tuple[Candidate, ...]:
    """What --backend torch_compile builds beyond the trial's: fp32 on CUDA; fp32 and bf16 on the
    CPU."""
    if quantization is not None:
        return ()
    return (Candidate(NAME, "fp32", device=device),) if device == "cuda" else \
        (Candidate(NAME, "fp32"), Candidate(NAME, "bf16"))


def library_versions() -> dict[str, str]:
    return package_versions("torch", "transformers", "triton")


def build_recipe(options: BuildOptions) -> dict:
    """What the build does beyond the user's options, with the options' overrides."""
    return {**RECIPE, **merged_recipe(FLOAT_RECIPE, options)}


def check_options(options: BuildOptions) -> None:
    """Reject what this backend does not build, before any work."""
    offered = [c.precision for c in candidates(options.device, None) +
               on_request(options.device, None)]
    if options.precision not in offered:
        raise UserError(f"torch_compile builds {' or '.join(offered)} on {options.device}, not "
                        f"{options.precision}")


def inductor_cache(cache: BuildCache, key: str) -> tuple[Path, bool]:
    """The folder inductor keeps this build's compiled code in, and whether an earlier run left
    it there; the rebuild policy applies to it as to every build."""
    folder = cache.root / CACHE_FOLDER / key[:16]
    found = folder.is_dir() and any(folder.iterdir())
    if cache.rebuild == "never" and not found:
        raise UserError(f"--rebuild never: no cached torch.compile build '{folder.name}' in "
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


def _compile_counts() -> tuple[int, int]:
    """Graphs dynamo compiled and graphs inductor left without CUDA graphs, so far, as torch
    counts them for the whole process."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"]), int(counters["inductor"]["cudagraph_skips"])


class CompiledModel:
    """The compiled model as a predict function: each batch padded to its length bucket, a new
    shape warmed and captured (CUDA graphs) before its first answer, and in `runtime` what its own
    calls compiled, the shapes it met and the GPU memory they saw."""

    def __init__(self, model, recipe: dict, device, max_length: int, pad_id: int):
        import torch

        self.names = model_input_names(model)
        self.graphs = recipe["cuda_graphs"] and device.type == "cuda"
        mode = {"mode": "reduce-overhead"} if self.graphs and recipe["compiler"] == "inductor" \
            else {}
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit,
                                                   RECOMPILE_LIMIT)
        self.compiled = torch.compile(LogitsByName(model, self.names),
                                      backend=recipe["compiler"], dynamic=recipe["dynamic"], **mode)
        self.device, self.bucket, self.max_length, self.pad_id = \
            device, recipe["length_bucket"], max_length, pad_id
        self.memory = gpu.PeakMemory(device)
        self.seen: set = set()
        where = str(next(model.parameters()).device)  # read back from the weights
        self.runtime: dict = {"torch_device": where, "cuda_graphs": self.graphs,
                              "compiler": recipe["compiler"], "dynamic_shapes": recipe["dynamic"],
                              "shapes": [], "shape_warmup_seconds": 0.0, "graphs_compiled": 0,
                              "cuda_graph_skips": 0, "gpu_peak_allocated_bytes": None}

    def _call(self, tensors):
        import torch

        if self.graphs:
            torch.compiler.cudagraph_mark_step_begin()
        return self.compiled(*tensors)

    def __call__(self, batch: Batch) -> np.ndarray:
        import torch

        padded = bucketed(batch, self.bucket, self.max_length, self.pad_id)
        shape = padded["input_ids"].shape
        counted = _compile_counts()  # its own calls: other builds compile between them
        with torch.inference_mode(), self.memory:
            tensors = [torch.from_numpy(padded[name]).to(self.device) for name in self.names]
            if shape not in self.seen:  # compiled (or not) and, with CUDA graphs, captured
                warm = time.perf_counter()
                for _ in range(2 if self.graphs else 0):
                    self._call(tensors)
                self.seen.add(shape)
                self.runtime["shapes"].append(list(shape))
                self.runtime["shape_warmup_seconds"] += time.perf_counter() - warm
            logits = self._call(tensors)
            self.runtime["logits_dtype"] = str(logits.dtype).replace("torch.", "")
            result = logits.float().cpu().numpy()  # waits for the device
        for name, before, now in zip(("graphs_compiled", "cuda_graph_skips"), counted,
                                     _compile_counts()):
            self.runtime[name] += now - before
        self.runtime["gpu_peak_allocated_bytes"] = self.memory.peak
        return result


def build(checkpoint: Checkpoint, example: Batch, *, options: BuildOptions, cache: BuildCache,
          calibration: Optional[Calibration] = None) -> Runner:
    import torch

    check_options(options)
    recipe = build_recipe(options)
    key = build_key(NAME, checkpoint.identity, options, KEYED, library_versions(), recipe)
    folder, found = inductor_cache(cache, key)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)  # read by inductor as it compiles
    device = gpu.torch_device(options.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[options.precision]
    start = time.perf_counter()
    model = copy.deepcopy(checkpoint.model).to(device=device, dtype=dtype).eval()
    pad_id = getattr(checkpoint.tokenizer, "pad_token_id", None)
    predict = CompiledModel(model, recipe, device, options.max_length,
                            0 if pad_id is None else pad_id)
    with progress_bar("build torch_compile", 2, "shape") as bar:
        for shape in (example, {name: array[:1] for name, array in example.items()}):
            try:
                predict(shape)
            except Exception as exc:  # inductor, Triton and the C++ compiler fail in many ways
                raise UserError(f"torch.compile could not build {architecture(checkpoint.model)} "
                                f"for {options.device} {options.precision} "
                                f"({first_line(exc)})") from None
            bar.update()
    seconds = time.perf_counter() - start
    precision = {torch.float32: "fp32", torch.bfloat16: "bf16",
                 torch.float16: "fp16"}[next(model.parameters()).dtype]  # read back
    facts = {"compile_seconds": seconds, "inductor_cache": str(folder),
             "inductor_cache_found": found,
             "weights_bytes": sum(p.numel() * p.element_size() for p in model.parameters())}
    return Runner(name=f"{NAME}-{precision}", backend=NAME, device=options.device,
                  precision=precision, predict=predict, build_seconds=seconds, cache_hit=found,
                  facts=facts, runtime=predict.runtime)
