"""The PyTorch reference: the checkpoint as loaded, fp32, on the CPU, all cores."""
from __future__ import annotations

import os

import numpy as np
import torch

from ..batching import Batch
from ..export import model_input_names
from .base import Runner


def reference_runner(model: torch.nn.Module) -> Runner:
    torch.set_num_threads(os.cpu_count() or 1)
    model = model.to("cpu").eval()
    names = model_input_names(model)

    @torch.inference_mode()
    def predict(batch: Batch) -> np.ndarray:
        return model(**{name: torch.from_numpy(batch[name]) for name in names}).logits.float().numpy()

    return Runner(name="pytorch", backend="pytorch", device="cpu", precision="fp32", predict=predict)
