"""Where INT8's error is: the logit gap to the float model left when one kind of layer is kept in
float in one layer, or in every layer (why --min-agreement searches kinds, common/builds/fidelity.py).

OpenVINO builds through the product's backend (recipe `ignored_patterns` for one layer, `float_kinds`
for every layer), calibrated like bert_quantize.py, scored at fp32 on a validation slice drawn as
--min-agreement draws it. No timing: this measures error only.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from bench.harness import load, model_arguments
from bench.report import gaps_table
from common.builds import fidelity
from common.backends import backend_module
from common.backends.base import BuildOptions
from common.backends.torch_ref import reference_runner
from common.inputs.batching import make_batches
from common.builds.cache import BuildCache
from common.run.evaluate import evaluate


def in_layer(kind: str, layer: int) -> str:
    """The kind's pattern, matching only operations of encoder layer `layer`."""
    return rf"(?=.*/layer\.{layer}/)" + fidelity.patterns([kind])[0]


def arguments(p: argparse.ArgumentParser) -> None:
    model_arguments(p)
    p.add_argument("--validation-samples", type=int, default=2000)
    p.add_argument("--kinds", default="feed-forward output,feed-forward input",
                   help="comma-separated kinds (common/builds/fidelity.py KINDS) to take layer by layer")


def run(args: argparse.Namespace) -> dict:
    backend = backend_module("openvino")
    inputs = load(args, validation=args.validation_samples)
    checkpoint, examples, calibration = inputs.checkpoint, inputs.examples, inputs.calibration
    slice_ = make_batches(calibration.validation, 32)
    pytorch = reference_runner(checkpoint.model)
    reference = evaluate(pytorch, slice_).logits
    evaluated = evaluate(pytorch, inputs.batches).logits
    margins = np.abs(evaluated[:, 0] - evaluated[:, 1])
    layers = checkpoint.model.config.num_hidden_layers
    cases = [("nothing", "-", ())]
    for kind in args.kinds.split(","):
        cases += [(kind, "every", (("float_kinds", (kind,)),))]
        cases += [(kind, str(layer), (("ignored_patterns", (in_layer(kind, layer),)),))
                  for layer in range(layers)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = BuildCache(Path(tmp))
        for kind, layer, recipe in cases:
            runner = backend.build(checkpoint, slice_.inputs[0], cache=cache, calibration=calibration,
                                   options=BuildOptions(precision="int8", recipe=recipe))
            logits = evaluate(runner, slice_).logits
            figures = fidelity.scored(logits, reference)  # as the search scores a build
            rows.append({"in_float": kind, "layer": layer, "logit_mse": figures["logit_mse"],
                         "agreement": figures["agreement"]})
    doc = {"model": args.model, "validation_sentences": len(calibration.validation),
           "evaluated_within_logit": {str(m): int((margins < m).sum()) for m in (0.1, 0.3, 1.0)},
           "evaluated_sentences": len(examples.sentences),
           "versions": backend.library_versions(), "rows": rows}
    print(gaps_table(doc))
    return doc
