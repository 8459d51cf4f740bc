"""Contract tests of the GroqFlow backend against groqflow 4.3.1's API, with a stand-in module.

groqflow cannot be installed here (it needs Python < 3.11, the GroqWare Suite and GroqCards), so a
stand-in `groqflow` module is put on sys.modules. It behaves as groqflow 4.3.1 (with onnxflow from
mlagility 3.3.1) does where it matters, as read in their source:
- groqit() checks its arguments first (justgroqit/ignition.py): num_chips above 1 must be a count
  of the default topology, some compiler flags are its own; a bad one raises ArgError, whose
  message is printed on stderr ("Error: ...", ASCII art) and not kept (onnxflow's Error.__init__
  calls Exception.__init__() bare);
- it keeps <cache>/<build>/<build>_state.yaml (uid, build_status, num_chips_used,
  quantization_samples as a bool); with rebuild "if_needed" or "never" a successful build is loaded
  (its state file only read) and "found in cache. Loading it!" is printed on stdout; a build
  rewrites the state file; its monitor and success lines print on stdout;
- GroqModel.run() and __call__ cost one process start each and run_abunch() one for the whole
  collection; inputs must have the compiled shapes and dtypes; estimate_performance()
  .compute_latency and benchmark().latency are seconds; benchmark() prints an info line on stdout
  and saves the measured latency in the state file.
It answers with the PyTorch model's logits, except that it swaps the two logits of every sentence
holding the word "terrible", so that the tests can see each answer land on its own row. Nothing
here runs GroqFlow itself or touches a GroqCard.
"""
import csv
import hashlib
import importlib.util
import json
import os
import re
import sys
import types
from pathlib import Path

import pytest
import torch

import bert_base
import bert_quantize
import bert_tiny
from common.run.proofpoint import main
from conftest import SENTENCES, WORDS, valid_results, write_data

ON_CHIP_S, END_TO_END_S = 0.000123, 0.000456  # recognisable in the report
SWAPPED = [i for i, (sentence, _) in enumerate(SENTENCES) if "terrible" in sentence.split()]
TERRIBLE_ID = 5 + WORDS.index("terrible")  # the fixture vocabulary: 5 special tokens, then WORDS


TOPOLOGY = {2: "DF_A14_2_CHIP", 4: "DF_A14_4_CHIP", 8: "DF_A14_8_CHIP", 16: "DF_A14_16_CHIP",
            32: "DF_A14_32_CHIP", 64: "DF_A14_64_CHIP"}  # build.supported_topology, Dragonfly
RESERVED_FLAGS = ("--multichip", "--groqview", "--save-stats", "-o")  # groqit sets these itself


def log(kind: str, message: str, error: bool = False) -> None:
    """onnxflow.common.printing.clean_print: coloured label, message lines indented after it."""
    lines = [line.strip() for line in message.strip().splitlines()]
    print(f"\n\033[91m{kind}\033[0m " + f"\n{' ' * (len(kind) + 1)}".join(lines),
          file=sys.stderr if error else sys.stdout)


class ArgError(Exception):
    """onnxflow.common.exceptions.Error: prints its message, keeps none."""

    def __init__(self, msg):
        super().__init__()
        log("Error:", msg, error=True)
        print("\n▄██████████████▄▐█▄▄▄▄█▌\n", file=sys.stderr)


def write_state(path: Path, **fields) -> None:
    """onnxflow's State.save: the whole state as YAML, rewritten on every change."""
    state = {"uid": hashlib.sha256(f"{os.getpid()}".encode()).hexdigest(),
             "build_status": "successful_build", "config": None, **fields}
    path.write_text("".join(f"{k}: {'' if v is None else v}\n" for k, v in state.items())
                    + "info:\n  measured_latency: null\n")


