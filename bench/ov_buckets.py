"""Does padding batch widths up to buckets pay on OpenVINO? One run, on a real checkpoint.

OpenVINO compiles kernels for each new input shape on first sight, so a single pass over SST-2's
length-sorted batches (27 widths at batch 32) pays that cost in full; padding widths up to a
multiple of a bucket leaves fewer shapes but computes more padding. Measured for the float (bf16
where the CPU has it) and the INT8 build: the first pass, on a freshly compiled model, and the
median of later passes.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.harness import load, model_arguments
from bench.report import buckets_table
from common.backends import openvino as ov_backend
from common.backends.base import BuildOptions
from common.inputs.batching import Batch, Batches
from common.builds.cache import BuildCache
from common.run.evaluate import measure
from common.builds.metrics import spread


def padded(batch: Batch, bucket: int) -> Batch:
    """The batch with its width rounded up to a multiple of `bucket` (pad id 0, mask 0)."""
    width = batch["input_ids"].shape[1]
    target = -(-width // bucket) * bucket
    return {name: np.pad(array, ((0, 0), (0, target - width))) for name, array in batch.items()}


def arguments(p: argparse.ArgumentParser) -> None:
    model_arguments(p)
    p.add_argument("--buckets", default="1,8,16")
    p.add_argument("--rounds", type=int, default=3)


def run(args: argparse.Namespace) -> dict:
    inputs = load(args)
    checkpoint, examples, batches = inputs.checkpoint, inputs.examples, inputs.batches
    calibration = inputs.calibration
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = BuildCache(Path(tmp))
        floats = [c.precision for c in ov_backend.offers("cpu", None).trialled]
        for precision in ("bf16" if "bf16" in floats else "fp32", "int8"):
            for bucket in map(int, args.buckets.split(",")):
                # each build() compiles afresh (the IR comes from the cache): a first pass that
                # meets every width for the first time
                built = ov_backend.build(checkpoint, batches.inputs[0], cache=cache,
                                         options=BuildOptions(precision=precision),
                                         calibration=calibration if precision == "int8" else None)
                inputs = Batches(inputs=[padded(batch, bucket) for batch in batches.inputs],
                                 rows=batches.rows, count=batches.count)
                start = time.perf_counter()
                built.run_all(inputs.inputs)
                first = time.perf_counter() - start
                (later,) = measure([(built, inputs, None)], len(examples.sentences), args.rounds)
                rows.append({"build": precision, "bucket": bucket,
                             "widths": len({b["input_ids"].shape[1] for b in inputs.inputs}),
                             "first_pass": len(examples.sentences) / first,
                             "later_passes": spread(later.throughputs())["median"]})
    print(buckets_table(rows))
    return {"model": args.model, "rounds": args.rounds, "rows": rows}
