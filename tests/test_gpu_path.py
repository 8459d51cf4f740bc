"""The GPU path as our GPU machine meets it: bench/gpu.sh on that image's packages, failures that
leave the run standing, timing that a GPU's milliseconds cannot fool, keys that hold the GPU. Run
here with the GPU simulated (conftest) or absent; the tests marked `gpu` need a real one
(`pytest -m gpu`, part of the device check)."""
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

import bert_tiny
from common.run import evaluate, trial
from common.host import gpu
from common.backends import torch_compile as tc_backend
from common.backends.base import BuildOptions, Runner
from common.inputs.batching import Encoded, make_batches, tokenize
from common.builds.cache import BuildCache
from common.inputs.checkpoints import load_checkpoint
from common.host.errors import root_cause
from common.run.proofpoint import main
from conftest import ROOT, SENTENCES, make_checkpoint, valid_results

# What our GPU machine's image lacks (../shared/device/README.md): these packages, and `python`
IMAGE_LACKS = ("openvino", "nncf", "datasets")
GPU_SH_TOOLS = ("bash", "timeout", "mktemp", "rm", "mkdir", "tee", "dirname", "git")


@pytest.fixture(scope="module")
def gpu_image(tmp_path_factory) -> dict:
    """An environment like the GPU image's: a virtual environment that sees this one's packages
    but those the image lacks (a folder of links to each but them), and a PATH with `python3`
    (no `python`) and the tools bench/gpu.sh calls."""
    root = tmp_path_factory.mktemp("gpu-image")
    packages = root / "packages"
    packages.mkdir()
    site_packages = Path(sysconfig.get_paths()["purelib"])
    for entry in site_packages.iterdir():
        if not entry.name.lower().startswith(IMAGE_LACKS):
            (packages / entry.name).symlink_to(entry)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    venv_site = next((root / "venv" / "lib").glob("python3*/site-packages"))
    (venv_site / "image.pth").write_text(f"import site; site.addsitedir({str(packages)!r})\n")
    bin_dir = root / "bin"
    bin_dir.mkdir()
    python3 = bin_dir / "python3"  # a link would not find the environment's pyvenv.cfg
    python3.write_text(f'#!/bin/sh\nexec {root / "venv" / "bin" / "python3"} "$@"\n')
    python3.chmod(0o755)
    for tool in GPU_SH_TOOLS:
        (bin_dir / tool).symlink_to(shutil.which(tool))
    return {**os.environ, "PATH": str(bin_dir)}


