import json
import os
import signal
import subprocess
import sys
import time

import pytest

import bert_base
import bert_quantize
import bert_tiny
from common.inputs.checkpoints import load_checkpoint
from common.host.files import file_sha256
from common.run.proofpoint import main
from conftest import OV, ROOT, SENTENCES, requires_openvino

RUN_KEYS = {"name", "role", "backend", "device", "precision", "accuracy", "agreement",
            "max_abs_logit_diff", "build_seconds", "cache_hit", "throughput", "speedup",
            "round_seconds", "serial_batch_latency_ms", "in_flight_batch_latency_ms",
            "batch1_latency_ms", "runtime"}


def test_results_json_has_the_documented_shape(tiny_checkpoint, data_file, cache_dir, tmp_path, capsys):
    out = tmp_path / "out.json"
    argv = ["--model", str(tiny_checkpoint), "--dataset", str(data_file), "--cache-dir",
            str(cache_dir), "--json", str(out), "--batch-size", "4",
            "--backend", "onnxruntime", "--repeats", "4"]
    assert main(bert_tiny.SPEC, argv) == 0
    doc = json.loads(out.read_text())
    assert doc["model"] == str(tiny_checkpoint) and doc["dataset"] == str(data_file)
    # a local file is read whole; no seed where nothing is drawn at random
    assert (doc["split"], doc["samples"], doc["seed"]) == (None, len(SENTENCES), None)
    assert doc["labels"] == "class ids as in the file"
    assert {"python", "cpu", "cpu_flags", "cpu_count", "torch_threads", "versions"} <= \
        set(doc["environment"])
    # provenance: the command, the commit, the exact inputs
    assert doc["command"] == ["bert_tiny.py", *argv]
    assert doc["git_commit"] == "unknown" or len(doc["git_commit"].split("-")[0]) == 40
    assert doc["inputs"]["dataset"]["sha256"] == file_sha256(data_file)
    assert doc["inputs"]["weights_sha256"] == load_checkpoint(str(tiny_checkpoint)).digest
    assert doc["timing"] == {"rounds": 4, "sentences": 12, "of": 12, "selection": "all",
                             "batch1_sentences": 12, "batch1_input_length": "each sentence's own"}
    reference, built = doc["runs"]
    assert RUN_KEYS <= set(reference) and RUN_KEYS <= set(built)
    assert len(reference["round_seconds"]) == len(built["round_seconds"]) == 4
    assert reference["role"] == "reference" and reference["agreement"] is None
    assert reference["build_seconds"] is None and reference["device"] == "cpu"
    assert built["role"] == "built" and built["backend"] == "onnxruntime"
    assert built["agreement"] == 1.0 and built["max_abs_logit_diff"] < 1e-4
    assert built["cache_hit"] is False and built["build_seconds"] > 0
    # ONNX Runtime runs one batch at a time: a serial latency, no in-flight one
    assert set(built["serial_batch_latency_ms"]) == {"p50", "p90", "p99"}
    assert built["in_flight_batch_latency_ms"] is None
    # threads as each runtime reports them: the one count every runner gets
    assert reference["runtime"]["intra_op_threads"] == doc["environment"]["threads"]["threads"]
    assert built["runtime"]["intra_op_threads"] == doc["environment"]["threads"]["threads"]
    assert built["runtime"]["providers"] == ["CPUExecutionProvider"]
    table = capsys.readouterr().out
    assert "onnxruntime-fp32" in table and "pytorch" in table and "agreement" in table
    # the second run finds the build in the cache
    assert main(bert_tiny.SPEC, argv) == 0
    assert json.loads(out.read_text())["runs"][1]["cache_hit"] is True
    assert "(cached)" in capsys.readouterr().out


