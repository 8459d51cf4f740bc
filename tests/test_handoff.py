"""Build here, execute there (`--build`, `--execute`): a build made on one simulated host, its
cache folder copied to another path, executed on another simulated host, builds nothing there and
answers as a one-machine run does; what cannot be executed is one line and nothing written."""
import json
import shutil

import numpy as np
import pytest

import bert_quantize
import bert_tiny
import common.host.cpu
import onnxruntime
from common.inputs import calibration as calibration_module
from common.backends import export
from common.run import proofpoint
from common.backends import onnxruntime as ort_backend
from common.run.proofpoint import main
from conftest import OV, make_checkpoint, requires_openvino, valid_results

HOSTS = {"A": {"model": "Build Host CPU", "family": "family 6 model 143", "logical_cpus": 2,
               "flags": ["avx2", "avx512f", "amx_bf16", "amx_int8"]},
         "B": {"model": "Target Host CPU", "family": "family 25 model 17", "logical_cpus": 2,
               "flags": ["avx2", "avx512f"]}}


def on_host(monkeypatch, name: str) -> None:
    """Every module that asks which CPU this is hears `name`'s."""
    monkeypatch.setattr(common.host.cpu, "cpu_info", lambda: dict(HOSTS[name]))


def nothing_built(monkeypatch) -> None:
    """No export, no calibration draw, no quantization, no reference-free shortcut: each fails
    the test if --execute calls it."""
    def called(*args, **kwargs):
        raise AssertionError("--execute built something")

    monkeypatch.setattr(export, "export_onnx", called)
    monkeypatch.setattr(export, "export_logits", called)
    monkeypatch.setattr(proofpoint, "draw_calibration", called)
    monkeypatch.setattr(calibration_module, "draw_calibration", called)
    from common.backends import ort_quantize

    monkeypatch.setattr(ort_quantize, "quantize_static_int8", called)
    monkeypatch.setattr(ort_quantize, "agreeing_static_int8", called)


def _main(spec, checkpoint, data, cache, *extra):
    return main(spec, ["--model", str(checkpoint), "--dataset", str(data), "--cache-dir",
                       str(cache), "--repeats", "1", *extra])


CASES = {"onnxruntime fp32": (bert_tiny.SPEC, ("--backend", "onnxruntime")),
         "onnxruntime int8": (bert_quantize.SPEC, ("--backend", "onnxruntime",
                                                   "--calibration-samples", "20")),
         "openvino fp32": (bert_tiny.SPEC, ("--backend", "openvino", "--precision", "fp32"))}


@pytest.mark.parametrize("case", ["onnxruntime fp32", "onnxruntime int8",
                                  pytest.param("openvino fp32", marks=OV.marks)])
def test_built_on_one_host_executed_on_another_answers_as_one_machine_does(
        tiny_checkpoint, data_file, train_file, tmp_path, monkeypatch, capsys, case):
    spec, flags = CASES[case]
    flags = (*flags, "--calibration-dataset", str(train_file)) if spec.quantize else flags
    one_machine = tmp_path / "one.json"
    assert _main(spec, tiny_checkpoint, data_file, tmp_path / "one", *flags, "--json",
                 str(one_machine)) == 0
    on_host(monkeypatch, "A")
    capsys.readouterr()
    assert _main(spec, tiny_checkpoint, data_file, tmp_path / "built", *flags, "--build") == 0
    out, err = capsys.readouterr()
    assert "runner " not in out and "eval pytorch" not in err  # no reference, no table
    assert "then there: python " in out and " --execute " in out
    assert not list(tmp_path.glob("*.json")) or list(tmp_path.glob("*.json")) == [one_machine]
    shutil.copytree(tmp_path / "built", tmp_path / "elsewhere")
    shutil.rmtree(tmp_path / "built")  # nothing points back at where it was built
    on_host(monkeypatch, "B")
    nothing_built(monkeypatch)
    executed = tmp_path / "executed.json"
    assert _main(spec, tiny_checkpoint, data_file, tmp_path / "elsewhere", *flags, "--execute",
                 "--json", str(executed)) == 0
    doc = valid_results(json.loads(executed.read_text()))
    there, here = json.loads(one_machine.read_text())["runs"][1], doc["runs"][1]
    for key in ("name", "precision", "accuracy", "agreement", "max_abs_logit_diff"):
        assert here[key] == there[key], key
    assert here["cache_hit"] is True
    assert doc["build"]["built_on"]["cpu"] == "Build Host CPU"
    assert doc["build"]["executed_on"]["cpu"] == "Target Host CPU"
    assert doc["build"]["loaded"] and all(not p.startswith("/") for p in doc["build"]["loaded"])
    assert any(n.startswith("--execute: built on Build Host CPU (family 6 model 143), executed "
                            "on Target Host CPU") for n in doc["notes"])