def test_the_gpu_image_lacks_what_ours_lacks(gpu_image):
    probe = ("import importlib.util as u; print([n for n in ('openvino', 'nncf', 'datasets', "
             "'torch', 'transformers', 'onnxruntime') if u.find_spec(n)])")
    done = subprocess.run(["python3", "-c", probe], env=gpu_image, capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "['torch', 'transformers', 'onnxruntime']"
    assert shutil.which("python", path=gpu_image["PATH"]) is None


def test_the_device_checks_tests_collect_on_the_gpu_image(gpu_image):
    """`pytest -m gpu` on the GPU test file, as the device check runs it: here, without a GPU,
    each is skipped, saying so."""
    done = subprocess.run(["python3", "-m", "pytest", "-q", "-rs", "-m", "gpu",
                           "tests/test_gpu_path.py", "-p", "no:cacheprovider"], cwd=ROOT,
                          env=gpu_image, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    assert re.search(r"^2 skipped, \d+ deselected", done.stdout.splitlines()[-1]), done.stdout
    assert done.stdout.count("needs a CUDA GPU") == 2


def test_bench_gpu_sh_runs_every_step_on_the_gpu_image_within_its_budget(gpu_image, tmp_path):
    """Every step ends with its JSON; the GPU runners are skipped here, saying so; nothing the
    script runs imports a package the image lacks."""
    model = make_checkpoint(tmp_path / "stand-in")
    out = tmp_path / "out"
    done = subprocess.run(["bash", "bench/gpu.sh", str(model), str(out)], cwd=ROOT,
                          env={**gpu_image, "GPU_CHECK_LIMIT": "24"}, capture_output=True,
                          text=True, timeout=900)
    log = (out / "log.txt").read_text()
    assert done.returncode == 0, log[-3000:]
    steps = re.findall(r"^== (\S+) \((\d+) s at most\): ", log, flags=re.M)
    ends = dict(re.findall(r"^== (\S+): exit (\d+) after \d+ s$", log, flags=re.M))
    names = ["tiny", "base", "speed-base-32", "speed-base-256", "variants-minilm", "quantize"]
    assert [name for name, _ in steps] == names
    assert sum(int(limit) for _, limit in steps) <= 360
    assert ends == {name: "0" for name in names}, log[-3000:]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["log.txt", "tiny.json", "base.json", "quantize.json", "speed-base-32.json",
         "speed-base-256.json", "variants-minilm.json"])
    for name in ("tiny", "base", "quantize"):
        document = valid_results(json.loads((out / f"{name}.json").read_text()))
        assert document["samples"] == 24 and document["environment"]["gpu"] is None
    for runner in ("pytorch-fp16-cuda", "torch_compile-fp16-cuda",
                   "torch_compile-fp16-cuda-static", "torch_compile-fp16-cuda-no-graphs",
                   "torch_compile-fp16-cuda-unbucketed"):
        assert re.search(rf"^{runner}: skipped, .*(finds no usable GPU|without CUDA)", log,
                         flags=re.M), runner
    speed = json.loads((out / "speed-base-32.json").read_text())
    assert [r["runner"] for r in speed["rows"]] == ["pytorch-eager"]
    assert speed["sentences"] == "SST-2 validation (bundled, first 24)"
    assert json.loads((out / "speed-base-256.json").read_text())["rows"] == []
    assert "ModuleNotFoundError" not in log and "Traceback" not in log


class BackendCompilerFailed(Exception):
    """As torch._dynamo.exc's: its message's first line says nothing, the cause is inside."""

    def __init__(self, inner: Exception):
        super().__init__("backend='inductor' raised:\n" + str(inner))
        self.inner_exception = inner


def test_the_cause_of_a_wrapped_failure_is_the_innermost_one():
    try:
        try:
            raise RuntimeError("Triton: bf16 is not supported on sm_75\n(more lines)")
        except RuntimeError as exc:
            raise ValueError("lowering failed") from exc
    except ValueError as exc:
        wrapped = BackendCompilerFailed(exc)
    assert root_cause(wrapped) == "RuntimeError: Triton: bf16 is not supported on sm_75"
    assert root_cause(KeyError("x")) == "KeyError: 'x'"


def _run(checkpoint, data, cache_dir, out, *extra):
    return main(bert_tiny.SPEC, ["--model", str(checkpoint), "--dataset", str(data),
                                 "--cache-dir", str(cache_dir), "--json", str(out), *extra])


def _failing_on(monkeypatch, precisions, stage="build"):
    """torch_compile's builds of `precisions` fail as inductor does: at build, or on their first
    call after it."""
    real = tc_backend.build

    def build(checkpoint, example, *, options, cache, calibration=None):
        if options.precision in precisions and stage == "build":
            raise BackendCompilerFailed(RuntimeError(f"no {options.precision} kernels here"))
        runner = real(checkpoint, example, options=options, cache=cache, calibration=calibration)
        if options.precision in precisions:
            def predict(batch):
                raise BackendCompilerFailed(RuntimeError("CUDA error: an illegal memory access"))
            runner.predict = predict
        return runner

    monkeypatch.setattr(tc_backend, "build", build)


@pytest.mark.parametrize("stage", ["build", "run"])
def test_a_gpu_candidate_that_fails_is_dropped_with_its_cause_and_the_run_goes_on(
        tiny_checkpoint, data_file, cache_dir, tmp_path, capsys, simulated_gpu, quick_compile,
        monkeypatch, stage):
    """The simulated GPU's builds run on this CPU, where fp16 can be very slow: fp16 is the one
    that fails, and no build is dropped for its speed (its first pass may take a minute)."""
    monkeypatch.setattr(trial, "FIRST_PASS_FLOOR_S", 60.0)
    _failing_on(monkeypatch, {"fp16"}, stage)
    out = tmp_path / "gpu.json"
    assert _run(tiny_checkpoint, data_file, cache_dir, out) == 0
    doc = json.loads(out.read_text())
    assert doc["runs"][1]["name"] == "torch_compile-bf16" and doc["runs"][1]["device"] == "cuda"
    fp16 = next(c for c in doc["choice"]["candidates"] if c["precision"] == "fp16")
    cause = ("RuntimeError: no fp16 kernels here" if stage == "build"
             else "RuntimeError: CUDA error: an illegal memory access")
    assert fp16["failed"] is True and fp16["dropped"] == f"failed to {stage}: {cause}"
    err = capsys.readouterr().err
    assert f"torch_compile fp16 on cuda: failed to {stage}: {cause}; the trial goes on without " \
           "it" in err
    assert "; failed: torch_compile" in err and "backend='inductor' raised" not in err


def test_when_every_gpu_build_fails_the_cpus_builds_run(tiny_checkpoint, data_file, cache_dir,
                                                        tmp_path, capsys, simulated_gpu,
                                                        quick_compile, monkeypatch):
    _failing_on(monkeypatch, {"fp16", "bf16"})
    out = tmp_path / "gpu.json"
    assert _run(tiny_checkpoint, data_file, cache_dir, out) == 0
    built = json.loads(out.read_text())["runs"][1]
    assert built["device"] == "cpu" and built["backend"] in ("onnxruntime", "openvino")
    assert built["agreement"] == 1.0
    err = capsys.readouterr().err
    assert re.search(r"^no build could be timed against PyTorch \(torch_compile fp16 on cuda: "
                     r"failed to build: RuntimeError: no fp16 kernels here; torch_compile bf16 on "
                     r"cuda: failed to build: RuntimeError: no bf16 kernels here\); the CPU's "
                     r"builds instead: .*onnxruntime fp32", err, flags=re.M), err


def test_a_forced_gpu_build_that_fails_is_one_line_with_its_cause(
        tiny_checkpoint, data_file, cache_dir, tmp_path, capsys, simulated_gpu, quick_compile,
        monkeypatch):
    def warm(self, host, tensors):  # inductor failing on the build's first shape
        raise BackendCompilerFailed(RuntimeError("ptxas fatal: unsupported GPU architecture"))

    monkeypatch.setattr(tc_backend.CompiledModel, "_warm", warm)
    code = _run(tiny_checkpoint, data_file, cache_dir, tmp_path / "x.json", "--device", "cuda",
                "--backend", "torch_compile", "--precision", "fp16")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not (tmp_path / "x.json").exists()
    assert err[-1] == ("bert_tiny: error: torch.compile could not build "
                       "BertForSequenceClassification for cuda fp16 (RuntimeError: ptxas fatal: "
                       "unsupported GPU architecture)")


def test_bf16_is_offered_only_where_the_gpu_has_it_natively(simulated_gpu, monkeypatch):
    import torch

    assert [c.precision for c in tc_backend.offers("cuda", None).trialled] == ["fp16", "bf16"]
    monkeypatch.setattr(gpu, "native_bf16", lambda: False)  # a T4, a V100: emulated at most
    assert [c.precision for c in tc_backend.offers("cuda", None).trialled] == ["fp16"]
    monkeypatch.undo()
    # what torch is asked: its default counts emulation
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True:
                        including_emulation)
    assert gpu.native_bf16() is False


