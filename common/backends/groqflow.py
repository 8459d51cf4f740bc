"""GroqFlow backend: groqit() on 1..N GroqCards, fp16 or INT8 with calibration samples.

Written against groqflow 4.3.1's public API (groqit, GroqModel, sdk_helpers). GroqFlow compiles
for one static input shape, so this backend declares STATIC_SHAPE: batch 1, padded to max_length.
"""
from __future__ import annotations

import io
import re
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import fields
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..builds.cache import BuildCache
from ..host.errors import NotBuilt, UserError, first_line
from ..host.provenance import package_versions
from ..inputs.batching import Batch, make_batches
from ..inputs.calibration import Calibration
from ..inputs.checkpoints import Checkpoint
from . import import_failure
from .base import BuildOptions, Candidate, Offers, Runner, build_key
from .export import eager_attention_copy, model_input_names

NAME = "groqflow"
STATIC_SHAPE = True
QUANTIZATIONS = ("static",)  # GroqFlow's INT8 is calibrated with quantization_samples
ACCURACY_CONTROL = False
GROQCHIP = "groqchip"  # its builds' device
RECIPE = {"inputs": "input_ids int64, attention_mask bool, batch 1", "recipe_version": 1}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def printed_error(exc: BaseException, printed: str) -> str:
    """A GroqFlow failure in one line. onnxflow's errors print "Error: <message>" (in colour,
    continued on indented lines, then ASCII art) when they are created and carry no text
    themselves, so the message is taken from what was printed."""
    if str(exc).strip():
        return first_line(exc)
    message: list[str] = []
    for line in _ANSI.sub("", printed).splitlines():
        if line.startswith("Error:"):
            message = [line[len("Error:"):].strip()]
        elif message and line.startswith(" ") and line.strip():
            message.append(line.strip())
        elif message:
            break
    return " ".join(message) or type(exc).__name__


def quiet_failure(call: Callable[[], object]) -> str:
    """Run a GroqFlow call silently; return "" or its failure in one line."""
    printed = io.StringIO()
    try:
        with redirect_stdout(printed), redirect_stderr(printed):
            call()
    except Exception as exc:
        return printed_error(exc, printed.getvalue())
    return ""


def groqflow_call(call: Callable[[], object], failure: str):
    """A GroqFlow call with what it prints on stdout (success lines, benchmark's info line) sent to
    stderr, so that stdout holds only our table, and its error message, which its exception does
    not carry, kept for one UserError line: "<failure> (<message>)"."""
    errors = io.StringIO()
    try:
        with redirect_stdout(sys.stderr), redirect_stderr(errors):
            result = call()
    except Exception as exc:
        raise UserError(f"{failure} ({printed_error(exc, errors.getvalue())})") from None
    sys.stderr.write(errors.getvalue())
    return result


def check_num_chips(num_chips: int) -> None:
    """Refuse what groqit's ArgError would refuse, before any work: groqit takes 1 chip, or a
    count of its default topology (groqflow.common.build.supported_topology: 2 to 64 for the
    Dragonfly topology of GroqCard A1.4)."""
    from groqflow.common import build

    counts = (1, *sorted(build.supported_topology(build.GROQCARD, build.TOPOLOGY)))
    if num_chips not in counts:
        raise UserError(f"--num-chips {num_chips}: GroqFlow builds for "
                        f"{', '.join(map(str, counts[:-1]))} or {counts[-1]} GroqChip processors")


def available(building: bool = False) -> tuple[bool, str]:
    """GroqFlow must import, its own check must find the GroqWare Suite (devtools, runtime), and
    the host must have a GroqChip processor: a GroqWare host without cards is no place to run.
    To build only (`--build`, as the original proof points), groq-devtools alone will do."""
    try:
        import groqflow  # noqa: F401
        from groqflow.common import sdk_helpers
    except ImportError as exc:
        return False, f"{import_failure(exc, 'groqflow')}; see requirements-groq.txt"
    why = quiet_failure(lambda: sdk_helpers.check_dependencies(require_devtools=True,
                                                               require_runtime=not building))
    if why:
        return False, f"GroqWare Suite not found ({why})"
    if building:
        return True, ""
    chips: list = []
    why = quiet_failure(lambda: chips.append(sdk_helpers.get_num_chips_available()))
    if why or not chips[0]:
        return False, f"the GroqWare Suite is here but no GroqChip processor ({why or 'none found'})"
    return True, ""


