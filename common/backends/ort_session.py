"""An ONNX Runtime session on the CPUs the runners get, and what it settled on: the one place
both the backend and its INT8 search (ort_quantize.py) open a model, so the search scores the model
in the session the run uses."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..host.cpu import usable_cpus
from ..host.errors import UserError
from ..inputs.batching import Batch


def _threads() -> int | None:
    """This process's threads, where Linux lists them."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


def make_session(path: Path, device: str = "cpu", optimize: bool = True
                 ) -> tuple[Callable[[Batch], np.ndarray], dict]:
    """An ONNX Runtime session on the CPUs this process may use, as a predict function, and its
    providers and threads as the session reports them; `optimize=False` runs the graph exactly as
    stored (the benchmark's unoptimised baseline). A CUDA session that ONNX Runtime quietly put on
    the CPU is refused, not labelled cuda."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = usable_cpus()
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    so.log_severity_level = 3
    providers = (["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda"
                 else ["CPUExecutionProvider"])
    before = _threads()
    session = ort.InferenceSession(str(path), so, providers=providers)
    started = _threads() - before if before is not None else None
    if device == "cuda" and "CUDAExecutionProvider" not in session.get_providers():
        raise UserError("--device cuda: ONNX Runtime could not start its CUDA provider (a CUDA or "
                        f"cuDNN library is missing?) and would run on {session.get_providers()[0]}")
    names = [i.name for i in session.get_inputs()]
    # ONNX Runtime reports no thread count of its own (its options echo the request): count the
    # threads its intra-op pool started, the calling thread being one of the pool
    runtime = {"providers": session.get_providers(),
               "intra_op_threads": "unknown" if started is None else started + 1,
               "intra_op_threads_from": "threads started by the session (/proc/self/task) + the "
                                        "calling thread", "intra_op_threads_asked": so.intra_op_num_threads}

    def predict(batch: Batch) -> np.ndarray:
        return session.run(["logits"], {name: batch[name] for name in names})[0]

    return predict, runtime