@pytest.fixture
def example():
    checkpoint = load_checkpoint(str(ROOT / "models/bert-tiny-sst2"))
    batch = make_batches(tokenize(checkpoint.tokenizer, [s for s, _ in SENTENCES], 128), 4)
    return checkpoint, batch.inputs[0]


@pytest.mark.parametrize("change", ["gpu name", "compute capability", "triton"])
def test_the_gpu_and_tritons_version_are_in_the_build_key(example, tmp_path, monkeypatch,
                                                          simulated_gpu, quick_compile, change):
    checkpoint, batch = example
    cache = BuildCache(tmp_path / "cache")
    options = BuildOptions(precision="fp16", device="cuda")
    first = tc_backend.build(checkpoint, batch, options=options, cache=cache)
    (Path(first.facts["build_folder"]) / "artefact").write_text("x")
    assert tc_backend.build(checkpoint, batch, options=options, cache=cache).cache_hit is True
    if change == "triton":
        versions = tc_backend.library_versions()
        monkeypatch.setattr(tc_backend, "library_versions",
                            lambda: {**versions, "triton": "9.9.9"})
    else:
        field = {"gpu name": "name", "compute capability": "compute_capability"}[change]
        other = {**simulated_gpu, field: {"name": "NVIDIA T4", "compute_capability": "7.5"}[field]}
        monkeypatch.setattr(gpu, "gpu_info", lambda: other)
    changed = tc_backend.build(checkpoint, batch, options=options, cache=cache)
    assert changed.cache_hit is False
    assert changed.facts["build_folder"] != first.facts["build_folder"]


