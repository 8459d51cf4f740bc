"""What `auto`'s trial costs on a BERT-base-shaped model: `bert_base.py` twice on the same cache,
cold (the trial runs) and again (its decision comes from the cache), each timed whole.

The checkpoint is BERT-base's shape with random weights (seed 0; speed does not depend on the
weights) and the bundled BERT-tiny tokenizer (the same vocabulary), saved to a temporary folder.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from common.paths import ROOT  # noqa: E402
from common.cpu import cpu_summary  # noqa: E402
from common.files import write_atomic  # noqa: E402

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
    command = [sys.executable, "bert_base.py", "--model", str(model), "--dataset",
               "data/sst2/validation.tsv", "--cache-dir", str(cache), "--json", str(out)]
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    wall = time.perf_counter() - start
    doc = json.loads(out.read_text())
    choice = doc["choice"]
    return {"wall_seconds": wall, "trial_seconds": 0.0 if choice["cached"] else choice["trial_seconds"],
            "choice": choice, "speedup": doc["runs"][1]["speedup"],
            "built": doc["runs"][1]["name"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "bert-base-random"
        save_random_base(model)
        runs = [timed_run(model, Path(tmp) / "cache", Path(tmp) / f"run{i}.json") for i in (1, 2)]
    for name, run in zip(("first run", "second run"), runs):
        print(f"{name}: {run['wall_seconds']:.1f} s wall, trial {run['trial_seconds']:.1f} s "
              f"({run['trial_seconds'] / run['wall_seconds']:.1%}), decision "
              f"{'cached' if run['choice']['cached'] else 'measured'}: {run['built']} at "
              f"{run['speedup']['median']:.2f}× the reference")
    print(cpu_summary())
    if args.json:
        write_atomic(Path(args.json), json.dumps({"shape": BASE_SHAPE, "runs": runs,
                                                  "cpu": cpu_summary()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
