import numpy as np
import pytest

from common.backends import onnxruntime as ort_backend
from common.backends.base import BuildOptions
from common.backends.torch_ref import reference_runner
from common.inputs.batching import make_batches, tokenize
from common.builds.cache import BuildCache
from common.inputs.checkpoints import load_checkpoint
from common.backends.export import eager_attention_copy, export_onnx
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
    assert "fused_operators" not in built.facts  # fp32 on the CPU: ORT optimises at load


def test_bert_fusions_apply_to_the_exported_graph(tiny_checkpoint, tmp_path):
    """Eager-attention export is what ORT's BERT fusions recognise (SDPA's graph defeats them)."""
    checkpoint = load_checkpoint(str(tiny_checkpoint))
    example = make_batches(tokenize(checkpoint.tokenizer, ["good film"], 128), 1).inputs[0]
    exported, fused = tmp_path / "exported.onnx", tmp_path / "fused.onnx"
    own = checkpoint.model.config._attn_implementation  # transformers' default: sdpa of late
    eager = eager_attention_copy(checkpoint.model)
    assert eager.config._attn_implementation == "eager"
    export_onnx(eager, example, exported)
    assert checkpoint.model.config._attn_implementation == own  # the reference keeps its own
    counts = ort_backend.fuse_bert(exported, fused, checkpoint.model.config, BuildOptions())
    assert counts == {"EmbedLayerNormalization": 1, "Attention": 2, "BiasGelu": 2,
                      "SkipLayerNormalization": 4}, counts


def test_cuda_without_a_gpu_is_one_clear_line(tiny_checkpoint, data_file, tmp_path, capsys, no_gpu):
    import bert_tiny
    from common.run.proofpoint import main

    code = main(bert_tiny.SPEC, ["--model", str(tiny_checkpoint), "--dataset", str(data_file),
                                 "--cache-dir", str(tmp_path / "c"), "--device", "cuda"])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "bert_tiny: error: --device cuda: torch 2.x (CUDA 13.0) finds no usable GPU; leave "
        "--device out to run on the CPU"]
    assert not (tmp_path / "c").exists()


def test_onnxruntime_without_its_cuda_provider_offers_nothing_for_the_gpu(monkeypatch,
                                                                         simulated_gpu):
    """A GPU host with the CPU onnxruntime (stock PyTorch images): no CUDA candidate in auto's
    trial, and asked for by name, one line saying why."""
    import onnxruntime

    from common.run.offers import candidates_for
    from common.host.errors import UserError

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert ort_backend.offers("cuda", None).every == ()
    assert [str(c) for c in candidates_for("auto", "auto", None).candidates] == [
        "torch_compile fp16 on cuda", "torch_compile bf16 on cuda"]
    with pytest.raises(UserError, match=r"^onnxruntime builds nothing for --device cuda here \(its "
                                        r"CUDA provider needs onnxruntime-gpu; this onnxruntime "
                                        r"offers CPUExecutionProvider\); --backend torch_compile "
                                        r"builds for the GPU$"):
        candidates_for("onnxruntime", "cuda", None)
    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert [str(c) for c in candidates_for("auto", "auto", None).candidates] == [
        "onnxruntime fp16 on cuda", "onnxruntime fp32 on cuda", "torch_compile fp16 on cuda",
        "torch_compile bf16 on cuda"]


def test_fp16_build_has_half_weights_and_float_inputs_outputs(tiny_checkpoint, tmp_path):
    """The CUDA build's graph, made here without a GPU (running it needs one)."""
    import onnx

    checkpoint = load_checkpoint(str(tiny_checkpoint))
    encoded = tokenize(checkpoint.tokenizer, [s for s, _ in SENTENCES], 128)
    example = make_batches(encoded, batch_size=4).inputs[0]
    exported, fp16 = tmp_path / "exported.onnx", tmp_path / "fp16.onnx"
    export_onnx(checkpoint.model, example, exported)
    fused = ort_backend.fuse_bert(exported, fp16, checkpoint.model.config,
                                 BuildOptions(precision="fp16", device="cuda"))
    assert fused.get("Attention") == 2
    graph = onnx.load(str(fp16)).graph
    types = {t.data_type for t in graph.initializer if len(t.dims) == 2}
    assert types == {onnx.TensorProto.FLOAT16}
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_a_precision_onnxruntime_does_not_build_on_the_cpu_is_one_clear_line():
    from common.host.errors import UserError

    with pytest.raises(UserError, match=r"^onnxruntime builds fp32 on cpu, not bf16$"):
        ort_backend.build(None, None, options=BuildOptions(precision="bf16"), cache=None)
    ort_backend.offers("cpu", "static").check(  # INT8 builds on the CPU
        ort_backend.NAME, BuildOptions(precision="int8"))


def test_a_cuda_session_that_landed_on_the_cpu_is_refused_not_labelled_cuda(monkeypatch, tmp_path):
    """onnxruntime-gpu with a missing CUDA or cuDNN library quietly runs on the CPU provider: the
    providers the session really got are read back."""
    import onnxruntime

    from common.host.errors import UserError

    class SessionWithoutCuda:
        def __init__(self, path, options, providers):
            assert providers[0] == "CUDAExecutionProvider"

        def get_providers(self):
            return ["CPUExecutionProvider"]

    monkeypatch.setattr(onnxruntime, "InferenceSession", SessionWithoutCuda)
    with pytest.raises(UserError, match=r"^--device cuda: ONNX Runtime could not start its CUDA "
                                        r"provider .* would run on CPUExecutionProvider$"):
        ort_backend.make_session(tmp_path / "model.onnx", "cuda")