def test_auto_builds_every_candidate_and_trials_them_where_it_executes(
        tiny_checkpoint, data_file, tmp_path, monkeypatch, capsys):
    on_host(monkeypatch, "A")
    assert _main(bert_tiny.SPEC, tiny_checkpoint, data_file, tmp_path / "c", "--build") == 0
    out = capsys.readouterr().out
    built = [line for line in out.splitlines() if line.startswith("built ")]
    on_host(monkeypatch, "B")
    nothing_built(monkeypatch)
    executed = tmp_path / "x.json"
    assert _main(bert_tiny.SPEC, tiny_checkpoint, data_file, tmp_path / "c", "--execute",
                 "--json", str(executed)) == 0
    choice = json.loads(executed.read_text())["choice"]
    offered = [c for c in choice["candidates"] if "not_built" not in c]
    assert len(offered) == len(built) >= 1
    if len(offered) > 1:  # decided by a trial on this host, not carried from the build's
        assert choice["trial"] is True and choice["cached"] is False
        assert choice["host"]["cpu"] == "Target Host CPU"


def test_execute_without_a_build_is_one_line_naming_the_command_that_makes_it(
        tiny_checkpoint, data_file, tmp_path, capsys):
    out = tmp_path / "x.json"
    assert _main(bert_tiny.SPEC, tiny_checkpoint, data_file, tmp_path / "empty", "--backend",
                 "onnxruntime", "--execute", "--json", str(out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"bert_tiny: error: --execute: no build of bert_tiny.py for "
                              f"{tiny_checkpoint} in '{tmp_path / 'empty'}'; make it with: python "
                              f"bert_tiny.py --build --model {tiny_checkpoint} ")
    assert "--json" not in err[-1] and err[-1].endswith(
        "--backend onnxruntime (on any machine, then copy that cache folder here)")
    assert not out.exists()


def test_execute_with_another_model_or_other_versions_is_one_line(
        tiny_checkpoint, data_file, tmp_path, capsys, monkeypatch):
    cache = tmp_path / "c"
    assert _main(bert_tiny.SPEC, tiny_checkpoint, data_file, cache, "--backend", "onnxruntime",
                 "--build") == 0
    other = make_checkpoint(tmp_path / "other", seed=1)
    out = tmp_path / "x.json"
    capsys.readouterr()
    assert _main(bert_tiny.SPEC, other, data_file, cache, "--backend", "onnxruntime",
                 "--execute", "--json", str(out)) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("bert_tiny: error: --execute: the builds of bert_tiny.py in "
                          f"'{cache}' were made for another model (bert_tiny.py --model "
                          f"{tiny_checkpoint} ") and f", not for {other}; " in err
    versions = ort_backend.library_versions()
    monkeypatch.setattr(ort_backend, "library_versions",
                        lambda: {**versions, "onnxruntime": "0.0.1"})
    assert _main(bert_tiny.SPEC, tiny_checkpoint, data_file, cache, "--backend", "onnxruntime",
                 "--execute", "--json", str(out)) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "bert_tiny: error: --execute: the builds were made with other library versions "
        f"(onnxruntime {onnxruntime.__version__} there, 0.0.1 here); make them here with "
        "--build, or install those")
    assert not out.exists()


@pytest.mark.parametrize("flags, said", [
    (("--build", "--json", "x.json"), "--build evaluates nothing and writes no results: drop "
                                      "--json and --mismatches (they are --execute's)"),
    (("--execute", "--rebuild", "always"), "--execute never builds: drop --rebuild always")])
