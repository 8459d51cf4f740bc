"""Does padding batch widths up to buckets pay on OpenVINO? One run, on a real checkpoint.

OpenVINO compiles kernels for each new input shape on first sight, so a single pass over SST-2's
length-sorted batches (27 widths at batch 32) pays that cost in full; padding widths up to a
multiple of a bucket leaves fewer shapes but computes more padding. Measured for the float (bf16
where the CPU has it) and the INT8 build: the first pass, on a freshly compiled model, and the
median of later passes.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from common.paths import SHARED  # noqa: E402
from bench.report import buckets_table  # noqa: E402
from common.backends import openvino as ov_backend  # noqa: E402
from common.backends.base import BuildOptions  # noqa: E402
from common.batching import Batch, Batches, make_batches, tokenize  # noqa: E402
from common.cache import BuildCache  # noqa: E402
from common.calibration import draw_calibration  # noqa: E402
from common.checkpoints import load_checkpoint  # noqa: E402
from common.cpu import cpu_info, cpu_summary  # noqa: E402
from common.evaluate import measure  # noqa: E402
from common.files import write_atomic  # noqa: E402
from common.provenance import started  # noqa: E402
from common.sst2 import load_examples  # noqa: E402



def padded(batch: Batch, bucket: int) -> Batch:
    """The batch with its width rounded up to a multiple of `bucket` (pad id 0, mask 0)."""
    width = batch["input_ids"].shape[1]
    target = -(-width // bucket) * bucket
    return {name: np.pad(array, ((0, 0), (0, target - width))) for name, array in batch.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default=str(SHARED / "models/minilm-l6-sst2"))
    p.add_argument("--dataset", default=str(SHARED / "data/sst2/validation.tsv"))
    p.add_argument("--calibration-dataset", default=str(SHARED / "data/sst2/train.tsv"))
    p.add_argument("--buckets", default="1,8,16")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)
    provenance = started([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    checkpoint = load_checkpoint(args.model)
    examples = load_examples(args.dataset)
    batches = make_batches(tokenize(checkpoint.tokenizer, examples.sentences, 128), 32)
    calibration = draw_calibration(args.calibration_dataset, None, 0, 1000, checkpoint.tokenizer,
                                   128, examples.sentences)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = BuildCache(Path(tmp))
        floats = [c.precision for c in ov_backend.candidates("cpu", None)]
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
                             "later_passes": statistics.median(later.throughputs())})
    print(cpu_summary())
    print(buckets_table(rows))
    if args.json:
        write_atomic(Path(args.json), json.dumps({**provenance, "model": args.model, "cpu": cpu_info(),
                                                  "rounds": args.rounds, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
