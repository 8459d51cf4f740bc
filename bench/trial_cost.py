"""What `auto`'s trial costs on a BERT-base-shaped model: `bert_base.py` twice on the same cache,
cold (the trial runs) and again (its decision comes from the cache), each timed whole.

The checkpoint is BERT-base's shape with random weights (seed 0; speed does not depend on the
weights) and the bundled BERT-tiny tokenizer (the same vocabulary), saved to a temporary folder.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from bench.harness import proof_point
from common.host.paths import ROOT

BASE_SHAPE = dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12,
                  intermediate_size=3072)


def save_random_base(folder: Path) -> None:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, num_labels=2, **BASE_SHAPE)
    BertForSequenceClassification(config).eval().save_pretrained(folder)
    AutoTokenizer.from_pretrained(ROOT / "models" / "bert-tiny-sst2").save_pretrained(folder)


def timed_run(model: Path, cache: Path, out: Path) -> dict:
    wall, _ = proof_point("bert_base.py", "--model", str(model), "--dataset",
                          "data/sst2/validation.tsv", "--cache-dir", str(cache), "--json",
                          str(out), capture_output=False)
    doc = json.loads(out.read_text())
    choice = doc["choice"]
    return {"wall_seconds": wall, "trial_seconds": 0.0 if choice["cached"] else choice["trial_seconds"],
            "choice": choice, "speedup": doc["runs"][1]["speedup"],
            "built": doc["runs"][1]["name"]}


def arguments(p: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "bert-base-random"
        save_random_base(model)
        runs = [timed_run(model, Path(tmp) / "cache", Path(tmp) / f"run{i}.json") for i in (1, 2)]
    for name, timed in zip(("first run", "second run"), runs):
        print(f"{name}: {timed['wall_seconds']:.1f} s wall, trial {timed['trial_seconds']:.1f} s "
              f"({timed['trial_seconds'] / timed['wall_seconds']:.1%}), decision "
              f"{'cached' if timed['choice']['cached'] else 'measured'}: {timed['built']} at "
              f"{timed['speedup']['median']:.2f}× the reference")
    return {"shape": BASE_SHAPE, "runs": runs}