class StandInGroqModel:
    """Like groqflow's PytorchModelWrapper (a GroqModel): run, run_abunch, __call__, figures."""

    def __init__(self, model, inputs, record, state_path):
        self.model, self.record, self.state_path = model, record, state_path
        self.expected = {k: (tuple(v.shape), v.dtype) for k, v in inputs.items()}

    def _execute(self, collection):
        self.record["process_starts"] += 1
        outputs = []
        for inputs in collection:
            got = {k: (tuple(v.shape), v.dtype) for k, v in inputs.items()}
            if got != self.expected:  # tensor_helpers.check_shapes_and_dtypes
                raise ValueError(f"inputs {got} do not match the compiled {self.expected}")
            with torch.no_grad():
                logits = self.model(**{name: value.long() for name, value in inputs.items()}).logits
            if (inputs["input_ids"] == TERRIBLE_ID).any():
                logits = logits.flip(1)
            outputs.append(logits)
        self.record["executed"].append(got)
        return outputs

    def run(self, inputs):
        self.record["run_calls"] += 1
        return self._execute([inputs])[0]

    def run_abunch(self, collection):
        self.record["run_abunch_sizes"].append(len(collection))
        outputs = self._execute(collection)
        return outputs if len(outputs) > 1 else outputs[0]

    def __call__(self, **inputs):
        return self.run(inputs)

    def estimate_performance(self):
        return types.SimpleNamespace(compute_latency=ON_CHIP_S, pcie_input_latency=1e-5,
                                     pcie_output_latency=1e-5, latency=ON_CHIP_S + 2e-5)

    def benchmark(self, inputs=None, repetitions=100):
        self.record["process_starts"] += 1
        log("Info:", "Running inference on GroqChip processor(s) using 100 repetitions")
        text = self.state_path.read_text()  # state.info.measured_latency = ...; state.save()
        self.state_path.write_text(text.replace("measured_latency: null",
                                                f"measured_latency: {END_TO_END_S}"))
        return types.SimpleNamespace(latency=END_TO_END_S, throughput=1 / END_TO_END_S)


@pytest.fixture
def groqflow(monkeypatch):
    """Install the stand-in; `record` holds what groqit() and the model were given."""
    record = {"groqit": [], "chips": 8, "sdk_error": None, "process_starts": 0, "run_calls": 0,
              "run_abunch_sizes": [], "executed": [], "builds": 0,
              "sdk": {"groq-devtools": "0.9.3", "groq-runtime": "0.9.3"}}

    def groqit(model, inputs=None, build_name=None, cache_dir="~/.cache/groqflow", monitor=True,
               rebuild=None, compiler_flags=None, assembler_flags=None, num_chips=None,
               topology="FC2_4_CHIP", groqview=False, sequence=None, quantization_samples=None):
        record["groqit"].append(dict(
            model=model, inputs=inputs, build_name=build_name, cache_dir=cache_dir, rebuild=rebuild,
            monitor=monitor, num_chips=num_chips, compiler_flags=compiler_flags,
            quantization_samples=quantization_samples,
            attention=model.config._attn_implementation))
        if num_chips is not None and num_chips > 1 and num_chips not in TOPOLOGY:
            raise ArgError(f"""
            You set groqit()'s num_chips argument to {num_chips} with topology Dragonfly
            for build {build_name}, which is not a supported value. Choose from the
            currently supported chip counts: {TOPOLOGY.keys()}.
            """)
        for flag in compiler_flags or ():
            if flag in RESERVED_FLAGS:
                raise ArgError(f"""
                The following compiler flags are reserved by groqit() and cannot be used:
                {flag}
                """)
        state = Path(cache_dir) / build_name / f"{build_name}_state.yaml"
        if rebuild != "always" and state.is_file() and \
                "build_status: successful_build" in state.read_text():
            log("Woohoo!", f' Build "{build_name}" found in cache. Loading it!')
            return StandInGroqModel(model, inputs, record, state)
        if monitor:
            print(f"\n\nBuilding \"{build_name}\"\n    ✓ Exporting PyTorch to ONNX")
        state.parent.mkdir(parents=True, exist_ok=True)
        write_state(state, num_chips_used=num_chips, quantization_samples=bool(
            quantization_samples))
        record["builds"] += 1
        log("Woohoo!", f"Saved to **{state.parent}**")
        return StandInGroqModel(model, inputs, record, state)

    def check_dependencies(require_devtools=False, require_runtime=False, exception_type=Exception):
        if record["sdk_error"]:
            raise exception_type(record["sdk_error"])
        for package, required in (("groq-devtools", require_devtools),
                                  ("groq-runtime", require_runtime)):
            if required and not record["sdk"].get(package):  # as sdk_helpers words it
                raise exception_type(f"{package}>=0.9.2 is a required dependency")
        return True

    package = types.ModuleType("groqflow")
    package.groqit = groqit
    package.__version__ = "4.3.1"
    common = types.ModuleType("groqflow.common")
    sdk = types.ModuleType("groqflow.common.sdk_helpers")
    sdk.check_dependencies = check_dependencies
    sdk.get_num_chips_available = lambda pci_devices=None: record["chips"]
    # as groqflow 4.3.1 reads the GroqWare Suite's version: apt-cache policy on Ubuntu
    sdk.validate_os_version = lambda: "Ubuntu"
    sdk._installed_package_version = lambda package, os_version: record["sdk"].get(package, False)
    build = types.ModuleType("groqflow.common.build")
    build.GROQCARD, build.TOPOLOGY = "A1.4", "Dragonfly"
    build.supported_topology = lambda groqcard, topology: dict(TOPOLOGY)
    common.sdk_helpers, common.build = sdk, build
    package.common = common
    for name, module in {"groqflow": package, "groqflow.common": common,
                         "groqflow.common.sdk_helpers": sdk, "groqflow.common.build": build}.items():
        monkeypatch.setitem(sys.modules, name, module)
    return record


