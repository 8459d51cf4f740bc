"""The PyTorch-compiled backend and --device: forced on the CPU with inductor itself; on a GPU host
simulated (tests/conftest.py: torch "can use" CUDA, the build runs on the CPU), what auto offers,
runs, labels and reports; its cache key, input by input."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import bert_quantize
import bert_tiny
from common.run.offers import candidates_for
from common.backends import torch_compile as tc_backend
from common.backends.base import BuildOptions, Candidate
from common.inputs.batching import make_batches, tokenize
from common.builds.cache import BuildCache
from common.inputs.checkpoints import load_checkpoint
from common.run.offers import compared_floats
from common.run.proofpoint import main
from conftest import OPENVINO, SENTENCES, make_checkpoint, valid_results


def _run(spec, checkpoint, data, cache_dir, out, *extra):
    return main(spec, ["--model", str(checkpoint), "--dataset", str(data), "--cache-dir",
                       str(cache_dir), "--json", str(out), *extra])


@pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++")),
                    reason="inductor compiles its CPU kernels with a C++ compiler; none here")
def test_forced_on_the_cpu_it_compiles_with_inductor_agrees_and_reuses_inductors_cache(
        tiny_checkpoint, data_file, cache_dir, tmp_path, capsys):
    import torch

    torch._dynamo.reset()  # nothing this process compiled before is reused
    out = tmp_path / "tc.json"
    argv = ("--backend", "torch_compile", "--precision", "fp32", "--device", "cpu",
            "--batch-size", "5")
    assert _run(bert_tiny.SPEC, tiny_checkpoint, data_file, cache_dir, out, *argv) == 0
    reference, built = json.loads(out.read_text())["runs"]
    assert (built["name"], built["backend"], built["device"], built["precision"]) == (
        "torch_compile-fp32", "torch_compile", "cpu", "fp32")
    assert built["agreement"] == 1.0 and built["max_abs_logit_diff"] < 1e-4
    assert built["accuracy"] == reference["accuracy"]
    runtime = built["runtime"]
    assert (runtime["compiler"], runtime["torch_device"], runtime["cuda_graphs"]) == (
        "inductor", "cpu", False)
    # one graph for batches of any size and length, one for single sentences; no compile later
    assert runtime["graphs_compiled"] == 2
    # length-sorted batches of 5 (5, 5, 2) and single sentences, each padded to 16 or 32 tokens
    tokenizer = load_checkpoint(str(tiny_checkpoint)).tokenizer
    lengths = sorted(len(tokenizer(s)["input_ids"]) for s, _ in SENTENCES)
    buckets = [16 * -(-n // 16) for n in lengths]
    expected = {(1, b) for b in buckets} | {(len(buckets[i:i + 5]), max(buckets[i:i + 5]))
                                             for i in range(0, len(buckets), 5)}
    assert set(map(tuple, runtime["shapes"])) == expected and (1, 32) in expected
    assert built["cache_hit"] is False and built["build_facts"]["inductor_cache_found"] is False
    assert "backend: torch_compile fp32 (as --backend torch_compile --precision fp32 asks)" in \
        capsys.readouterr().err
    assert _run(bert_tiny.SPEC, tiny_checkpoint, data_file, cache_dir, out, *argv) == 0
    again = json.loads(out.read_text())["runs"][1]
    assert again["cache_hit"] is True and again["agreement"] == 1.0
    assert again["build_facts"]["build_folder"] == built["build_facts"]["build_folder"]
    assert "(cached)" in capsys.readouterr().out


def test_bf16_on_the_cpu_is_labelled_from_the_model_it_built(tiny_checkpoint, data_file, cache_dir,
                                                             tmp_path, quick_compile):
    out = tmp_path / "tc.json"
    assert _run(bert_tiny.SPEC, tiny_checkpoint, data_file, cache_dir, out, "--backend",
                "torch_compile", "--precision", "bf16", "--device", "cpu") == 0
    built = json.loads(out.read_text())["runs"][1]
    assert (built["name"], built["precision"]) == ("torch_compile-bf16", "bf16")
    assert built["runtime"]["weights_dtype"] == "bfloat16"
    assert built["runtime"]["compiler"] == "eager"


def test_auto_on_the_cpu_does_not_trial_it_and_naming_it_builds_fp32_and_bf16(no_gpu):
    assert not any(c.backend == "torch_compile" for c in candidates_for("auto", "auto", None).candidates)
    offer = candidates_for("torch_compile", "auto", None)
    assert [str(c) for c in offer.candidates] == ["torch_compile fp32", "torch_compile bf16"]
    assert offer.device == "cpu"
    from common.host.errors import UserError

    with pytest.raises(UserError, match=r"^--quantization static is not built by torch_compile "
                                        r"\(it builds no INT8\)"):
        candidates_for("torch_compile", "auto", "static")
    with pytest.raises(UserError, match=r"^torch_compile builds fp32 or bf16 on cpu, not fp16$"):
        tc_backend.build(None, None, options=BuildOptions(precision="fp16"), cache=None)


def test_on_a_gpu_host_auto_trials_fp16_and_bf16_on_the_gpu_and_says_so(
        tiny_checkpoint, data_file, cache_dir, tmp_path, capsys, simulated_gpu, quick_compile):
    out = tmp_path / "gpu.json"
    assert _run(bert_tiny.SPEC, tiny_checkpoint, data_file, cache_dir, out) == 0
    doc = valid_results(json.loads(out.read_text()))
    reference, built = doc["runs"]
    assert (reference["device"], reference["precision"]) == ("cpu", "fp32")  # always the CPU
    assert built["device"] == "cuda" and built["backend"] == "torch_compile"
    assert built["precision"] in ("fp16", "bf16") and built["agreement"] == 1.0
    trialled = {c["candidate"]: c for c in doc["choice"]["candidates"]}
    assert set(trialled) == {"torch_compile fp16 on cuda", "torch_compile bf16 on cuda"}
    assert {c["ran"] for c in trialled.values()} == {"torch_compile-fp16 on cuda",
                                                    "torch_compile-bf16 on cuda"}
    assert doc["environment"]["gpu"] == simulated_gpu
    captured = capsys.readouterr()
    assert f"backend: torch_compile {built['precision']} on cuda, " in captured.err
    assert captured.out.splitlines()[-1] == ("GPU: Simulated GPU, 80 GiB, compute capability "
                                             "9.0, driver 580.0, CUDA 13.0")
    # the decision holds for this GPU only: another GPU trials again, the same one reuses it
    assert _run(bert_tiny.SPEC, tiny_checkpoint, data_file, cache_dir, out) == 0
    assert json.loads(out.read_text())["choice"]["cached"] is True
    simulated_gpu["name"] = "Another GPU"
    assert _run(bert_tiny.SPEC, tiny_checkpoint, data_file, cache_dir, out) == 0
    assert json.loads(out.read_text())["choice"]["cached"] is False


def test_a_precision_auto_does_not_trial_on_the_gpu_is_built_there_when_named(simulated_gpu):
    assert [str(c) for c in candidates_for("auto", "auto", None, "fp32").candidates] == [
        "torch_compile fp32 on cuda"]
    assert [str(c) for c in candidates_for("auto", "auto", None, "bf16").candidates] == [
        "torch_compile bf16 on cuda"]


def test_device_cpu_on_a_gpu_host_builds_for_the_cpu(simulated_gpu):
    offer = candidates_for("auto", "cpu", None)
    assert offer.device == "cpu" and all(c.device == "cpu" for c in offer.candidates)
    assert not any(c.backend == "torch_compile" for c in offer.candidates)


def test_int8_on_a_gpu_host_runs_on_the_cpu_with_the_gpu_floats_timed_beside_it(simulated_gpu):
    offer = candidates_for("auto", "auto", "static")
    assert offer.device == "cuda" and offer.candidates
    assert all(c.precision == "int8" and c.device == "cpu" for c in offer.candidates)
    assert offer.note.endswith("no INT8 build for the GPU here: it runs on the CPU")
    compared = [str(c) for c in compared_floats(offer.candidates, offer.device)]
    assert compared[-2:] == ["torch_compile fp16 on cuda", "torch_compile bf16 on cuda"]
    assert "onnxruntime fp32" in compared
    # the GPU image's one INT8 build (no OpenVINO there) is timed beside them too, unless forced
    single = [Candidate("onnxruntime", "int8", "fp32")]
    assert [str(c) for c in compared_floats(single, "cuda")] == ["torch_compile fp16 on cuda",
                                                                 "torch_compile bf16 on cuda"]
    assert compared_floats(single, "cuda", forced=True) == []
    assert compared_floats(single, "cpu") == []
    from common.host.errors import UserError

    with pytest.raises(UserError, match=r"^no installed backend builds for --device cuda"):
        candidates_for("auto", "cuda", "static")


@pytest.mark.skipif(not OPENVINO, reason="two INT8 builds make a trial (OpenVINO and ONNX Runtime)")
def test_int8_trial_on_a_gpu_host_times_the_gpu_float_builds(tiny_checkpoint, data_file, train_file,
                                                            cache_dir, tmp_path, simulated_gpu,
                                                            quick_compile):
    out = tmp_path / "q.json"
    assert _run(bert_quantize.SPEC, tiny_checkpoint, data_file, cache_dir, out,
                "--calibration-dataset", str(train_file), "--calibration-samples", "20") == 0
    doc = json.loads(out.read_text())
    assert doc["runs"][1]["device"] == "cpu" and doc["runs"][1]["precision"].startswith("int8")
    on_gpu = [c for c in doc["choice"]["candidates"] if c["candidate"].endswith(" on cuda")]
    assert [c["candidate"] for c in on_gpu] == ["torch_compile fp16 on cuda",
                                                "torch_compile bf16 on cuda"]
    assert all(c["compared_only"] and c["sent_per_s"] > 0 for c in on_gpu)


def test_batches_are_padded_to_length_buckets_with_the_padding_masked():
    batch = {"input_ids": np.array([[2, 7, 3], [2, 3, 9]]), "attention_mask": np.array([[1, 1, 1], [1, 1, 0]]),
             "token_type_ids": np.array([[0, 0, 0], [0, 0, 0]])}
    padded = tc_backend.bucketed(batch, 16, 128, pad_id=9)
    assert padded["input_ids"].shape == (2, 16)
    assert padded["input_ids"][:, :3].tolist() == batch["input_ids"].tolist()
    assert (padded["input_ids"][:, 3:] == 9).all() and not padded["attention_mask"][:, 3:].any()
    assert padded["attention_mask"][:, :3].tolist() == batch["attention_mask"].tolist()
    assert tc_backend.bucketed(batch, 16, 10, 0)["input_ids"].shape == (2, 10)  # --max-length
    assert tc_backend.bucketed(batch, 3, 128, 0) is batch  # already a multiple


@pytest.fixture(scope="module")
def example(tiny_checkpoint):
    checkpoint = load_checkpoint(str(tiny_checkpoint))
    return checkpoint, make_batches(tokenize(checkpoint.tokenizer, [s for s, _ in SENTENCES], 128),
                                    4).inputs[0]


@pytest.mark.parametrize("change", ["precision", "device", "max_length", "compiler",
                                    "length_bucket", "dynamic", "cuda_graphs", "weights",
                                    "versions"])
def test_each_input_of_the_build_is_in_its_key(example, tmp_path, monkeypatch, simulated_gpu,
                                               quick_compile, change):
    """Its compiled code (inductor's cache folder) is reused for the same inputs, never for a
    changed one."""
    checkpoint, batch = example
    cache = BuildCache(tmp_path / "cache")
    base = BuildOptions(precision="bf16", device="cuda")  # bf16: built on the CPU too
    first = tc_backend.build(checkpoint, batch, options=base, cache=cache)
    folder = first.facts["build_folder"]
    (Path(folder) / "artefact").write_text("x")  # as an earlier run's compiled code
    assert tc_backend.build(checkpoint, batch, options=base, cache=cache).cache_hit is True
    options = base
    if change in ("precision", "device", "max_length"):
        options = BuildOptions(**{**base.__dict__, change: {"precision": "fp16", "device": "cpu",
                                                            "max_length": 64}[change]})
    elif change in tc_backend.FLOAT_RECIPE:
        value = {"compiler": "aot_eager", "length_bucket": 8, "dynamic": False,
                 "cuda_graphs": False}[change]
        options = BuildOptions(precision="bf16", device="cuda", recipe=((change, value),))
    elif change == "weights":
        checkpoint = load_checkpoint(str(make_checkpoint(tmp_path / "other", seed=1)))
    else:
        monkeypatch.setattr(tc_backend, "library_versions", lambda: {"torch": "0.0"})
    changed = tc_backend.build(checkpoint, batch, options=options, cache=cache)
    assert changed.facts["build_folder"] != folder and changed.cache_hit is False


def test_the_cpu_its_kernels_are_compiled_for_is_in_its_key(example, tmp_path, monkeypatch,
                                                             quick_compile):
    """On the CPU, inductor's C++ kernels are compiled for the CPU's instruction sets: another
    CPU model or set of matrix flags compiles again, the same one reuses."""
    import common.host.cpu

    checkpoint, batch = example
    cache = BuildCache(tmp_path / "cache")
    host = {"model": "CPU A", "family": "family 6 model 143", "logical_cpus": 2,
            "flags": ["avx2", "avx512f"]}
    monkeypatch.setattr(common.host.cpu, "cpu_info", lambda: dict(host))
    first = tc_backend.build(checkpoint, batch, options=BuildOptions(), cache=cache)
    folder = first.facts["build_folder"]
    (Path(folder) / "artefact").write_text("x")  # as an earlier run's compiled code
    assert tc_backend.build(checkpoint, batch, options=BuildOptions(), cache=cache).cache_hit
    for field, value in (("model", "CPU B"), ("flags", ["avx2", "avx512f", "amx_bf16"])):
        monkeypatch.setattr(common.host.cpu, "cpu_info", lambda: {**host, field: value})
        changed = tc_backend.build(checkpoint, batch, options=BuildOptions(), cache=cache)
        assert changed.facts["build_folder"] != folder and changed.cache_hit is False, field


def test_each_runner_counts_the_graphs_compiled_for_it_alone(example, tmp_path, quick_compile):
    """Builds compiled between a runner's calls (a trial's) are not counted as its own."""
    import torch

    torch._dynamo.reset()  # compiled earlier in this process, a graph for this model is reused
    checkpoint, batch = example
    cache = BuildCache(tmp_path / "cache")
    first = tc_backend.build(checkpoint, batch, options=BuildOptions(), cache=cache)
    second = tc_backend.build(checkpoint, batch, options=BuildOptions(precision="bf16"), cache=cache)
    first(batch)
    second(batch)
    assert first.runtime["graphs_compiled"] == second.runtime["graphs_compiled"] == 2
