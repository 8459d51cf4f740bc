"""How often a float build flips the PyTorch reference's answer: what the trial's float gate must
forgive. Each listed float precision OpenVINO compiles here (bf16, fp16), on each checkpoint, over
the SST-2 validation set and a seeded sample of training sentences, at the proof points' batching.

Why: the trial sees at most a few hundred sentences; a gate of "no flip at all" sends `auto` to a
build twice as slow whenever one sentence on the decision boundary flips. The flip rate measured
here says how many of the trial's sentences a sound build flips (common/trial.py, BOUNDARY).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from common.backends import backend_module  # noqa: E402
from common.backends.base import BuildOptions  # noqa: E402
from common.backends.torch_ref import reference_runner  # noqa: E402
from common.batching import make_batches, tokenize  # noqa: E402
from common.cache import BuildCache  # noqa: E402
from common.calibration import draw_indices  # noqa: E402
from common.checkpoints import load_checkpoint  # noqa: E402
from bench.record import write_record  # noqa: E402
from common.cpu import cpu_summary  # noqa: E402
from common.evaluate import evaluate  # noqa: E402
from common.paths import ROOT, SHARED  # noqa: E402
from common.sst2 import load_examples  # noqa: E402
from common.trial import allowed_disagreements, SHARE  # noqa: E402

CHECKPOINTS = (ROOT / "models" / "bert-tiny-sst2", SHARED / "models" / "minilm-l6-sst2")


def flips(model: Path, sentences: list[str], cache: BuildCache) -> dict:
    """Flips of each float precision against the reference, and the trial-sized odds."""
    checkpoint = load_checkpoint(str(model))
    batches = make_batches(tokenize(checkpoint.tokenizer, sentences, 128), 32)
    reference = evaluate(reference_runner(checkpoint.model), batches).predictions
    openvino = backend_module("openvino")
    found = {}
    for candidate in openvino.candidates("cpu", None):
        runner = openvino.build(checkpoint, batches.inputs[0],
                                options=BuildOptions(precision=candidate.precision), cache=cache)
        predicted = evaluate(runner, batches).predictions
        count = int(np.sum(predicted != reference))
        found[runner.name] = {"flips": count, "of": len(sentences), "rate": count / len(sentences)}
    return found


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--train-samples", type=int, default=4000)
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)
    validation = load_examples(str(ROOT / "data/sst2/validation.tsv")).sentences
    train = load_examples(str(ROOT / "data/sst2/train.tsv.xz")).sentences
    sentences = validation + [train[i] for i in draw_indices(len(train), args.train_samples, 0)]
    with tempfile.TemporaryDirectory() as tmp:
        results = {model.name: flips(model, sentences, BuildCache(Path(tmp)))
                   for model in CHECKPOINTS if model.is_dir()}
    gate = {n: allowed_disagreements(n, SHARE["float"]) for n in (64, 128, 256)}
    for model, found in results.items():
        for name, figures in found.items():
            print(f"{model} {name}: {figures['flips']} of {figures['of']} sentences flipped "
                  f"({figures['rate']:.4%})")
    print(f"float gate, disagreements allowed: {gate}")
    print(cpu_summary())
    if args.json:
        write_record(args.json, "bench/float_flips.py", argv,
                     sentences="SST-2 validation (872) and a seed-0 sample of training sentences",
                     results=results, float_gate_allowed=gate)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