def _run(spec, tiny_checkpoint, data_file, cache_dir, *extra):
    return main(spec, ["--model", str(tiny_checkpoint), "--dataset", str(data_file),
                       "--cache-dir", str(cache_dir), *extra])


@pytest.mark.parametrize("spec, argv, chips", [(bert_tiny.SPEC, [], 1), (bert_base.SPEC, [], 4),
                                               (bert_base.SPEC, ["--num-chips", "2"], 2)])
def test_contract_chips_inputs_one_run_abunch_per_pass_and_groqflows_own_figures(
        groqflow, tiny_checkpoint, data_file, cache_dir, tmp_path, capsys, spec, argv, chips):
    out, flips = tmp_path / "g.json", tmp_path / "flips.tsv"
    assert _run(spec, tiny_checkpoint, data_file, cache_dir, "--json", str(out), "--mismatches",
                str(flips), "--repeats", "2", *argv) == 0
    (call,) = groqflow["groqit"]
    assert call["num_chips"] == chips and call["quantization_samples"] is None
    assert call["compiler_flags"] is None and call["attention"] == "eager"
    assert call["cache_dir"] == str(cache_dir / "groqflow") and call["rebuild"] == "if_needed"
    assert f"fp16-{chips}chip" in call["build_name"]
    static = {"input_ids": ((1, 128), torch.int64), "attention_mask": ((1, 128), torch.bool)}
    assert {k: (tuple(v.shape), v.dtype) for k, v in call["inputs"].items()} == static
    # the warm-up on the path a pass takes (run_abunch of one sentence), then the accuracy pass
    # and the 2 timing rounds: one run_abunch each over every sentence; never run(); process
    # starts: those, plus benchmark()
    assert groqflow["run_abunch_sizes"] == [1] + [len(SENTENCES)] * 3
    assert groqflow["run_calls"] == 0 and groqflow["process_starts"] == 4 + 1
    assert all(executed == static for executed in groqflow["executed"])
    doc = json.loads(out.read_text())
    built = doc["runs"][1]
    assert built["backend"] == "groqflow" and built["precision"] == "fp16"
    facts = built["build_facts"]
    assert facts["groqflow_on_chip_latency_ms"] == pytest.approx(ON_CHIP_S * 1000)
    assert facts["groqflow_on_chip_ips"] == pytest.approx(1 / ON_CHIP_S)
    assert facts["groqflow_end_to_end_latency_ms"] == pytest.approx(END_TO_END_S * 1000)
    assert facts["groqflow_end_to_end_ips"] == pytest.approx(1 / END_TO_END_S)
    notes = capsys.readouterr().out
    assert "on-chip latency 0.123 ms (8130 IPS)" in notes
    assert "end-to-end latency 0.456 ms (2193 IPS), benchmark()" in notes
    # every answer lands on its own row: exactly the swapped sentences differ
    assert built["agreement"] == pytest.approx(1 - len(SWAPPED) / len(SENTENCES))
    assert [int(row[0]) for row in list(csv.reader(flips.open(), delimiter="\t"))[1:]] == SWAPPED
    # like for like: the reference's batch-1 latency at the built model's 128 tokens
    assert doc["timing"]["batch1_input_length"] == 128
    assert doc["runs"][0]["batch1_latency_ms"]["p50"] > 0 and built["batch1_latency_ms"] is None


def test_contract_rebuild_always_is_passed_through(groqflow, tiny_checkpoint, data_file, cache_dir):
    assert _run(bert_tiny.SPEC, tiny_checkpoint, data_file, cache_dir, "--rebuild", "always") == 0
    assert groqflow["groqit"][0]["rebuild"] == "always"