def offers(device: str, quantization: Optional[str]) -> Offers:
    """One build, on its GroqChips whatever the device: fp16 (GroqFlow converts float models to
    fp16 for the GroqChip), or INT8."""
    if quantization is None:
        return Offers((Candidate(NAME, "fp16", device=GROQCHIP),))
    return Offers((Candidate(NAME, "int8", device=GROQCHIP),) if quantization in QUANTIZATIONS
                  else ())


def library_versions() -> dict[str, str]:
    """groqflow's, torch's and transformers' versions, and the GroqWare Suite's (groq-devtools
    compiles, groq-runtime runs) as GroqFlow reads them from the OS's packages."""
    return {**package_versions("groqflow", "torch", "transformers"), **groqware_versions()}


def compiled_with() -> dict[str, str]:
    """The versions a compiled program depends on, in its key: all but groq-runtime's, which
    runs it (the original proof points build on a machine with groq-devtools alone, and the
    card host's runtime loads the build)."""
    return {name: version for name, version in library_versions().items()
            if name != "groq-runtime"}


def groqware_versions() -> dict[str, str]:
    """The installed groq-devtools and groq-runtime packages' versions, "unknown" where GroqFlow
    cannot read them."""
    from groqflow.common import sdk_helpers

    versions = {}
    for package in ("groq-devtools", "groq-runtime"):
        found: list = []
        why = quiet_failure(lambda: found.append(sdk_helpers._installed_package_version(
            package, sdk_helpers.validate_os_version())))
        versions[package] = str(found[0]) if not why and found and found[0] else "unknown"
    return versions


def groq_inputs(batch: Batch, ids_dtype, token_types: bool = False) -> dict:
    """The inputs of the original proof points: token ids (int64; int32 for INT8, which GroqFlow
    does not downcast when it is given quantization samples) and the attention mask as bool; for
    sentence pairs (`token_types`) also the token type ids, like the ids."""
    import torch

    inputs = {"input_ids": torch.from_numpy(batch["input_ids"].astype(ids_dtype)),
              "attention_mask": torch.from_numpy(batch["attention_mask"]).bool()}
    if token_types:
        inputs["token_type_ids"] = torch.from_numpy(batch["token_type_ids"].astype(ids_dtype))
    return inputs


def takes_token_types(model, example: Batch) -> bool:
    """Whether the model takes token type ids and the data carry them (sentence pairs): single
    sentences are fed as the original proof points fed them, without."""
    return "token_type_ids" in model_input_names(model) and bool(example["token_type_ids"].any())


def quantization_samples(calibration: Calibration, token_types: bool = False
                         ) -> list[tuple[np.ndarray, ...]]:
    """One sample per sentence: the model's inputs in order, each [1, max_length], as GroqFlow's
    post-training quantization reader zips them with the ONNX input names; ids int32 as in the
    original bert_quantize.py (token type ids too, for pairs)."""
    batches = make_batches(calibration.encoded, batch_size=1, static_shape=True)
    return [(b["input_ids"].astype(np.int32), b["attention_mask"].astype(bool))
            + ((b["token_type_ids"].astype(np.int32),) if token_types else ())
            for b in batches.inputs]


def compiler_flags(options: BuildOptions) -> Optional[list[str]]:
    """--compiler-flags if given; else "--large-program" for INT8 (the original bert_quantize.py)
    and GroqFlow's own defaults (None) otherwise."""
    if options.compiler_flags is not None:
        return list(options.compiler_flags)
    return ["--large-program"] if options.int8 else None


def state_file(groq_cache: Path, build_name: str) -> Path:
    """onnxflow.common.build.state_file: <cache>/<build>/<build>_state.yaml"""
    return groq_cache / build_name / f"{build_name}_state.yaml"


