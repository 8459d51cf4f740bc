"""A 3-label sentiment checkpoint for the README's example, made offline from the bundled BERT-tiny
SST-2 checkpoint: its negative and positive rows kept, a `neutral` row added halfway between them
(it wins where the model is unsure). Not trained for three classes: the example shows the proof
points on a 3-label model, not a good one.

    python examples/make_three_label_model.py examples/bert-tiny-3-label
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

BUNDLED = Path(__file__).resolve().parents[1] / "models" / "bert-tiny-sst2"
LABELS = ("negative", "neutral", "positive")


def main(target: str) -> int:
    two = AutoModelForSequenceClassification.from_pretrained(BUNDLED)
    three = AutoModelForSequenceClassification.from_pretrained(
        BUNDLED, num_labels=3, id2label=dict(enumerate(LABELS)),
        label2id={name: i for i, name in enumerate(LABELS)}, ignore_mismatched_sizes=True)
    with torch.no_grad():
        weight, bias = two.classifier.weight, two.classifier.bias
        three.classifier.weight.copy_(torch.stack([weight[0], weight.mean(0), weight[1]]))
        three.classifier.bias.copy_(torch.stack([bias[0], bias.mean() + 0.5, bias[1]]))
    three.save_pretrained(target)
    AutoTokenizer.from_pretrained(BUNDLED).save_pretrained(target)
    print(f"saved a 3-label checkpoint ({', '.join(LABELS)}) to {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else "examples/bert-tiny-3-label"))