def test_tritons_cache_is_each_builds_own_whenever_it_compiles(example, tmp_path, simulated_gpu,
                                                               quick_compile):
    checkpoint, batch = example
    cache = BuildCache(tmp_path / "cache")
    first = tc_backend.build(checkpoint, batch, options=BuildOptions(precision="fp16",
                                                                     device="cuda"), cache=cache)
    second = tc_backend.build(checkpoint, batch, options=BuildOptions(precision="bf16",
                                                                      device="cuda"), cache=cache)
    assert os.environ["TRITON_CACHE_DIR"] == str(Path(second.facts["build_folder"]) / "triton")
    longer = {name: np.concatenate([array] * 8, axis=1) for name, array in batch.items()}
    assert longer["input_ids"].shape[1] > 16  # past the example's bucket
    first(longer)  # a new shape of the first build: compiled into its own folder
    assert os.environ["TRITON_CACHE_DIR"] == str(Path(first.facts["build_folder"]) / "triton")
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == first.facts["build_folder"]


def test_a_batch_as_wide_as_it_is_long_does_not_tie_the_shapes(example, tmp_path, quick_compile):
    """Without duck sizing off, a first batch of 16 sentences padded to 16 tokens makes one
    symbol of both, and the next batch of another size compiles again."""
    import torch

    torch._dynamo.reset()
    checkpoint, _ = example
    square = {"input_ids": np.full((16, 16), 1000, np.int64),
              "attention_mask": np.ones((16, 16), np.int64),
              "token_type_ids": np.zeros((16, 16), np.int64)}
    runner = tc_backend.build(checkpoint, square, options=BuildOptions(),
                              cache=BuildCache(tmp_path / "cache"))
    assert runner.runtime["graphs_compiled"] == 2  # batches, and single sentences
    runner({name: array[:5] for name, array in square.items()})
    runner({name: np.concatenate([array] * 2, axis=1)[:7] for name, array in square.items()})
    assert runner.runtime["graphs_compiled"] == 2


def test_inputs_are_staged_once_per_batch_and_copied_once_per_call():
    import torch

    staged = tc_backend.StagedInputs(("input_ids", "attention_mask"), torch.device("cpu"),
                                     bucket=8, limit=128, pad_id=7)
    batch = {"input_ids": np.array([[2, 5, 3]]), "attention_mask": np.array([[1, 1, 1]])}
    host = staged.host(batch)
    assert host.shape == (2, 1, 8) and host[0, 0].tolist() == [2, 5, 3, 7, 7, 7, 7, 7]
    assert staged.host(batch) is host  # the same batch again: no host work
    same_values = {name: array.copy() for name, array in batch.items()}
    assert staged.host(same_values) is not host
    ids, mask = staged.on_device(host)
    assert mask[0].tolist() == [1, 1, 1, 0, 0, 0, 0, 0] and ids.shape == (1, 8)


