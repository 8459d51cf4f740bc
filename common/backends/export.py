"""The one ONNX export every file-based backend builds from, fed by name with the model's own inputs."""
from __future__ import annotations

import copy
import inspect
import warnings
from pathlib import Path

import numpy as np
import torch
import transformers

from ..builds.cache import BuildCache, CachedBuild
from ..host.errors import UserError, first_line
from ..host.progress import progress_bar
from ..host.provenance import package_versions
from ..inputs.batching import Batch, INPUT_NAMES
from .base import BuildOptions, build_key
from .ort_session import make_session

OPSET = 17
EXPORT_FILE = "model.onnx"
EXPORT_TOLERANCE = 1e-3  # fp32 against fp32: seen at 1e-6 on every supported architecture
EXPORT_RECIPE = {"export": "torchscript, eager attention, dynamic batch and sequence", "opset": OPSET}


def model_input_names(model: torch.nn.Module) -> tuple[str, ...]:
    """The tokenizer outputs this model's forward() takes, in INPUT_NAMES order: DistilBERT takes no
    token_type_ids, and a model must never be handed an input by a position it does not have."""
    parameters = inspect.signature(model.forward).parameters
    return tuple(name for name in INPUT_NAMES if name in parameters)


class LogitsByName(torch.nn.Module):
    """The classifier as a function of its named inputs, returning logits only."""

    def __init__(self, model: torch.nn.Module, names: tuple[str, ...]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, inputs))).logits


def eager_attention_copy(model: torch.nn.Module) -> torch.nn.Module:
    """The same classifier (same weights) with eager attention, for tracing: ONNX Runtime's
    attention fusion does not recognise SDPA's graph, and some transformers releases' SDPA mask
    code does not trace at all. A copy, because transformers 4.x picks the attention classes when
    the model is built (setting the config afterwards changes nothing), and the reference keeps
    its default attention."""
    from transformers import AutoModelForSequenceClassification

    eager = AutoModelForSequenceClassification.from_config(copy.deepcopy(model.config),
                                                           attn_implementation="eager")
    eager.load_state_dict(model.state_dict())
    return eager.float().eval()


def architecture(model: torch.nn.Module) -> str:
    return ", ".join(getattr(model.config, "architectures", None) or [type(model).__name__])


def export_onnx(model: torch.nn.Module, example: Batch, path: Path) -> tuple[str, ...]:
    """TorchScript-based export with dynamic batch and sequence axes (the path ORT's fusions match),
    checked against PyTorch on the example batch: a model that does not export, or exports to a
    graph that answers differently, is refused in one line naming its architecture. Returns the
    graph's input names."""
    names = model_input_names(model)
    if "input_ids" not in names:
        raise UserError(f"{architecture(model)} takes no input_ids; the proof points feed token ids")
    args = tuple(torch.from_numpy(example[name]) for name in names)
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        try:
            export_logits(LogitsByName(eager_attention_copy(model), names), names, example, path)
        except Exception as exc:  # the exporter fails in many ways, none of them the user's doing
            raise UserError(f"{architecture(model)} does not export to ONNX with transformers "
                            f"{transformers.__version__} ({first_line(exc)})") from None
        expected = model(**dict(zip(names, args))).logits.float().numpy()
    check_export(path, example, expected, architecture(model))
    return names


def export_logits(module: torch.nn.Module, names: tuple[str, ...], example: Batch,
                  path: Path) -> None:
    """`module(*inputs) -> logits` as ONNX with dynamic batch and sequence axes, inputs by name:
    TorchScript-based, the exporter torch 2.1 (GroqWare hosts) has and the path ORT's fusions
    match (torch >= 2.5 would take the dynamo exporter)."""
    legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    torch.onnx.export(module, tuple(torch.from_numpy(example[name]) for name in names), str(path),
                      **legacy, input_names=list(names), output_names=["logits"],
                      dynamic_axes={**axes, "logits": {0: "batch"}}, opset_version=OPSET,
                      do_constant_folding=True)


def check_export(path: Path, example: Batch, expected: np.ndarray, what: str) -> None:
    """The exported graph, run by ONNX Runtime as stored, must give PyTorch's logits."""
    predict, _ = make_session(path, "cpu", optimize=False)
    got = predict(example)
    gap = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
    if not gap <= EXPORT_TOLERANCE:
        raise UserError(f"the ONNX export of {what} does not reproduce PyTorch's logits "
                        f"(max |Δlogit| {gap:.3g} on the example batch); not building from it")


def cached_export(checkpoint, example: Batch, cache: BuildCache) -> CachedBuild:
    """The export every file-based build starts from, made once per checkpoint and exporter
    versions: OpenVINO converts it, ONNX Runtime runs it as its fp32 build or quantizes it."""
    key = build_key("onnx-export", checkpoint.identity, BuildOptions(), (),
                    package_versions("torch", "transformers", "onnx"), EXPORT_RECIPE)

    def build(folder: Path) -> dict:
        with progress_bar("export onnx", 1, "model") as bar:
            names = export_onnx(checkpoint.model, example, folder / EXPORT_FILE)
            bar.update()
        return {"input_names": list(names)}

    return cache.get_or_build("onnx", key, build)
