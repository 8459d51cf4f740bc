"""BERT-base fine-tuned on SST-2, built for 4 chips, against the PyTorch reference on the CPU."""
from common.run.launch import launch
from common.run.spec import ProofPoint

SPEC = ProofPoint(name="bert_base", description=__doc__, model="howey/bert-base-uncased-sst2",
                  num_chips=4)

if __name__ == "__main__":
    raise SystemExit(launch(SPEC))
