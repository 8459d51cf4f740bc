"""The PyTorch reference: the checkpoint as loaded, fp32, on the CPUs this process may use."""
from __future__ import annotations

import numpy as np
import torch

from ..host.cpu import usable_cpus
from ..inputs.batching import Batch
from .base import Runner
from .export import model_input_names


def reference_runner(model: torch.nn.Module) -> Runner:
    torch.set_num_threads(usable_cpus())
    model = model.to("cpu").eval()
    names = model_input_names(model)

    @torch.inference_mode()
    def predict(batch: Batch) -> np.ndarray:
        return model(**{name: torch.from_numpy(batch[name]) for name in names}).logits.float().numpy()

    return Runner(name="pytorch", backend="pytorch", device="cpu", precision="fp32", predict=predict,
                  runtime={"intra_op_threads": torch.get_num_threads(),
                           "inter_op_threads": torch.get_num_interop_threads()})