def build_state(groq_cache: Path, build_name: str) -> dict:
    """GroqFlow's state file (onnxflow writes it with yaml.dump), e.g. uid, build_status,
    num_chips_used, quantization_samples; {} if there is none or it does not parse. Python objects
    it may hold (tagged) are read as None: only plain fields are used."""
    import yaml

    class StateLoader(yaml.SafeLoader):
        """SafeLoader, with any tagged object read as None instead of refused."""

    StateLoader.add_multi_constructor("", lambda loader, suffix, node: None)
    try:
        state = yaml.load(state_file(groq_cache, build_name).read_text(), Loader=StateLoader)
    except (OSError, yaml.YAMLError):
        return {}
    return state if isinstance(state, dict) else {}


def finished_build(groq_cache: Path, build_name: str) -> tuple | None:
    """A finished build of this name (what `rebuild="never"` loads), as its uid and the state
    file's modification time, or None. Every build stage rewrites the state file; a load from the
    cache only reads it: the same identity before and after groqit() means it loaded."""
    state = build_state(groq_cache, build_name)
    if state.get("build_status") != "successful_build":
        return None
    return state.get("uid"), state_file(groq_cache, build_name).stat().st_mtime_ns


def _logits(out) -> np.ndarray:
    logits = out[0] if isinstance(out, tuple) else out
    return np.asarray(logits.detach().numpy() if hasattr(logits, "detach") else logits,
                      dtype=np.float32)


def build_recipe(options: BuildOptions) -> dict:
    """What the build does beyond the user's options: its inputs and the compiler flags it uses."""
    return {**RECIPE, "compiler_flags": compiler_flags(options)}


def check_chips(options: BuildOptions) -> None:
    """The host must have as many GroqChip processors as the build asks for."""
    from groqflow.common import sdk_helpers

    try:
        available_chips = sdk_helpers.get_num_chips_available()
    except Exception as exc:  # e.g. lspci missing; GroqFlow has printed its message already
        raise UserError(f"cannot count this host's GroqChip processors ({first_line(exc)})") from None
    if available_chips < options.num_chips:
        raise UserError(f"the build asks for {options.num_chips} GroqChip processors but this host "
                        f"has {available_chips}; pass --num-chips N")


def read_back(groq_cache: Path, build_name: str) -> tuple[object, str, list]:
    """What groqit compiled, from its state file rather than echoed from the request: the chip
    count and the precision ("unknown" where the file does not say), and the fields read."""
    state = build_state(groq_cache, build_name)
    used = state.get("num_chips_used")
    chips = used if isinstance(used, int) and not isinstance(used, bool) else "unknown"
    samples = state.get("quantization_samples")
    precision = {True: "int8", False: "fp16"}[samples] if isinstance(samples, bool) else "unknown"
    return chips, precision, sorted({"num_chips_used", "quantization_samples"} & set(state))