def test_what_a_stage_does_not_do_is_refused(tiny_checkpoint, data_file, tmp_path, capsys, flags,
                                             said):
    assert _main(bert_tiny.SPEC, tiny_checkpoint, data_file, tmp_path / "c", *flags) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"bert_tiny: error: {said}"


def test_build_and_execute_are_one_or_the_other(capsys):
    with pytest.raises(SystemExit):
        main(bert_tiny.SPEC, ["--build", "--execute"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_a_min_agreement_build_on_another_cpu_keeps_its_layers_and_scores_its_slice_there(
        tiny_checkpoint, data_file, train_file, tmp_path, monkeypatch):
    """The layers its search chose are the build's (nothing searched or quantized on the
    executing host); its validation slice, as --build drew it, is scored again there. The
    arithmetic of both simulated hosts is this machine's, so the slice agrees there as the search
    saw it; on the build's own CPU it is not scored again."""
    flags = ("--backend", "onnxruntime", "--calibration-dataset", str(train_file),
             "--calibration-samples", "20", "--min-agreement", "0.9", "--validation-samples", "30")
    on_host(monkeypatch, "A")
    assert _main(bert_quantize.SPEC, tiny_checkpoint, data_file, tmp_path / "c", *flags,
                 "--build") == 0
    shutil.move(tmp_path / "c", tmp_path / "copied")
    nothing_built(monkeypatch)
    on_host(monkeypatch, "B")
    out = tmp_path / "x.json"
    assert _main(bert_quantize.SPEC, tiny_checkpoint, data_file, tmp_path / "copied", *flags,
                 "--execute", "--json", str(out)) == 0
    doc = valid_results(json.loads(out.read_text()))
    searched = doc["runs"][1]["build_facts"]["accuracy_control"]
    here = doc["build"]["slice_here"]
    assert here["scored_on"]["cpu"] == "Target Host CPU" and here["validation_sentences"] == 30
    assert here["agreement"] == searched["agreement"]
    assert any(n.startswith("--min-agreement 0.9 on this CPU: the 30-sentence validation slice "
                            f"agreed {here['agreement']:.4f} with PyTorch fp32") for n in doc["notes"])
    on_host(monkeypatch, "A")
    assert _main(bert_quantize.SPEC, tiny_checkpoint, data_file, tmp_path / "copied", *flags,
                 "--execute", "--json", str(out)) == 0
    assert "slice_here" not in json.loads(out.read_text())["build"]


@pytest.mark.parametrize("target, reached", [(0.5, True), (0.9, False)])
def test_a_slice_scored_again_says_when_it_falls_short_there(monkeypatch, target, reached):
    """27 of 30 slice sentences answer as PyTorch does on the executing CPU: a 0.9 target is
    short there (its lower bound is under 0.9), a 0.5 target is reached."""
    from common.run import handoff
    from common.backends.base import Runner
    from common.inputs.batching import Encoded

    def predicting(wrong_below: int):  # class 1, but class 0 for sentences numbered below
        return lambda batch: np.stack([(batch["input_ids"][:, 1] >= wrong_below),
                                       (batch["input_ids"][:, 1] < wrong_below)], 1).astype("f4")

    slice_ = Encoded(ids=[np.asarray([101, 1000 + i, 102]) for i in range(30)],
                     type_ids=[np.zeros(3, dtype=np.int64)] * 30, max_length=8, pad_id=0)
    on_host(monkeypatch, "A")
    manifest = {"built_on": handoff.host(), "command": [], "calibration": None}
    calibration = handoff.RecordedCalibration(source="t", seed=0, indices=np.arange(2),
                                              encoded=slice_, requested=2, validation=slice_,
                                              built_on=manifest["built_on"])
    control = {"agreement_lower_bound": 0.95}
    built = Runner(name="onnxruntime-int8", backend="onnxruntime", device="cpu",
                   precision="int8", predict=predicting(1003),
                   facts={"accuracy_control": control})
    reference = Runner(name="pytorch", backend="pytorch", device="cpu", precision="fp32",
                       predict=predicting(1000))
    assert handoff.slice_here(built, reference, calibration, target) is None  # same CPU
    on_host(monkeypatch, "B")
    scored = handoff.slice_here(built, reference, calibration, target)
    assert scored["agreement"] == 0.9 and scored["reached"] is reached
    (line,) = handoff.said({"built_on": manifest["built_on"], "slice_here": scored}, built)
    assert line.endswith(f"{'reached here' if reached else 'SHORT of the target here'} (its "
                         "search, on Build Host CPU (family 6 model 143): at least 0.9500)")


@requires_openvino
def test_a_trial_decided_before_more_was_built_is_not_reused(tiny_checkpoint, data_file,
                                                             tmp_path, monkeypatch):
    """--execute trials what --build made; once a later --build makes more, the next --execute
    trials again with them rather than reuse the decision that lacked them."""
    cache = tmp_path / "c"
    on_host(monkeypatch, "A")
    assert _main(bert_tiny.SPEC, tiny_checkpoint, data_file, cache, "--backend", "onnxruntime",
                 "--build") == 0
    on_host(monkeypatch, "B")
    out = tmp_path / "x.json"
    auto = ("--backend", "auto", "--precision", "fp32")
    assert _main(bert_tiny.SPEC, tiny_checkpoint, data_file, cache, *auto, "--execute",
                 "--json", str(out)) == 0
    first = json.loads(out.read_text())["choice"]
    assert {c["candidate"]: "not_built" in c for c in first["candidates"]} == {
        "openvino fp32": True, "onnxruntime fp32": False}
    on_host(monkeypatch, "A")
    assert _main(bert_tiny.SPEC, tiny_checkpoint, data_file, cache, *auto, "--build") == 0
    on_host(monkeypatch, "B")
    assert _main(bert_tiny.SPEC, tiny_checkpoint, data_file, cache, *auto, "--execute",
                 "--json", str(out)) == 0
    second = json.loads(out.read_text())["choice"]
    assert second["cached"] is False
    assert not any("not_built" in c for c in second["candidates"])


@pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++")),
                    reason="inductor compiles its CPU kernels with a C++ compiler; none here")
def test_pytorch_compiled_executes_from_a_copied_inductor_folder(tiny_checkpoint, data_file,
                                                                 tmp_path, monkeypatch):
    """Inductor's compiled graphs travel in the build's folder: --execute from a copy in another
    folder compiles from them (every graph a cache hit), a warm start, not from scratch. On
    another CPU (its C++ kernels are compiled for the CPU's instruction sets) it compiles there
    and says so, answering the same."""
    import torch

    flags = ("--backend", "torch_compile", "--precision", "fp32", "--device", "cpu")
    on_host(monkeypatch, "A")
    torch._dynamo.reset()
    assert _main(bert_tiny.SPEC, tiny_checkpoint, data_file, tmp_path / "built", *flags,
                 "--build") == 0
    shutil.copytree(tmp_path / "built", tmp_path / "elsewhere")
    shutil.rmtree(tmp_path / "built")
    runs = {}
    for name in ("A", "B"):
        on_host(monkeypatch, name)
        torch._dynamo.reset()  # nothing this process compiled is reused but what the folder holds
        out = tmp_path / f"{name}.json"
        assert _main(bert_tiny.SPEC, tiny_checkpoint, data_file, tmp_path / "elsewhere", *flags,
                     "--execute", "--json", str(out)) == 0
        runs[name] = json.loads(out.read_text())
    loaded, compiled = (runs[name]["runs"][1] for name in ("A", "B"))
    assert loaded["cache_hit"] is True and loaded["runtime"]["graphs_compiled"] == 2
    assert (loaded["runtime"]["fx_graph_cache_hits"],
            loaded["runtime"]["fx_graph_cache_misses"]) == (2, 0)
    assert "compiled_here" not in loaded["build_facts"]
    assert compiled["cache_hit"] is False and compiled["build_facts"]["compiled_here"] is True
    assert compiled["runtime"]["fx_graph_cache_hits"] == 0
    assert any(n.startswith("--execute: torch_compile-fp32 compiled here, not loaded: compiled "
                            "code is its device's own, and none was copied for this one, Target "
                            "Host CPU") for n in runs["B"]["notes"])
    for key in ("accuracy", "agreement", "max_abs_logit_diff"):
        assert compiled[key] == loaded[key], key
