"""Contract tests of the GroqFlow backend against groqflow 4.3.1's documented API.

groqflow cannot be installed here (it needs Python < 3.11, the GroqWare Suite and GroqCards), so a
stand-in `groqflow` module is put on sys.modules: its groqit() records the arguments it was given
and returns a model shaped like GroqFlow's PytorchModelWrapper, answering with the PyTorch model's
logits. Nothing here runs GroqFlow itself or touches a GroqCard.
"""
import importlib.util
import json
import sys
import types

import pytest
import torch

import bert_base
import bert_quantize
import bert_tiny
from common.proofpoint import main
from conftest import write_data


class StandInGroqModel:
    """Like groqflow's PytorchModelWrapper: called with keyword tensors, returns a torch tensor."""

    def __init__(self, model, calls):
        self.model, self.calls = model, calls

    def __call__(self, **inputs):
        self.calls.append({k: (tuple(v.shape), v.dtype) for k, v in inputs.items()})
        with torch.no_grad():
            return self.model(**inputs).logits

    def estimate_performance(self):
        return types.SimpleNamespace(latency=0.001, throughput=1000.0)


@pytest.fixture
def groqflow(monkeypatch):
    """Install the stand-in; `record` holds what groqit() and the model were given."""
    record = {"groqit": [], "calls": [], "chips": 8, "sdk_error": None}

    def groqit(model, inputs=None, build_name=None, cache_dir="~/.cache/groqflow", monitor=True,
               rebuild=None, compiler_flags=None, assembler_flags=None, num_chips=None,
               groqview=False, sequence=None, quantization_samples=None):
        record["groqit"].append(dict(model=model, inputs=inputs, build_name=build_name,
                                     cache_dir=cache_dir, rebuild=rebuild, num_chips=num_chips,
                                     quantization_samples=quantization_samples))
        return StandInGroqModel(model, record["calls"])

    def check_dependencies(require_devtools=False, require_runtime=False, exception_type=Exception):
        if record["sdk_error"]:
            raise exception_type(record["sdk_error"])
        return True

    package = types.ModuleType("groqflow")
    package.groqit = groqit
    package.__version__ = "4.3.1"
    common = types.ModuleType("groqflow.common")
    sdk = types.ModuleType("groqflow.common.sdk_helpers")
    sdk.check_dependencies = check_dependencies
    sdk.get_num_chips_available = lambda pci_devices=None: record["chips"]
    common.sdk_helpers = sdk
    package.common = common
    for name, module in {"groqflow": package, "groqflow.common": common,
                         "groqflow.common.sdk_helpers": sdk}.items():
        monkeypatch.setitem(sys.modules, name, module)
    return record


def _run(spec, tiny_checkpoint, data_file, cache_dir, *extra):
    return main(spec, ["--model", str(tiny_checkpoint), "--dataset", str(data_file),
                       "--cache-dir", str(cache_dir), *extra])


@pytest.mark.parametrize("spec, argv, chips", [(bert_tiny.SPEC, [], 1), (bert_base.SPEC, [], 4),
                                               (bert_base.SPEC, ["--num-chips", "2"], 2)])
def test_contract_chip_count_static_inputs_and_cache_mapping(
        groqflow, tiny_checkpoint, data_file, cache_dir, tmp_path, spec, argv, chips):
    out = tmp_path / "g.json"
    assert _run(spec, tiny_checkpoint, data_file, cache_dir, "--json", str(out), *argv) == 0
    (call,) = groqflow["groqit"]
    assert call["num_chips"] == chips and call["quantization_samples"] is None
    assert call["cache_dir"] == str(cache_dir / "groqflow") and call["rebuild"] == "if_needed"
    assert f"{chips}chip" in call["build_name"]
    assert {k: (tuple(v.shape), v.dtype) for k, v in call["inputs"].items()} == {
        "input_ids": ((1, 128), torch.int64), "attention_mask": ((1, 128), torch.bool)}
    # every evaluation call is batch 1, padded to 128, one per sentence
    assert groqflow["calls"] and all(c == {"input_ids": ((1, 128), torch.int64),
                                           "attention_mask": ((1, 128), torch.bool)}
                                      for c in groqflow["calls"])
    built = json.loads(out.read_text())["runs"][1]
    assert built["backend"] == "groqflow" and built["precision"] == "fp16"
    assert built["agreement"] == 1.0  # the stand-in answers with the PyTorch logits
    assert "not measured on the card" in built["build_facts"]["groqflow_estimate_note"]


@pytest.mark.parametrize("policy", ["always", "never"])
def test_contract_rebuild_policy_is_passed_through(groqflow, tiny_checkpoint, data_file, cache_dir, policy):
    assert _run(bert_tiny.SPEC, tiny_checkpoint, data_file, cache_dir, "--rebuild", policy) == 0
    assert groqflow["groqit"][0]["rebuild"] == policy