def build(checkpoint: Checkpoint, example: Batch, *, options: BuildOptions, cache: BuildCache,
          calibration: Calibration | None = None) -> Runner:
    from groqflow import groqit

    if cache.stage != "build":  # --build compiles with groq-devtools alone, as the original
        check_chips(options)
    if example["input_ids"].shape != (1, options.max_length):
        raise ValueError("GroqFlow needs batch-1 inputs padded to max_length")
    int8 = options.int8
    ids_dtype = np.int32 if int8 else np.int64
    token_types = takes_token_types(checkpoint.model, example)
    flags = compiler_flags(options)
    fed = {"token_type_ids": True} if token_types else {}  # another graph: another build
    key = build_key(NAME, checkpoint.identity, options, [f.name for f in fields(BuildOptions)],
                    compiled_with(), RECIPE, calibration if int8 else None,
                    compiler_flags=flags, **fed)
    # GroqFlow does not notice changed weights or calibration samples; a build name derived from
    # our key makes every such change a new build, so its `if_needed` stays correct.
    build_name = f"bert-{options.precision}-{options.num_chips}chip-{key[:16]}"
    groq_cache = Path(cache.root) / "groqflow"
    cached = finished_build(groq_cache, build_name)
    if cache.rebuild == "never" and cached is None:
        # groqit(rebuild="never") would build from scratch when no build of this name exists
        raise NotBuilt(f"{cache.never_flag}: no finished GroqFlow build '{build_name}' in "
                        f"'{groq_cache}'")
    print(f"groqflow: {'loading' if cached and cache.rebuild != 'always' else 'building'} "
          f"'{build_name}' (logs in {groq_cache / build_name})", file=sys.stderr)
    start = time.perf_counter()
    # Eager attention, as for the ONNX export: GroqFlow exports with torch.onnx, and the graph the
    # original proof points compiled is eager attention's MatMul/Softmax; SDPA's traced graph
    # differs between transformers releases and some do not trace at all.
    model = groqflow_call(
        lambda: groqit(eager_attention_copy(checkpoint.model),
                       groq_inputs(example, ids_dtype, token_types),
                       build_name=build_name, cache_dir=str(groq_cache), monitor=False,
                       rebuild=cache.rebuild, num_chips=options.num_chips, compiler_flags=flags,
                       quantization_samples=quantization_samples(calibration, token_types)
                       if int8 else None),
        f"GroqFlow build '{build_name}' failed; its logs are in {groq_cache / build_name}")
    seconds = time.perf_counter() - start
    loaded = cached is not None and cached == finished_build(groq_cache, build_name)
    chips, precision, read = read_back(groq_cache, build_name)
    facts = {"build_name": build_name, "build_folder": str(groq_cache / build_name),
             "num_chips": chips, "compiler_flags": flags,
             "input_ids_dtype": np.dtype(ids_dtype).name, "read_back_from_state_file": read}
    return card_runner(model, precision, chips, lambda batch: groq_inputs(
        batch, ids_dtype, token_types), f"{groq_cache / build_name}", seconds, loaded, facts,
        on_a_card=cache.stage != "build")


def card_runner(model, precision: str, chips, inputs: Callable[[Batch], dict], logs: str,
                seconds: float, loaded: bool, facts: dict, on_a_card: bool = True) -> Runner:
    """The Runner of a GroqModel: whole passes through run_abunch, GroqFlow's own figures
    (measured on the card: none where the build is made to run elsewhere, `on_a_card` False)."""
    def on_card(call: Callable[[], object]):
        """GroqModel runs the card in a subprocess with its own log."""
        return groqflow_call(call, f"running GroqFlow build '{Path(logs).name}' failed; see {logs}")

    def predict(batch: Batch) -> np.ndarray:
        return _logits(on_card(lambda: model.run(inputs(batch))))

    def predict_many(batches) -> tuple[list, None]:
        """One run_abunch for the whole pass: one process start, not one per sentence; GroqFlow
        does not time the batches within it."""
        out = on_card(lambda: model.run_abunch([inputs(b) for b in batches]))
        return [_logits(o) for o in (out if isinstance(out, list) else [out])], None

    known = chips != "unknown"
    return Runner(name=f"groqflow-{precision}-" + (f"{chips}chip" if known else "chips-unknown"),
                  backend=NAME, device=f"groqchip x{chips}" if known else "groqchip (count unknown)",
                  precision=precision, predict=predict, predict_many=predict_many,
                  single_calls=False, build_seconds=seconds, cache_hit=loaded,
                  facts={**facts, **(groqflow_figures(model, on_card) if on_a_card else {})})


def groqflow_figures(model, on_card: Callable) -> dict:
    """GroqFlow's own figures, named as the original proof points name them (batch 1):
    on-chip latency from estimate_performance().compute_latency (compiled cycle counts, not
    measured), end-to-end latency from benchmark() (100 runs measured on the card)."""
    estimate = on_card(model.estimate_performance)
    measured = on_card(model.benchmark)
    on_chip_ms = estimate.compute_latency * 1000.0
    end_to_end_ms = measured.latency * 1000.0
    return {"groqflow_on_chip_latency_ms": on_chip_ms, "groqflow_on_chip_ips": 1000.0 / on_chip_ms,
            "groqflow_end_to_end_latency_ms": end_to_end_ms,
            "groqflow_end_to_end_ips": 1000.0 / end_to_end_ms,
            "groqflow_figures_note": "on-chip: estimate_performance().compute_latency, from "
                                     "compiled cycle counts (an estimate); end-to-end: benchmark(), "
                                     "100 runs measured on the card"}
