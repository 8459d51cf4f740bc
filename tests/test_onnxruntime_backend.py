import numpy as np
from transformers import AutoTokenizer

from common.backends import onnxruntime as ort_backend
from common.backends.base import BuildOptions
from common.backends.torch_ref import reference_runner
from common.batching import make_batches, tokenize
from common.cache import BuildCache
from common.checkpoints import load_checkpoint
from conftest import SENTENCES


def test_onnx_logits_match_pytorch_on_the_same_batches(tiny_checkpoint, cache_dir):
    checkpoint = load_checkpoint(str(tiny_checkpoint))
    encoded = tokenize(checkpoint.tokenizer, [s for s, _ in SENTENCES], 128)
    batches = make_batches(encoded, batch_size=4)
    built = ort_backend.build(checkpoint, batches.inputs[0], options=BuildOptions(),
                              cache=BuildCache(cache_dir))
    reference = reference_runner(checkpoint.model)
    for batch in batches.inputs:  # several batch sizes and sequence lengths: dynamic axes work
        np.testing.assert_allclose(built(batch), reference(batch), atol=1e-4, rtol=0)
    fused = built.facts["fused_operators"]
    assert fused.get("Attention") == 2 and fused.get("SkipLayerNormalization") == 4, fused
