"""How often a float build flips the PyTorch reference's answer: what the trial's float gate must
forgive. Each listed float precision OpenVINO compiles here (bf16, fp16), on each checkpoint, over
the SST-2 validation set and a seeded sample of training sentences, at the proof points' batching.

Why: the trial sees at most a few hundred sentences; a gate of "no flip at all" sends `auto` to a
build twice as slow whenever one sentence on the decision boundary flips. The flip rate measured
here says how many of the trial's sentences a sound build flips (common/run/trial.py, BOUNDARY).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from common.backends import backend_module
from common.backends.base import BuildOptions
from common.backends.torch_ref import reference_runner
from common.inputs.batching import make_batches, tokenize
from common.builds.cache import BuildCache
from common.inputs.calibration import draw_indices
from common.inputs.checkpoints import load_checkpoint
from common.run.evaluate import evaluate
from common.host.paths import ROOT, SHARED
from common.inputs.examples import load_examples
from common.run.trial import allowed_disagreements, SHARE

CHECKPOINTS = (ROOT / "models" / "bert-tiny-sst2", SHARED / "models" / "minilm-l6-sst2")


def flips(model: Path, sentences: list[str], cache: BuildCache) -> dict:
    """Flips of each float precision against the reference, and the trial-sized odds."""
    checkpoint = load_checkpoint(str(model))
    batches = make_batches(tokenize(checkpoint.tokenizer, sentences, 128), 32)
    reference = evaluate(reference_runner(checkpoint.model), batches).predictions
    openvino = backend_module("openvino")
    found = {}
    for candidate in openvino.offers("cpu", None).trialled:
        runner = openvino.build(checkpoint, batches.inputs[0],
                                options=BuildOptions(precision=candidate.precision), cache=cache)
        predicted = evaluate(runner, batches).predictions
        count = int(np.sum(predicted != reference))
        found[runner.name] = {"flips": count, "of": len(sentences), "rate": count / len(sentences)}
    return found


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train-samples", type=int, default=4000)


def run(args: argparse.Namespace) -> dict:
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
    return {"sentences": "SST-2 validation (872) and a seed-0 sample of training sentences",
            "results": results, "float_gate_allowed": gate}
