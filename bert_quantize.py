"""BERT-base on SST-2 with post-training INT8 quantization, calibrated on seeded training samples."""
from common.run.launch import launch
from common.run.spec import ProofPoint

SPEC = ProofPoint(name="bert_quantize", description=__doc__, model="howey/bert-base-uncased-sst2",
                  num_chips=4, quantize=True)

if __name__ == "__main__":
    raise SystemExit(launch(SPEC))
