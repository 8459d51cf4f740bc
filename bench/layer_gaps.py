"""Where INT8's error is: the logit gap to the float model left when one kind of layer is kept in
float in one layer, or in every layer (why --min-agreement searches kinds, common/fidelity.py).

OpenVINO builds through the product's backend (recipe `ignored_patterns` for one layer, `float_kinds`
for every layer), calibrated like bert_quantize.py, scored at fp32 on a validation slice drawn as
--min-agreement draws it. No timing: this measures error only.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from common import fidelity  # noqa: E402
from common.backends import backend_module  # noqa: E402
from common.backends.base import BuildOptions  # noqa: E402
from common.backends.torch_ref import reference_runner  # noqa: E402
from common.batching import make_batches, tokenize  # noqa: E402
from common.cache import BuildCache  # noqa: E402
from common.calibration import draw_calibration  # noqa: E402
from common.checkpoints import load_checkpoint  # noqa: E402
from common.cpu import cpu_info  # noqa: E402
from common.evaluate import evaluate  # noqa: E402
from common.files import write_atomic  # noqa: E402
from common.paths import SHARED  # noqa: E402
from common.provenance import started  # noqa: E402
from common.sst2 import load_examples  # noqa: E402
from bench.report import gaps_table  # noqa: E402


def in_layer(kind: str, layer: int) -> str:
    """The kind's pattern, matching only operations of encoder layer `layer`."""
    return rf"(?=.*/layer\.{layer}/)" + fidelity.patterns([kind])[0]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default=str(SHARED / "models/minilm-l6-sst2"))
    p.add_argument("--dataset", default=str(SHARED / "data/sst2/validation.tsv"))
    p.add_argument("--calibration-dataset", default=str(SHARED / "data/sst2/train.tsv"))
    p.add_argument("--calibration-samples", type=int, default=1000)
    p.add_argument("--validation-samples", type=int, default=2000)
    p.add_argument("--kinds", default="feed-forward output,feed-forward input",
                   help="comma-separated kinds (common/fidelity.py KINDS) to take layer by layer")
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args()
    provenance = started([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    backend = backend_module("openvino")
    checkpoint = load_checkpoint(args.model)
    examples = load_examples(args.dataset)
    calibration = draw_calibration(args.calibration_dataset, None, 0, args.calibration_samples,
                                   checkpoint.tokenizer, 128, examples.sentences,
                                   args.validation_samples)
    slice_ = make_batches(calibration.validation, 32)
    pytorch = reference_runner(checkpoint.model)
    reference = evaluate(pytorch, slice_).logits
    evaluated = evaluate(pytorch, make_batches(
        tokenize(checkpoint.tokenizer, examples.sentences, 128), 32)).logits
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
            rows.append({"in_float": kind, "layer": layer,
                         "logit_mse": float(np.mean((logits - reference) ** 2)),
                         "agreement": float(np.mean(logits.argmax(1) == reference.argmax(1)))})
    doc = {**provenance, "model": args.model, "validation_sentences": len(calibration.validation),
           "evaluated_within_logit": {str(m): int((margins < m).sum()) for m in (0.1, 0.3, 1.0)},
           "evaluated_sentences": len(examples.sentences), "cpu": cpu_info(),
           "versions": backend.library_versions(), "rows": rows}
    print(gaps_table(doc))
    if args.json:
        write_atomic(Path(args.json), json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