def test_the_script_runs_from_the_command_line(tiny_checkpoint, data_file, cache_dir, tmp_path):
    out = tmp_path / "out.json"
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9"}
    proc = subprocess.run([sys.executable, "bert_tiny.py", "--model", str(tiny_checkpoint),
                           "--dataset", str(data_file), "--cache-dir", str(cache_dir),
                           "--json", str(out)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["samples"] == len(SENTENCES)
    backend, precision = doc["choice"]["chosen"].split()
    assert f"{backend}-{precision}" in proc.stdout.splitlines()[3]  # the built model's row
    assert f"backend: {doc['choice']['chosen']}, " in proc.stderr
    assert f"({len(SENTENCES)} sentences; text 'sentence', label 'label'); builds: " in proc.stderr


def test_every_runner_gets_the_cpus_this_process_may_use(tiny_checkpoint, data_file, tmp_path):
    """Under an affinity mask of one CPU (as `taskset -c 0`), one thread, not os.cpu_count()."""
    out = tmp_path / "out.json"
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9"}
    proc = subprocess.run([sys.executable, "bert_tiny.py", "--model", str(tiny_checkpoint),
                           "--dataset", str(data_file), "--cache-dir", str(tmp_path / "c"),
                           "--json", str(out), "--backend", "onnxruntime", "--repeats", "1"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                          preexec_fn=lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    environment = doc["environment"]
    assert environment["threads"]["affinity_cpus"] == 1 and environment["threads"]["threads"] == 1
    assert environment["torch_threads"] == 1
    reference, built = doc["runs"]  # as each runtime reports it
    assert reference["runtime"]["intra_op_threads"] == built["runtime"]["intra_op_threads"] == 1
    assert "1 of " in proc.stdout.splitlines()[-1]  # the CPU line under the table


def test_without_the_hub_bert_tiny_runs_on_the_bundled_checkpoint_and_sst2(tmp_path, capsys):
    out = tmp_path / "out.json"
    assert main(bert_tiny.SPEC, ["--cache-dir", str(tmp_path / "c"), "--json", str(out)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("model 'M-FAC/bert-tiny-finetuned-sst2' cannot be loaded (the Hugging "
                             "Face hub is unreachable") and "models/bert-tiny-sst2" in err[0]
    assert err[1].startswith("dataset 'stanfordnlp/sst2' cannot be loaded") and \
        "data/sst2/validation.tsv" in err[1]
    doc = json.loads(out.read_text())
    assert doc["samples"] == 872
    assert doc["sources"]["model"]["copy"] == "bundled"
    assert doc["sources"]["model"]["loaded"] == str(ROOT / "models" / "bert-tiny-sst2")
    assert doc["sources"]["dataset"] == {"requested": "stanfordnlp/sst2", "copy": "bundled",
                                         "loaded": str(ROOT / "data/sst2/validation.tsv"),
                                         "split": "validation"}
    reference, built = doc["runs"]
    assert reference["accuracy"] == pytest.approx(0.7982, abs=0.0006)  # its TRAINING.md
    assert built["agreement"] >= 0.999


def test_without_the_hub_bert_base_names_the_model_and_the_flag_in_one_line(tmp_path, capsys):
    assert main(bert_base.SPEC, ["--cache-dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["bert_base: error: cannot load model 'howey/bert-base-uncased-sst2' (pass a local "
                   "checkpoint folder with --model DIR): the Hugging Face hub is unreachable "
                   "([Errno 111] Connection refused)"]
    assert not (tmp_path / "c").exists()


def test_everything_unloadable_is_named_in_the_same_line(tmp_path, capsys):
    assert main(bert_base.SPEC, ["--dataset", "someone/reviews", "--cache-dir", str(tmp_path)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "model 'howey/bert-base-uncased-sst2' (pass a local checkpoint folder with --model DIR)" in line
    assert "nor dataset 'someone/reviews' (pass a local .tsv/.csv/.parquet/.jsonl file with " \
           "--dataset FILE)" in line


def test_bundled_training_data_is_the_default_calibration_set(tmp_path):
    out = tmp_path / "q.json"
    assert main(bert_quantize.SPEC, ["--model", str(ROOT / "models" / "bert-tiny-sst2"), "--limit",
                                     "64", "--calibration-samples", "50", "--cache-dir",
                                     str(tmp_path / "c"), "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["sources"]["calibration"]["loaded"] == str(ROOT / "data/sst2/train.tsv.xz")
    assert doc["calibration"]["source"] == str(ROOT / "data/sst2/train.tsv.xz")
    assert doc["calibration"]["overlap_with_evaluation_checked"] is True
    assert max(doc["calibration"]["indices"]) < 67349 and len(doc["calibration"]["indices"]) == 50


def as_in_a_terminal() -> None:
    """Ctrl-C's default action, as a foreground process has it: a shell starts background jobs
    (a CI runner's, say) with SIGINT ignored, and the child would inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("moment", ["importing", "after loading"])
def test_ctrl_c_at_any_moment_is_one_line_and_exit_130(tmp_path, moment):
    """Early (0.3 s in, while torch and transformers import) and later (as soon as the run names
    its inputs, before the reference pass and the builds): at a moment the run announces, not after
    a fixed delay that a fast machine outruns."""
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9"}
    proc = subprocess.Popen([sys.executable, "bert_tiny.py", "--cache-dir", str(tmp_path / "c")],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=as_in_a_terminal)
    before = []
    if moment == "importing":
        time.sleep(0.3)
    else:
        for line in proc.stderr:
            before.append(line)
            if line.startswith("bert_tiny: "):  # the line naming the inputs and the builds
                break
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=60)
    err = "".join(before) + rest
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == \
        "bert_tiny: interrupted; no partial build or results file was left behind"


@pytest.mark.parametrize("backend", [OV, "onnxruntime"])
def test_a_redirected_quantize_run_keeps_stderr_short_and_stdout_for_the_table(tmp_path, backend):
    """No progress bars off a terminal, no library warnings: what remains is ours."""
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9"}
    proc = subprocess.run([sys.executable, "bert_quantize.py", "--model", "models/bert-tiny-sst2",
                           "--backend", backend, "--calibration-samples", "200", "--cache-dir",
                           str(tmp_path / "c"), "--repeats", "1"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr.splitlines()
    assert len(err) < 30, err
    assert not any("WARNING" in line or "Warning" in line or "%|" in line for line in err), err
    out = proc.stdout.splitlines()
    assert out[0].startswith("runner") and f"{backend}-int8" in proc.stdout
    assert not any("━" in line for line in out)  # NNCF's progress display stays off stdout


def test_float_sentiment_labels_and_flags_that_did_nothing_are_said(tiny_checkpoint, cache_dir,
                                                                     tmp_path, capsys):
    """The original's SST layout (float labels) is binarised and said; GroqFlow's flags on a CPU
    backend are noted instead of silently ignored."""
    from common.inputs.examples import BINARIZED

    out = tmp_path / "sst.json"
    data = ROOT / "tests" / "data" / "sst-float-labels.tsv"
    assert main(bert_tiny.SPEC, ["--model", str(tiny_checkpoint), "--dataset", str(data),
                                 "--cache-dir", str(cache_dir), "--backend", "onnxruntime",
                                 "--num-chips", "2", "--compiler-flags=--effort=high",
                                 "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["labels"] == BINARIZED and doc["samples"] == 8
    assert doc["notes"] == [f"labels: {BINARIZED}",
                            "--num-chips and --compiler-flags: GroqFlow's; ignored by onnxruntime"]
    printed = capsys.readouterr().out
    assert f"labels: {BINARIZED}" in printed and "--num-chips and --compiler-flags" in printed


def test_sst_is_the_original_proof_points_hub_dataset(tiny_checkpoint, tmp_path, capsys):
    assert main(bert_tiny.SPEC, ["--model", str(tiny_checkpoint), "--dataset", "sst",
                                 "--cache-dir", str(tmp_path / "c")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("bert_tiny: error: cannot load dataset 'stanfordnlp/sst' (pass a local ")


@requires_openvino
def test_ctrl_c_during_a_cold_build_is_one_line_for_the_whole_process_group(tmp_path):
    """As a terminal sends it: to every process of the group, a library's child processes too
    (OpenVINO's telemetry forks one per message unless it is off, and each prints a traceback)."""
    env = {name: value for name, value in os.environ.items() if name != "CI"}  # telemetry skips CI
    cache = tmp_path / "c"
    proc = subprocess.Popen([sys.executable, "bert_tiny.py", "--backend", "openvino", "--precision",
                             "fp32", "--model", "models/bert-tiny-sst2", "--dataset",
                             "data/sst2/validation.tsv", "--cache-dir", str(cache)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=as_in_a_terminal)
    def building() -> bool:  # the cold build starts with the ONNX export, then OpenVINO's
        return any(path.name.startswith(("onnx-", "ov-")) for folder in ("tmp", "entries")
                   for path in (cache / folder).glob("*"))

    deadline = time.monotonic() + 120
    while not building() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, "the run ended before its build could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    lines = err.strip().splitlines()
    assert proc.returncode == 130, err
    assert lines[-1] == "bert_tiny: interrupted; no partial build or results file was left behind"
    assert len(lines) == 2 and lines[0].startswith("bert_tiny: models/bert-tiny-sst2 on "), err
    assert not list((cache / "tmp").iterdir()) and not list((cache / "entries").glob("ov-*"))


def test_hyper_threads_of_one_core_count_once(tmp_path):
    """torch and OpenVINO default to a thread per physical core: so does the shared count."""
    from common.host.cpu import physical_cores

    for cpu, (package, core) in enumerate([(0, 0), (0, 0), (0, 1), (0, 1), (1, 0)]):
        topology = tmp_path / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True)
        (topology / "physical_package_id").write_text(f"{package}\n")
        (topology / "core_id").write_text(f"{core}\n")
    assert physical_cores({0, 1, 2, 3, 4}, tmp_path) == 3  # two sockets' core 0 are two cores
    assert physical_cores({0, 1}, tmp_path) == 1 and physical_cores({1, 2}, tmp_path) == 2
    assert physical_cores({0, 7}, tmp_path) is None  # cpu7's topology is missing


def test_a_stock_pytorch_image_runs_the_quick_start(tmp_path):
    """What a PyTorch GPU image has: torch, transformers, onnxruntime; no datasets, OpenVINO or
    NNCF. bert_tiny.py runs there on the bundled data and checkpoint, with the builds it has."""
    out = tmp_path / "stock.json"
    blocked = ("import runpy, sys; sys.modules.update(datasets=None, openvino=None, nncf=None); "
               "sys.argv = sys.argv[1:]; runpy.run_path('bert_tiny.py', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", blocked, "bert_tiny.py", "--limit", "64",
                           "--device", "cpu", "--cache-dir", str(tmp_path / "c"), "--json",
                           str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "builds: onnxruntime fp32 (GroqFlow not usable" in proc.stderr
    doc = json.loads(out.read_text())
    assert doc["sources"]["dataset"]["copy"] == "bundled" and doc["samples"] == 64
    assert doc["runs"][1]["name"] == "onnxruntime-fp32" and doc["runs"][1]["agreement"] == 1.0


def test_every_script_parses_to_the_same_typed_settings_and_a_float_script_has_int8_defaults():
    """One Settings type for every script: a float script's INT8 fields are bert_quantize.py's
    defaults, and a flag that Settings has no field for is refused, not silently kept."""
    import argparse

    import bert_base
    import bert_quantize
    import bert_tiny
    from common.run.cli import parse_command_line
    from common.run.settings import Settings, settings_from

    tiny, base, quantize = (parse_command_line(s.SPEC, []) for s in (bert_tiny, bert_base,
                                                                     bert_quantize))
    assert all(isinstance(s, Settings) for s in (tiny, base, quantize))
    int8 = ("quantization", "calibration_samples", "seed", "min_agreement", "distill_steps",
            "validation_samples", "calibration_dataset")
    assert [getattr(tiny, f) for f in int8] == [getattr(quantize, f) for f in int8] == [
        "static", 1000, None, None, 0, 1000, None]
    assert tiny.command == ("bert_tiny.py",)
    with pytest.raises(ValueError, match="Settings has no field for new_flag"):
        settings_from(argparse.Namespace(**vars(argparse.Namespace(command=[])), new_flag=1))


def test_a_results_file_that_would_not_match_its_schema_is_not_written(tiny_checkpoint, data_file,
                                                                        tmp_path, monkeypatch):
    """The results JSON is checked against docs/results.schema.json as it is written: a field
    the schema does not know (a writer's mistake) raises, naming it, and leaves no file."""
    from common.run import proofpoint
    from common.run.schemas import RecordInvalid

    document = proofpoint.results_document
    monkeypatch.setattr(proofpoint, "results_document",
                        lambda *args: {**document(*args), "undocumented": 1})
    out = tmp_path / "r.json"
    with pytest.raises(RecordInvalid, match=r"at the top level: Additional properties are not "
                                            r"allowed \('undocumented' was unexpected\)"):
        proofpoint.main(bert_tiny.SPEC, ["--model", str(tiny_checkpoint), "--dataset",
                                         str(data_file), "--backend", "onnxruntime",
                                         "--cache-dir", str(tmp_path / "c"), "--repeats", "1",
                                         "--json", str(out)])
    assert not out.exists()