def test_contract_rebuild_never_on_an_empty_cache_builds_nothing(
        groqflow, tiny_checkpoint, data_file, cache_dir, capsys):
    assert _run(bert_base.SPEC, tiny_checkpoint, data_file, cache_dir, "--rebuild", "never") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("bert_base: error: --rebuild never: no finished GroqFlow build "
                              "'bert-fp16-4chip-")
    assert groqflow["groqit"] == []
    # once built, `never` loads it through groqit
    assert _run(bert_base.SPEC, tiny_checkpoint, data_file, cache_dir) == 0
    assert _run(bert_base.SPEC, tiny_checkpoint, data_file, cache_dir, "--rebuild", "never") == 0
    assert [c["rebuild"] for c in groqflow["groqit"]] == ["if_needed", "never"]


def test_contract_quantize_int32_ids_large_program_and_1000_seeded_samples(
        groqflow, tiny_checkpoint, data_file, cache_dir, tmp_path):
    train = write_data(tmp_path / "train.tsv", [(f"good film {i % 7} fun {i}", i % 2)
                                                for i in range(1500)])
    out = tmp_path / "q.json"
    args = ("--calibration-dataset", str(train), "--json", str(out), "--seed", "5")
    assert _run(bert_quantize.SPEC, tiny_checkpoint, data_file, cache_dir, *args) == 0
    (call,) = groqflow["groqit"]
    assert call["num_chips"] == 4 and call["compiler_flags"] == ["--large-program"]
    int32 = {"input_ids": ((1, 128), torch.int32), "attention_mask": ((1, 128), torch.bool)}
    assert {k: (tuple(v.shape), v.dtype) for k, v in call["inputs"].items()} == int32
    samples = call["quantization_samples"]
    assert len(samples) == 1000
    for ids, mask in samples:
        assert ids.shape == (1, 128) and ids.dtype.name == "int32"
        assert mask.shape == (1, 128) and mask.dtype == bool
    assert groqflow["executed"] and all(e == int32 for e in groqflow["executed"])
    assert groqflow["run_calls"] == 0
    doc = json.loads(out.read_text())
    assert doc["calibration"]["count"] == 1000 and doc["calibration"]["seed"] == 5
    built = doc["runs"][1]
    assert built["precision"] == "int8" and "int8" in call["build_name"]
    assert built["build_facts"]["compiler_flags"] == ["--large-program"]
    assert built["build_facts"]["input_ids_dtype"] == "int32"
    # another seed, or other compiler flags, is another build name
    assert _run(bert_quantize.SPEC, tiny_checkpoint, data_file, cache_dir,
                "--calibration-dataset", str(train), "--seed", "6") == 0
    assert _run(bert_quantize.SPEC, tiny_checkpoint, data_file, cache_dir, *args,
                "--compiler-flags=--large-program --effort=high") == 0
    names = [c["build_name"] for c in groqflow["groqit"]]
    assert len(set(names)) == 3
    assert groqflow["groqit"][2]["compiler_flags"] == ["--large-program", "--effort=high"]


def test_contract_dynamic_quantization_is_refused_up_front(groqflow, tiny_checkpoint, data_file,
                                                          cache_dir, capsys):
    assert _run(bert_quantize.SPEC, tiny_checkpoint, data_file, cache_dir, "--backend", "groqflow",
                "--quantization", "dynamic") == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "bert_quantize: error: --quantization dynamic is not built by groqflow (it builds static); "
        "pass --backend onnxruntime"]
    assert groqflow["groqit"] == [] and not cache_dir.exists()


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
    assert err == ["bert_base: error: backend groqflow is not available: groqflow is not installed; "
                   "see requirements-groq.txt"]


def test_contract_a_failure_on_the_card_is_one_clear_line(groqflow, tiny_checkpoint, data_file,
                                                          cache_dir, capsys, monkeypatch):
    def card_failure(self, collection):
        raise RuntimeError("Failed while trying to run GroqChips locally.")

    monkeypatch.setattr(StandInGroqModel, "_execute", card_failure)
    assert _run(bert_tiny.SPEC, tiny_checkpoint, data_file, cache_dir) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("bert_tiny: error: running GroqFlow build 'bert-fp16-1chip-")
    assert "Failed while trying to run GroqChips locally." in last


