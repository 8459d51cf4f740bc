"""OpenVINO backend: the CPU's own matrix engines (AMX, AVX-512 BF16/VNNI), all cores busy.

The shared ONNX export (export.cached_export) is converted to OpenVINO's IR and cached; INT8 is
NNCF's post-training quantization of that IR (ov_quantize.py). At run time the IR is compiled for
the CPU at a float precision (for INT8: the precision of what stays in float) with the THROUGHPUT
hint, and a pass keeps as many batches in flight as OpenVINO advises (one infer request per stream),
results back in dataset order. Which precision is fast on a CPU is measured, not read from its
capability list (common/run/trial.py): the list only says which ones OpenVINO can compile here.
"""
from __future__ import annotations

import importlib
import io
import time
import warnings
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from ..builds.cache import BuildCache
from ..host.cpu import usable_cpus
from ..host.progress import progress_bar
from ..host.provenance import package_versions
from ..host.quiet import telemetry_off
from ..inputs.batching import Batch
from ..inputs.calibration import Calibration
from ..inputs.checkpoints import Checkpoint
from . import import_failure
from .base import BuildOptions, Candidate, Offers, Runner, build_key, merged_recipe
from .export import EXPORT_FILE, OPSET, cached_export

NAME = "openvino"
STATIC_SHAPE = False
QUANTIZATIONS = ("static",)
ACCURACY_CONTROL = True  # --min-agreement (common/builds/fidelity.py)
IR_FILE = "model.xml"
RECIPE = {"source": "onnx-export", "opset": OPSET, "ir": "fp32 weights (compress_to_fp16=False)",
          "recipe_version": 1}
# OpenVINO's names for the precisions it reports and takes as INFERENCE_PRECISION_HINT
OV_PRECISION = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
CAPABILITY = {"bf16": "BF16", "fp16": "FP16"}


def _openvino():
    """The openvino module, telemetry off (for NNCF too), with OpenVINO 2025's deprecated
    `openvino.runtime` loaded quietly: a lazy module that, when something first touches it (torch's
    operator registration walks sys.modules), turns DeprecationWarnings on for everyone and prints
    one."""
    telemetry_off()
    import openvino

    with warnings.catch_warnings(record=True):
        try:
            importlib.import_module("openvino.runtime")
        except ImportError:  # removed in OpenVINO 2026
            pass
    return openvino


def available(building: bool = False) -> tuple[bool, str]:
    try:
        _openvino()
    except ImportError as exc:
        return False, import_failure(exc, "openvino")
    return True, ""


def _core():
    return _openvino().Core()