class Clock:
    """Seconds the test decides: each call of a stand-in runner advances it."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _stand_in(device: str, clock: Clock, seconds_a_batch: float, calls: list) -> Runner:
    def predict(batch):
        calls.append((clock.now, batch["input_ids"].shape))
        clock.now += seconds_a_batch
        return np.zeros((len(batch["input_ids"]), 2), np.float32)

    return Runner(name=f"stand-in-{device}", backend="standin", device=device, precision="fp32",
                  predict=predict)


def _batches(sentences: int, batch_size: int = 4):
    ids = [np.array([101] + [1000 + i] * (1 + i % 9) + [102], np.int64) for i in range(sentences)]
    return make_batches(Encoded(ids=ids, type_ids=[np.zeros_like(x) for x in ids], max_length=16,
                                pad_id=0), batch_size)


def test_a_gpu_round_repeats_its_pass_for_at_least_the_floor(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(evaluate, "clock", clock)
    batches = _batches(8)  # two batches a pass
    gpu_calls, cpu_calls = [], []
    on_gpu = _stand_in("cuda", clock, 0.03, gpu_calls)  # 0.06 s a pass: 17 passes fill 1 s
    on_cpu = _stand_in("cpu", clock, 0.5, cpu_calls)
    gpu_timing, cpu_timing = evaluate.measure([(on_gpu, batches, None), (on_cpu, batches, None)],
                                              8, rounds=2)
    assert gpu_timing.passes == [17, 17] and cpu_timing.passes == [1, 1]
    assert gpu_timing.round_seconds == pytest.approx([0.06, 0.06])
    assert cpu_timing.round_seconds == pytest.approx([1.0, 1.0])
    assert len(gpu_calls) == 2 * 17 * 2 and len(cpu_calls) == 2 * 2
    entry = evaluate.run_metrics(evaluate.Evaluation(on_gpu, np.zeros((8, 2), np.float32), 0.1),
                                 gpu_timing, np.zeros(8, np.int64), "reference")
    assert entry["passes_per_round"] == [17, 17]
    assert entry["throughput"]["median"] == pytest.approx(8 / 0.06)


def test_every_shape_a_timed_pass_meets_is_warmed_before_timing(monkeypatch, simulated_gpu):
    """A slow reference times a subset of the sentences: its batches are shapes the accuracy pass
    never met, and each is called once before the first timed round."""
    clock = Clock()
    monkeypatch.setattr(evaluate, "clock", clock)
    monkeypatch.setattr(evaluate, "TIMING_BUDGET_S", 1.0)
    batches = _batches(40)
    reference_calls, built_calls = [], []
    reference = _stand_in("cpu", clock, 0.0, reference_calls)
    built = _stand_in("cuda", clock, 0.01, built_calls)
    evaluations = [evaluate.evaluate(runner, batches) for runner in (reference, built)]
    # the reference took 0.1 s a sentence: 10 sentences are timed
    evaluations[0] = evaluate.Evaluation(reference, evaluations[0].logits, 4.0,
                                         shapes=evaluations[0].shapes)
    started = {}
    real_measure = evaluate.measure

    def measure(runs, *args, **kwargs):
        started["at"] = len(built_calls)
        return real_measure(runs, *args, **kwargs)

    monkeypatch.setattr(evaluate, "measure", measure)
    ids = [np.array([101] + [1000 + i] * (1 + i % 9) + [102], np.int64) for i in range(40)]
    encoded = Encoded(ids=ids, type_ids=[np.zeros_like(x) for x in ids], max_length=16, pad_id=0)
    _, timed = evaluate.time_both(evaluations[0], evaluations[1], encoded, 4, 1, False)
    assert timed["sentences"] == 10
    before = {shape for _, shape in built_calls[:started["at"]]}
    # the timed rounds' batches (batch-1 latency warms each of its sentences itself)
    during = {shape for _, shape in built_calls[started["at"]:] if shape[0] > 1}
    assert during - before == set() and not during <= evaluations[1].shapes


@pytest.mark.gpu
def test_on_a_real_gpu_the_compiled_build_agrees_and_reports_its_memory(tiny_checkpoint,
                                                                        data_file, tmp_path):
    out = tmp_path / "gpu.json"
    assert _run(tiny_checkpoint, data_file, tmp_path / "cache", out) == 0
    doc = json.loads(out.read_text())  # the GPU image has no jsonschema to validate it with
    built = doc["runs"][1]
    assert built["device"] == "cuda" and built["agreement"] == 1.0
    assert built["runtime"]["torch_device"].startswith("cuda")
    assert built["runtime"]["gpu_peak_reserved_bytes"] >= built["runtime"][
        "gpu_peak_allocated_bytes"] > 0
    assert all(passes >= 1 for passes in built["passes_per_round"])
    assert doc["environment"]["gpu"]["name"] == gpu.gpu_info()["name"]


@pytest.mark.gpu
def test_on_a_real_gpu_the_bench_measures_eager_and_compiled(tmp_path):
    out = tmp_path / "speed.json"
    done = subprocess.run([sys.executable, "-m", "bench", "speed", "--models", "tiny", "--limit",
                           "64", "--rounds", "2", "--runners",
                           "pytorch-eager,pytorch-fp16-cuda,torch_compile-fp16-cuda",
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {r["runner"]: r for r in json.loads(out.read_text())["rows"]}
    for name in ("pytorch-fp16-cuda", "torch_compile-fp16-cuda"):
        row = rows[name]
        assert row["device"] == "cuda" and row["runtime"]["gpu_peak_allocated_bytes"] > 0
        passes, seconds = row["passes_per_round"], row["round_seconds"]
        assert all(n * s >= evaluate.GPU_ROUND_FLOOR_S for n, s in zip(passes, seconds))