def test_contract_stdout_holds_only_the_table_and_a_second_run_loads_the_cached_build(
        groqflow, tiny_checkpoint, data_file, cache_dir, tmp_path, capsys):
    """groqit's monitor is off, and what groqflow prints on stdout (success lines, benchmark's info
    line) goes to stderr; a second run loads the build, and says so, as the other backends do."""
    runs = []
    for rebuild in ("if_needed", "if_needed", "always"):
        out = tmp_path / f"{len(runs)}.json"
        assert _run(bert_tiny.SPEC, tiny_checkpoint, data_file, cache_dir, "--json", str(out),
                    "--rebuild", rebuild) == 0
        printed = capsys.readouterr()
        runs.append((json.loads(out.read_text())["runs"][1], printed))
    assert [call["monitor"] for call in groqflow["groqit"]] == [False] * 3
    assert groqflow["builds"] == 2  # the second run loaded the first one's build
    assert [built["cache_hit"] for built, _ in runs] == [False, True, False]
    for built, printed in runs:
        table = printed.out.splitlines()
        assert table[0].startswith("runner ") and table[2].startswith("pytorch ")
        assert table[3].startswith("groqflow-fp16-1chip ")
        assert table[3].endswith("0.46*")  # batch-1 ms: GroqFlow's end-to-end latency, marked
        assert not re.search(r"Woohoo|Info:|Building|✓", printed.out)
        assert "Info:" in printed.err and "Running inference on GroqChip" in printed.err
        assert ("(cached)" in table[3]) == built["cache_hit"]
    assert "found in cache. Loading it!" in runs[1][1].err
    assert "found in cache" not in runs[0][1].err + runs[2][1].err


def test_contract_unsupported_chip_count_is_one_line_naming_the_counts(
        groqflow, tiny_checkpoint, data_file, cache_dir, capsys):
    assert _run(bert_base.SPEC, tiny_checkpoint, data_file, cache_dir, "--num-chips", "3") == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "bert_base: error: --num-chips 3: GroqFlow builds for 1, 2, 4, 8, 16, 32 or 64 GroqChip "
        "processors"]
    assert groqflow["groqit"] == [] and not cache_dir.exists()


def test_contract_groqits_own_argument_error_is_its_printed_message_in_one_line(
        groqflow, tiny_checkpoint, data_file, cache_dir, capsys):
    """ArgError carries no message (str() is ""): the line must hold what groqflow printed."""
    assert _run(bert_tiny.SPEC, tiny_checkpoint, data_file, cache_dir,
                "--compiler-flags=--multichip") == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("bert_tiny: error: GroqFlow build 'bert-fp16-")
    assert err.strip().splitlines()[-1].endswith(
        "(The following compiler flags are reserved by groqit() and cannot be used: --multichip)")
    assert "▄" not in err and "Traceback" not in err


def test_contract_auto_on_a_groqware_host_without_groqchips_falls_back_to_the_cpu(
        groqflow, tiny_checkpoint, data_file, cache_dir, tmp_path, capsys):
    groqflow["chips"] = 0
    out = tmp_path / "r.json"
    assert _run(bert_tiny.SPEC, tiny_checkpoint, data_file, cache_dir, "--backend", "auto",
                "--json", str(out)) == 0
    assert groqflow["groqit"] == []
    first = capsys.readouterr().err.splitlines()[0]
    assert "GroqFlow not usable: the GroqWare Suite is here but no GroqChip processor" in first
    assert json.loads(out.read_text())["runs"][1]["backend"] in ("openvino", "onnxruntime")


def test_contract_the_label_is_what_groqit_compiled_not_the_request(
        groqflow, tiny_checkpoint, data_file, cache_dir, tmp_path, monkeypatch):
    """The chip count and INT8-ness come from GroqFlow's state file: a float build asked for 4
    chips that the state file says was quantized on 8 is labelled so."""
    original = write_state
    monkeypatch.setitem(globals(), "write_state", lambda path, **fields: original(
        path, **{**fields, "num_chips_used": 8, "quantization_samples": True}))
    out = tmp_path / "r.json"
    assert _run(bert_base.SPEC, tiny_checkpoint, data_file, cache_dir, "--json", str(out)) == 0
    assert groqflow["groqit"][0]["num_chips"] == 4
    assert groqflow["groqit"][0]["quantization_samples"] is None
    built = json.loads(out.read_text())["runs"][1]
    assert (built["name"], built["device"], built["precision"]) == (
        "groqflow-int8-8chip", "groqchip x8", "int8")


