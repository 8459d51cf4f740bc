"""The one ONNX export every file-based backend builds from, fed by name with the model's own inputs."""
from __future__ import annotations

import inspect
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch

from .batching import INPUT_NAMES, Batch

OPSET = 17


def model_input_names(model: torch.nn.Module) -> tuple[str, ...]:
    """The tokenizer outputs this model's forward() takes, in INPUT_NAMES order: DistilBERT takes no
    token_type_ids, and a model must never be handed an input by a position it does not have."""
    parameters = inspect.signature(model.forward).parameters
    return tuple(name for name in INPUT_NAMES if name in parameters)


class _LogitsByName(torch.nn.Module):
    """The classifier as a function of its named inputs, returning logits only."""

    def __init__(self, model: torch.nn.Module, names: tuple[str, ...]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, inputs))).logits


@contextmanager
def eager_attention(model: torch.nn.Module):
    """Trace eager attention: ONNX Runtime's attention fusion does not recognise SDPA's graph, and
    some transformers releases' SDPA mask code does not trace at all."""
    previous = getattr(model.config, "_attn_implementation", None)
    model.config._attn_implementation = "eager"  # transformers 5 reads it at every forward
    try:
        yield
    finally:
        model.config._attn_implementation = previous


def export_onnx(model: torch.nn.Module, example: Batch, path: Path) -> tuple[str, ...]:
    """TorchScript-based export with dynamic batch and sequence axes (the path ORT's fusions match).
    Returns the graph's input names."""
    names = model_input_names(model)
    args = tuple(torch.from_numpy(example[name]) for name in names)
    # torch >= 2.5 defaults to the dynamo exporter; torch 2.1 (GroqWare hosts) has only this one
    legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    with eager_attention(model), warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(_LogitsByName(model, names), args, str(path), **legacy,
                          input_names=list(names), output_names=["logits"],
                          dynamic_axes={**axes, "logits": {0: "batch"}},
                          opset_version=OPSET, do_constant_folding=True)
    return names
