"""BERT-tiny fine-tuned on SST-2, built for 1 chip, against the PyTorch reference on the CPU."""
from common.run.launch import launch
from common.run.spec import ProofPoint

SPEC = ProofPoint(name="bert_tiny", description=__doc__, model="M-FAC/bert-tiny-finetuned-sst2",
                  num_chips=1, bundled_model="models/bert-tiny-sst2")

if __name__ == "__main__":
    raise SystemExit(launch(SPEC))