def test_contract_sentence_pairs_carry_their_token_type_ids(groqflow, tiny_checkpoint,
                                                           cache_dir, tmp_path):
    """The compiled graph, every run_abunch and the quantization samples take the pair's token
    types; the answers then match the reference's."""
    pairs = write_data(tmp_path / "pairs.tsv", [(s, "a fun film", label) for s, label in SENTENCES],
                       columns=("sentence1", "sentence2", "label"))
    out = tmp_path / "g.json"
    assert _run(bert_tiny.SPEC, tiny_checkpoint, pairs, cache_dir, "--json", str(out)) == 0
    (call,) = groqflow["groqit"]
    fed = {"input_ids": ((1, 128), torch.int64), "attention_mask": ((1, 128), torch.bool),
           "token_type_ids": ((1, 128), torch.int64)}
    assert {k: (tuple(v.shape), v.dtype) for k, v in call["inputs"].items()} == fed
    assert groqflow["executed"] and all(executed == fed for executed in groqflow["executed"])
    # the stand-in swaps the answer of the sentences with "terrible" (as a broken card would): the
    # others answer as the reference does, token types and all
    assert json.loads(out.read_text())["runs"][1]["agreement"] == 1 - len(SWAPPED) / len(SENTENCES)
    train = write_data(tmp_path / "train.tsv", [(f"good film {i}", f"fun {i}", i % 2)
                                                for i in range(50)],
                       columns=("sentence1", "sentence2", "label"))
    assert _run(bert_quantize.SPEC, tiny_checkpoint, pairs, cache_dir / "q",
                "--calibration-dataset", str(train), "--calibration-samples", "20") == 0
    samples = groqflow["groqit"][1]["quantization_samples"]
    assert len(samples) == 20 and all(len(sample) == 3 and sample[2].dtype.name == "int32"
                                      and sample[2].any() for sample in samples)


def test_contract_token_types_fed_or_not_are_another_build(groqflow, tiny_checkpoint, data_file,
                                                           cache_dir, tmp_path):
    """A graph that takes token types is another program: sentence pairs after single
    sentences, in one cache, build again; the pairs again load their build."""
    pairs = write_data(tmp_path / "pairs.tsv", [(s, "a fun film", label) for s, label in SENTENCES],
                       columns=("sentence1", "sentence2", "label"))
    for data, builds in ((data_file, 1), (pairs, 2), (pairs, 2), (data_file, 2)):
        assert _run(bert_tiny.SPEC, tiny_checkpoint, data, cache_dir) == 0
        assert groqflow["builds"] == builds, data


def test_contract_what_the_state_file_does_not_say_is_unknown_not_the_request(
        groqflow, tiny_checkpoint, data_file, cache_dir, tmp_path, monkeypatch):
    """A state file without num_chips_used or quantization_samples: the label says unknown."""
    monkeypatch.setitem(globals(), "write_state", lambda path, **fields: path.write_text(
        "uid: 1\nbuild_status: successful_build\ninfo:\n  measured_latency: null\n"))
    out = tmp_path / "r.json"
    assert _run(bert_base.SPEC, tiny_checkpoint, data_file, cache_dir, "--json", str(out)) == 0
    built = json.loads(out.read_text())["runs"][1]
    assert (built["name"], built["device"], built["precision"]) == (
        "groqflow-unknown-chips-unknown", "groqchip (count unknown)", "unknown")
    assert built["build_facts"]["num_chips"] == "unknown"
    assert built["build_facts"]["read_back_from_state_file"] == []


def test_contract_device_cuda_never_picks_groqflow(groqflow, tiny_checkpoint, data_file, cache_dir,
                                                  capsys, simulated_gpu, quick_compile):
    assert _run(bert_tiny.SPEC, tiny_checkpoint, data_file, cache_dir, "--device", "cuda") == 0
    err = capsys.readouterr().err
    assert groqflow["groqit"] == []
    assert "GroqFlow not usable: --device cuda asks for a GPU" in err
    assert "\nbackend: torch_compile " in err


def test_contract_device_auto_takes_the_groqchip_before_a_gpu(groqflow, tiny_checkpoint,
                                                             data_file, cache_dir, simulated_gpu):
    assert _run(bert_tiny.SPEC, tiny_checkpoint, data_file, cache_dir) == 0
    assert len(groqflow["groqit"]) == 1