def offers(device: str, quantization: Optional[str]) -> Offers:
    """fp32, and bf16 / fp16 where OpenVINO lists them among this CPU's optimization capabilities
    (for INT8: each of them as the float remainder); nothing off the CPU."""
    if device != "cpu":
        return Offers(why_none="OpenVINO builds for the CPU here")
    if quantization not in (None,) + QUANTIZATIONS:
        return Offers(why_none=f"OpenVINO builds {' or '.join(QUANTIZATIONS)} INT8")
    listed = set(_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    floats = ["fp32"] + [p for p in ("bf16", "fp16") if CAPABILITY[p] in listed]
    if quantization is None:
        return Offers(tuple(Candidate(NAME, p) for p in floats))
    return Offers(tuple(Candidate(NAME, "int8", remainder=p) for p in floats))


def library_versions() -> dict[str, str]:
    return package_versions("torch", "transformers", "onnx", "openvino", "nncf")


def build_recipe(options: BuildOptions) -> dict:
    """What the build does beyond the user's options (for INT8, NNCF's settings), with the
    options' overrides."""
    if not options.int8:
        return {**RECIPE, **merged_recipe({}, options)}
    from .ov_quantize import INT8_RECIPE

    recipe = {**RECIPE, "int8": merged_recipe(INT8_RECIPE, options)}
    if options.min_agreement is not None and options.distill_steps:
        from . import distillation

        recipe["distillation"] = distillation.recipe(options.distill_steps, recipe["int8"])
    return recipe


def build(checkpoint: Checkpoint, example: Batch, *, options: BuildOptions, cache: BuildCache,
          calibration: Optional[Calibration] = None) -> Runner:
    offers(options.device, options.quantized).check(NAME, options)
    int8 = options.int8
    recipe = build_recipe(options)
    ir = "int8" if int8 else "float"  # fp32/bf16/fp16 share one IR: precision is chosen at compile
    searched = {"searched_at": options.remainder} if int8 and options.min_agreement is not None \
        else {}  # --min-agreement searches the model as it runs: at its remainder
    key = build_key(NAME, checkpoint.identity, options, ("min_agreement",) if int8 else (),
                    library_versions(), recipe, calibration if int8 else None, ir=ir, **searched)
    export = cached_export(checkpoint, example, cache)
    distilled = (lambda: distilled_ir(checkpoint, example, calibration, recipe, cache)) \
        if int8 and "distillation" in recipe else None
    cached = cache.get_or_build(
        f"ov-{ir}", key,
        lambda folder: _build(folder, export.folder / EXPORT_FILE, recipe,
                              calibration if int8 else None, options.min_agreement,
                              options.remainder, distilled))
    float_precision = options.precision_of.floating  # INT8's remainder, or the float precision
    compiled = compile_ir(cached.folder / IR_FILE, float_precision)
    ran = inference_precision(compiled)
    label = f"int8+{ran}" if int8 else ran
    runtime = {"passes": runtime_settings(compiled)}
    requests = int(runtime["passes"]["infer_requests"])
    facts = {**cached.state["facts"], "inference_precision": ran, "infer_requests": requests}

    def compile_for_latency():
        single = compile_ir(cached.folder / IR_FILE, float_precision, "LATENCY")
        runtime["single_calls"] = runtime_settings(single)
        return single

    predict_many = pass_predictor(compiled, requests)
    predict = single_predictor(compile_for_latency)
    return Runner(name=f"openvino-{label}", backend=NAME, device="cpu", precision=label,
                  predict=predict, predict_many=predict_many, in_flight=requests,
                  build_seconds=export.seconds + cached.seconds, cache_hit=cached.hit,
                  files=cached.file_sizes, facts=facts, runtime=runtime)


def _build(folder: Path, exported: Path, recipe: dict, calibration: Optional[Calibration],
           min_agreement: Optional[float] = None, remainder: str = "fp32",
           distilled: Optional[Callable[[], tuple[object, dict]]] = None) -> dict:
    ov = _openvino()

    stages = ["convert"] + (["quantise"] if calibration is not None else [])
    facts: dict = {}
    with progress_bar("build openvino", len(stages), "stage") as bar:
        bar.set_postfix_str("convert")
        # as bytes, not a path: given a path, OpenVINO 2025.0 first tries it as a PyTorch archive
        # (torch.export.load, torch.jit.load) and logs pages of errors before reading the ONNX
        ir = ov.convert_model(io.BytesIO(exported.read_bytes()))
        bar.update()
        if calibration is not None:
            from .ov_quantize import quantize_int8

            bar.set_postfix_str("quantise")
            ov.save_model(ir, str(folder / "fp32.xml"), compress_to_fp16=False)
            facts["fp32_bytes"] = sum(p.stat().st_size for p in folder.glob("fp32.*"))
            for path in folder.glob("fp32.*"):
                path.unlink()
            ir, control = quantize_int8(ir, calibration, recipe["int8"], compile_ir,
                                        min_agreement, remainder, distilled)
            if control:
                facts["accuracy_control"] = control
            bar.update()
    ov.save_model(ir, str(folder / IR_FILE), compress_to_fp16=False)
    if calibration is not None:
        facts["int8_bytes"] = sum(p.stat().st_size for p in folder.glob("model.*"))
    return facts


def distilled_ir(checkpoint: Checkpoint, example: Batch, calibration: Calibration, recipe: dict,
                 cache: BuildCache) -> tuple[object, dict]:
    """The distilled INT8 model (common/backends/distillation.py) as an IR, and the distillation's
    record."""
    from . import distillation

    int8 = recipe["int8"]
    if int8["float_kinds"] or int8["ignored_patterns"] or int8["float_attention"]:
        raise ValueError("distillation quantizes every layer: a recipe that keeps layers in "
                         "float by the IR's names cannot be distilled")

    def save(student, names: tuple[str, ...], folder: Path) -> None:
        import torch

        ov = _openvino()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            ir = ov.convert_model(student, example_input=tuple(
                torch.from_numpy(example[name]) for name in names))
        for port, name in zip(ir.inputs, names):
            port.get_tensor().set_names({name})
        ov.save_model(ir, str(folder / IR_FILE), compress_to_fp16=False)

    folder, record = distillation.cached_student(checkpoint, calibration, recipe, cache, NAME,
                                                 library_versions(), save)
    return _core().read_model(str(folder / IR_FILE)), record


def compile_ir(model, precision: str, hint: str = "THROUGHPUT"):
    """An IR (a path or a model in memory) compiled for the CPU at `precision`: THROUGHPUT
    (streams: batches in flight on all cores) for passes, LATENCY (one request on all cores) for
    single calls."""
    return _core().compile_model(str(model) if isinstance(model, Path) else model, "CPU", {
        "PERFORMANCE_HINT": hint, "INFERENCE_PRECISION_HINT": OV_PRECISION[precision],
        "INFERENCE_NUM_THREADS": usable_cpus()})


def runtime_settings(compiled) -> dict:
    """What OpenVINO settled on for a compiled model, read back from it."""
    def read(name: str):
        value = compiled.get_property(name)
        return value if isinstance(value, (int, str)) else str(value)

    return {"performance_hint": str(read("PERFORMANCE_HINT")), "streams": read("NUM_STREAMS"),
            "threads": read("INFERENCE_NUM_THREADS"),
            "infer_requests": read("OPTIMAL_NUMBER_OF_INFER_REQUESTS")}


def inference_precision(compiled) -> str:
    """The float precision the compiled model really runs at, as OpenVINO reports it."""
    name = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    return {v: k for k, v in OV_PRECISION.items()}.get(name, name)


def _feed(compiled):
    names = [port.get_any_name() for port in compiled.inputs]
    return lambda batch: {name: batch[name] for name in names}


def single_predictor(compile_for_latency: Callable[[], object]) -> Callable[[Batch], np.ndarray]:
    """One batch at a time, on a model compiled for latency on first use (a throughput-compiled
    model runs one request on one stream, a fraction of the cores)."""
    request = []

    def predict(batch: Batch) -> np.ndarray:
        if not request:
            compiled = compile_for_latency()
            request.append((compiled.create_infer_request(), _feed(compiled)))
        infer, feed = request[0]
        return infer.infer(feed(batch))[0].copy()

    return predict


def pass_predictor(compiled, requests: int):
    """A whole pass with `requests` batches in flight; logits in batch order, seconds per batch."""
    queue = _openvino().AsyncInferQueue(compiled, requests)
    feed = _feed(compiled)

    def predict_many(batches: Sequence[Batch]) -> tuple[list, list]:
        outputs: list = [None] * len(batches)
        started = [0.0] * len(batches)
        seconds = [0.0] * len(batches)

        def done(request, index: int) -> None:
            seconds[index] = time.perf_counter() - started[index]
            outputs[index] = request.get_output_tensor(0).data.copy()

        queue.set_callback(done)
        for index, batch in enumerate(batches):
            queue.get_idle_request_id()  # wait for a free request, so the clock starts at launch
            started[index] = time.perf_counter()
            queue.start_async(feed(batch), index)
        queue.wait_all()
        return outputs, seconds

    return predict_many
