"""ONNX Runtime backend: the shared export, fusions where they pay, fp16 (CUDA) or INT8, a session
on the CPUs this process may use."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Callable, Optional


from ..builds.cache import BuildCache
from ..host.progress import progress_bar
from ..host.provenance import package_versions
from ..inputs.batching import Batch
from ..inputs.calibration import Calibration
from ..inputs.checkpoints import Checkpoint
from . import import_failure
from .base import BuildOptions, Candidate, Offers, Runner, build_key, merged_recipe
from .export import EXPORT_FILE, OPSET, cached_export
from .ort_session import make_session

NAME = "onnxruntime"
STATIC_SHAPE = False
QUANTIZATIONS = ("static", "dynamic")
ACCURACY_CONTROL = True  # --min-agreement (common/builds/fidelity.py), static INT8
MODEL_FILE = "model.onnx"
FP32_FILE = "model-fp32.onnx"
# what the build does beyond the user's options; in the cache key, so a change means a rebuild
RECIPE = {"opset": OPSET, "fusions": "fp16 and dynamic int8; fp32 where fuse_fp32",
          "recipe_version": 2}
# the options its files depend on: all but GroqFlow's
KEYED = tuple(f.name for f in fields(BuildOptions) if f.name not in ("num_chips", "compiler_flags"))
# settings a benchmark may override (BuildOptions.recipe): the measured alternatives to the default
FLOAT_RECIPE = {"fuse_fp32": False,  # ORT's offline BERT fusions for fp32 (slower on our CPUs)
                "optimize_session": True}  # False: the graph runs exactly as stored


def available(building: bool = False) -> tuple[bool, str]:
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        return False, import_failure(exc, "onnxruntime")
    return True, ""


def library_versions() -> dict[str, str]:
    return package_versions("torch", "transformers", "onnx", "onnxruntime")


def offers(device: str, quantization: str | None) -> Offers:
    """fp16 (fused kernels) and fp32 on CUDA where this onnxruntime has its CUDA provider
    (onnxruntime-gpu: the one place that asks); fp32 on the CPU, whose ONNX Runtime kernels have
    no fast bf16/fp16; INT8 (static or dynamic) with an fp32 remainder, on the CPU."""
    import onnxruntime as ort

    if device == "cuda":
        providers = ort.get_available_providers()
        if "CUDAExecutionProvider" not in providers:
            return Offers(why_none="its CUDA provider needs onnxruntime-gpu; this onnxruntime "
                                   f"offers {', '.join(providers)}")
        if quantization is not None:
            return Offers(why_none="it builds INT8 for the CPU")
        return Offers(tuple(Candidate(NAME, p, device=device) for p in ("fp16", "fp32")))
    if quantization is not None:
        return Offers((Candidate(NAME, "int8", "fp32"),) if quantization in QUANTIZATIONS else ())
    return Offers((Candidate(NAME, "fp32"),))


def build_recipe(options: BuildOptions) -> dict:
    """What the build does beyond the user's options, with the options' overrides; with
    --distill-steps, the distillation tried first (common/backends/distillation.py)."""
    recipe = {**RECIPE, **merged_recipe({**FLOAT_RECIPE, **_int8_recipe(options)}, options)}
    if options.int8 and options.quantization == "static" \
            and options.min_agreement is not None and options.distill_steps:
        from . import distillation
        from .ov_quantize import INT8_RECIPE

        recipe["distillation"] = distillation.recipe(options.distill_steps, INT8_RECIPE)
    return recipe


def build(checkpoint: Checkpoint, example: Batch, *, options: BuildOptions, cache: BuildCache,
          calibration: Calibration | None = None) -> Runner:
    offers(options.device, options.quantized).check(NAME, options)
    int8 = options.int8
    recipe = build_recipe(options)
    key = build_key(NAME, checkpoint.identity, options, KEYED, library_versions(), recipe,
                    calibration if int8 and options.quantization == "static" else None)
    label = f"int8-{options.quantization}" if int8 else options.precision
    export = cached_export(checkpoint, example, cache)
    if (options.device, options.precision) == ("cpu", "fp32") and not recipe["fuse_fp32"]:
        # the export as it is: ONNX Runtime optimises it when the session loads
        cached, model, seconds = export, export.folder / EXPORT_FILE, export.seconds
    else:
        distilled = (lambda: distilled_onnx(checkpoint, example, calibration, recipe, cache)) \
            if "distillation" in recipe else None
        cached = cache.get_or_build(
            f"ort-{label}-{options.device}", key,
            lambda folder: _build(folder, export.folder / EXPORT_FILE, checkpoint.model.config,
                                  options, recipe, calibration, distilled))
        model, seconds = cached.folder / MODEL_FILE, export.seconds + cached.seconds
    predict, runtime = make_session(model, options.device, recipe["optimize_session"])
    return Runner(name=f"onnxruntime-{label}", backend=NAME, device=options.device,
                  precision=options.label, predict=predict,
                  build_seconds=seconds, cache_hit=cached.hit, files=cached.file_sizes,
                  facts=cached.state["facts"], runtime=runtime)


def _build(folder: Path, exported: Path, config, options: BuildOptions, recipe: dict,
           calibration: Calibration | None,
           distilled: Optional[Callable[[], tuple[Path, dict]]] = None) -> dict:
    """What measured fastest from the shared export. fp32 on the CPU is the export as it is (not
    built here, unless the recipe asks for fusions): ONNX Runtime's load-time optimisation of it ran
    faster than its offline BERT fusions (bench/benchmark.py: ort-fp32-optimized against
    ort-fp32-fused). The fusions are applied for fp16 on CUDA (fused attention kernels) and where
    the INT8 recipe asks (dynamic INT8 quantizes the fused Attention too; static INT8 the exported
    graph)."""
    int8 = options.int8
    fuse = options.precision == "fp16" or (int8 and recipe["fused_graph"]) or \
        (options.precision == "fp32" and recipe["fuse_fp32"])
    stages = (["fuse"] if fuse else []) + (["quantise"] if int8 else [])
    float_model = folder / (FP32_FILE if int8 else MODEL_FILE) if fuse else exported
    facts: dict = {}
    with progress_bar("build onnxruntime", len(stages), "stage") as bar:
        if fuse:
            bar.set_postfix_str("fuse")
            facts["fused_operators"] = fuse_bert(exported, float_model, config, options)
            bar.update()
        if int8:
            from .ort_quantize import (agreeing_static_int8, quantize_dynamic_int8,
                                       quantize_static_int8)

            bar.set_postfix_str("quantise")
            if options.quantization == "dynamic":
                quantize_dynamic_int8(float_model, folder / MODEL_FILE, recipe)
            elif options.min_agreement is None:
                quantize_static_int8(float_model, folder / MODEL_FILE, calibration, recipe)
            else:
                facts["accuracy_control"] = agreeing_static_int8(
                    float_model, folder / MODEL_FILE, calibration, recipe, options.min_agreement,
                    distilled)
            facts.update(quantization=options.quantization, fp32_bytes=float_model.stat().st_size,
                         int8_bytes=(folder / MODEL_FILE).stat().st_size)
            if fuse:
                float_model.unlink()
            bar.update()
    return facts


def distilled_onnx(checkpoint: Checkpoint, example: Batch, calibration: Calibration,
                   recipe: dict, cache: BuildCache) -> tuple[Path, dict]:
    """The distilled INT8 model (common/backends/distillation.py) as QDQ ONNX, and the distillation's
    record."""
    from . import distillation

    def save(student, names: tuple[str, ...], folder: Path) -> None:
        distillation.save_qdq_onnx(student, names, example, folder / MODEL_FILE)

    versions = {**library_versions(), **package_versions("nncf")}  # NNCF trains it
    folder, record = distillation.cached_student(checkpoint, calibration, recipe, cache, NAME,
                                                 versions, save)
    return folder / MODEL_FILE, record


def _int8_recipe(options: BuildOptions) -> dict:
    """The quantizer's settings for an INT8 build (none otherwise)."""
    if not options.int8:
        return {}
    from .ort_quantize import DYNAMIC_RECIPE, STATIC_RECIPE

    return dict(STATIC_RECIPE if options.quantization == "static" else DYNAMIC_RECIPE)


def fuse_bert(source: Path, target: Path, config, options: BuildOptions) -> dict[str, int]:
    """ONNX Runtime's BERT fusions (attention, embed/skip LayerNorm, GELU); fp16 on CUDA."""
    from onnxruntime.transformers import optimizer

    model = optimizer.optimize_model(str(source), model_type="bert",
                                     num_heads=config.num_attention_heads,
                                     hidden_size=config.hidden_size, opt_level=0,
                                     use_gpu=options.device == "cuda")
    if options.precision == "fp16":
        model.convert_float_to_float16(keep_io_types=True)
    model.save_model_to_file(str(target))
    return {op: n for op, n in model.get_fused_operator_statistics().items() if n}