@pytest.mark.parametrize("package", ["groq-devtools", "groq-runtime"])
def test_contract_another_groqware_release_is_another_build(groqflow, tiny_checkpoint, data_file,
                                                           cache_dir, tmp_path, package):
    """GroqFlow reads the Suite's version from the OS's packages; a compiled program belongs to
    the release that compiled it (groq-devtools). The same release loads the build; another
    builds anew. Another groq-runtime runs the same build (it may be the card host's, and the
    build a devtools-only host's)."""
    out = tmp_path / "g.json"
    assert _run(bert_tiny.SPEC, tiny_checkpoint, data_file, cache_dir, "--json", str(out)) == 0
    assert _run(bert_tiny.SPEC, tiny_checkpoint, data_file, cache_dir, "--json", str(out)) == 0
    assert groqflow["builds"] == 1
    assert valid_results(json.loads(out.read_text()))["environment"]["versions"][package] == "0.9.3"
    groqflow["sdk"][package] = "0.9.4"
    assert _run(bert_tiny.SPEC, tiny_checkpoint, data_file, cache_dir, "--json", str(out)) == 0
    compiler = package == "groq-devtools"
    assert groqflow["builds"] == (2 if compiler else 1)
    assert json.loads(out.read_text())["runs"][1]["cache_hit"] is not compiler


def test_a_state_file_with_python_objects_is_read_for_its_plain_fields(tmp_path):
    """onnxflow writes its state with yaml.dump, which tags Python objects (tuples, enums): those
    are read as nothing, the plain fields as written."""
    from common.backends import groqflow as gf

    path = gf.state_file(tmp_path, "b")
    path.parent.mkdir()
    path.write_text("uid: 12\nbuild_status: successful_build\nnum_chips_used: 4\n"
                    "quantization_samples: true\nresults: !!python/tuple [1, 2]\n"
                    "info:\n  backend: !!python/object/apply:onnxflow.Backend [local]\n")
    assert gf.read_back(tmp_path, "b")[:2] == (4, "int8")
    assert gf.build_state(tmp_path, "b")["results"] is None
    path.write_text("num_chips_used: [unterminated\n")
    assert gf.read_back(tmp_path, "b")[:2] == ("unknown", "unknown")


def test_contract_built_with_devtools_alone_executed_where_the_cards_are(
        groqflow, tiny_checkpoint, data_file, tmp_path, capsys):
    """The original proof points' two machines: --build with groq-devtools and no card (groqit
    compiles, nothing runs), the cache copied, --execute on the card host loads it, builds
    nothing and runs there."""
    import shutil

    groqflow["sdk"]["groq-runtime"], groqflow["chips"] = False, 0
    assert _run(bert_tiny.SPEC, tiny_checkpoint, data_file, tmp_path / "built", "--backend",
                "groqflow", "--build") == 0
    assert groqflow["builds"] == 1 and groqflow["process_starts"] == 0
    out = capsys.readouterr().out
    assert "built groqflow-fp16-1chip (groqflow fp16)" in out and "  groqflow/bert-fp16-1chip-" in out
    shutil.copytree(tmp_path / "built", tmp_path / "card-host")
    groqflow["sdk"]["groq-runtime"], groqflow["chips"] = "0.9.3", 8
    result = tmp_path / "x.json"
    assert _run(bert_tiny.SPEC, tiny_checkpoint, data_file, tmp_path / "card-host", "--backend",
                "groqflow", "--execute", "--json", str(result)) == 0
    assert groqflow["builds"] == 1 and groqflow["groqit"][-1]["rebuild"] == "never"
    assert groqflow["groqit"][-1]["cache_dir"] == str(tmp_path / "card-host" / "groqflow")
    doc = json.loads(result.read_text())
    assert doc["runs"][1]["backend"] == "groqflow" and groqflow["process_starts"] > 0
    assert doc["build"]["loaded"] == [p for p in doc["build"]["loaded"] if not p.startswith("/")]
    assert any(p.startswith("groqflow/bert-fp16-1chip-") for p in doc["build"]["loaded"])
    # with devtools alone, a run that would evaluate is refused in one line
    groqflow["sdk"]["groq-runtime"] = False
    assert _run(bert_tiny.SPEC, tiny_checkpoint, data_file, tmp_path / "card-host", "--backend",
                "groqflow") == 2
    assert "groq-runtime>=0.9.2 is a required dependency" in capsys.readouterr().err