def test_contract_quantize_passes_1000_seeded_samples_shaped_like_evaluation(
        groqflow, tiny_checkpoint, data_file, cache_dir, tmp_path):
    train = write_data(tmp_path / "train.tsv", [(f"good film {i % 7} fun", i % 2) for i in range(1500)])
    out = tmp_path / "q.json"
    args = ("--calibration-dataset", str(train), "--json", str(out), "--seed", "5")
    assert _run(bert_quantize.SPEC, tiny_checkpoint, data_file, cache_dir, *args) == 0
    (call,) = groqflow["groqit"]
    samples = call["quantization_samples"]
    assert call["num_chips"] == 4 and len(samples) == 1000
    for ids, mask in samples:
        assert ids.shape == (1, 128) and ids.dtype.kind == "i"
        assert mask.shape == (1, 128) and mask.dtype == bool
    doc = json.loads(out.read_text())
    assert doc["calibration"]["count"] == 1000 and doc["calibration"]["seed"] == 5
    assert doc["runs"][1]["precision"] == "int8" and "int8" in call["build_name"]
    # another seed is another build name, so GroqFlow's if_needed cannot reuse stale samples
    assert _run(bert_quantize.SPEC, tiny_checkpoint, data_file, cache_dir,
                "--calibration-dataset", str(train), "--seed", "6") == 0
    assert groqflow["groqit"][1]["build_name"] != call["build_name"]


def test_contract_auto_picks_groqflow_only_when_groqware_is_found(
        groqflow, tiny_checkpoint, data_file, cache_dir, capsys):
    assert _run(bert_tiny.SPEC, tiny_checkpoint, data_file, cache_dir) == 0
    assert len(groqflow["groqit"]) == 1
    groqflow["sdk_error"] = "groq-devtools>=0.9.2 is a required dependency"
    capsys.readouterr()
    assert _run(bert_tiny.SPEC, tiny_checkpoint, data_file, cache_dir) == 0
    assert len(groqflow["groqit"]) == 1  # not called again
    err = capsys.readouterr().err
    assert "(GroqFlow not usable: GroqWare Suite not found (groq-devtools" in err


def test_groqflow_errors_that_print_instead_of_carrying_a_message_become_one_line(capsys):
    """GroqFlow 4.3.1's exceptions print 'Error: <message>' in colour plus ASCII art, and are empty."""
    from common.backends.groqflow import quiet_failure

    class EnvError(Exception):
        def __init__(self, msg):
            super().__init__()
            print(f"\x1b[91mError: \x1b[0m\x1b[0m{msg}\x1b[0m\n▄██████▄▐█▄▄▄▄█▌")

    def check():
        raise EnvError("Your OS must be one of the following Linux distributions: Ubuntu")

    assert quiet_failure(check) == "Your OS must be one of the following Linux distributions: Ubuntu"
    assert quiet_failure(lambda: None) == ""
    assert capsys.readouterr() == ("", "")


def test_contract_explicit_groqflow_without_groqware_is_one_clear_line(
        groqflow, tiny_checkpoint, data_file, cache_dir, capsys):
    groqflow["sdk_error"] = "groq-runtime>=0.9.2 is a required dependency"
    assert _run(bert_tiny.SPEC, tiny_checkpoint, data_file, cache_dir, "--backend", "groqflow") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["bert_tiny: error: backend groqflow is not available: GroqWare Suite not found "
                   "(groq-runtime>=0.9.2 is a required dependency)"]


def test_contract_too_few_cards_is_one_clear_line(groqflow, tiny_checkpoint, data_file, cache_dir, capsys):
    groqflow["chips"] = 1
    assert _run(bert_base.SPEC, tiny_checkpoint, data_file, cache_dir, "--backend", "groqflow") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("bert_base: error: the build asks for 4 GroqChip processors but this host has 1")


@pytest.mark.skipif(importlib.util.find_spec("groqflow") is not None, reason="groqflow is installed")
def test_groqflow_missing_entirely_is_one_clear_line(tiny_checkpoint, data_file, cache_dir, capsys):
    assert _run(bert_base.SPEC, tiny_checkpoint, data_file, cache_dir, "--backend", "groqflow") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the groqflow package does not import" in err[0]


def test_contract_a_failure_on_the_card_is_one_clear_line(groqflow, tiny_checkpoint, data_file,
                                                          cache_dir, capsys, monkeypatch):
    def card_failure(self, **inputs):
        raise RuntimeError("Failed while trying to run GroqChips locally.")

    monkeypatch.setattr(StandInGroqModel, "__call__", card_failure)
    assert _run(bert_tiny.SPEC, tiny_checkpoint, data_file, cache_dir) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("bert_tiny: error: running GroqFlow build 'bert-fp16-1chip-")
    assert "Failed while trying to run GroqChips locally." in last
