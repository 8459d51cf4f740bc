import json
import os
import subprocess
import sys

import bert_tiny
from common.proofpoint import main
from conftest import ROOT, SENTENCES

RUN_KEYS = {"name", "role", "backend", "device", "precision", "accuracy", "agreement",
            "max_abs_logit_diff", "build_seconds", "cache_hit", "eval_seconds", "throughput",
            "latency_ms"}


def test_results_json_has_the_documented_shape(tiny_checkpoint, data_file, cache_dir, tmp_path, capsys):
    out = tmp_path / "out.json"
    argv = ["--model", str(tiny_checkpoint), "--dataset", str(data_file), "--cache-dir",
            str(cache_dir), "--json", str(out), "--batch-size", "4", "--seed", "7",
            "--backend", "onnxruntime"]
    assert main(bert_tiny.SPEC, argv) == 0
    doc = json.loads(out.read_text())
    assert doc["model"] == str(tiny_checkpoint) and doc["dataset"] == str(data_file)
    assert (doc["split"], doc["samples"], doc["seed"]) == ("validation", len(SENTENCES), 7)
    assert {"python", "cpu", "cpu_count", "versions"} <= set(doc["environment"])
    reference, built = doc["runs"]
    assert RUN_KEYS <= set(reference) and RUN_KEYS <= set(built)
    assert reference["role"] == "reference" and reference["agreement"] is None
    assert reference["build_seconds"] is None and reference["device"] == "cpu"
    assert built["role"] == "built" and built["backend"] == "onnxruntime"
    assert built["agreement"] == 1.0 and built["max_abs_logit_diff"] < 1e-4
    assert built["cache_hit"] is False and built["build_seconds"] > 0
    assert set(built["latency_ms"]) == {"p50", "p90", "p99"}
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
    assert "openvino-" in proc.stdout
    assert "backend: openvino" in proc.stderr and "GroqFlow not usable" in proc.stderr
    assert json.loads(out.read_text())["samples"] == len(SENTENCES)


def test_hub_unreachable_is_one_line_naming_the_model_and_the_way_out(tmp_path, capsys):
    assert main(bert_tiny.SPEC, ["--cache-dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "M-FAC/bert-tiny-finetuned-sst2" in err[0] and "unreachable" in err[0]
    assert "--model DIR" in err[0]
    assert not (tmp_path / "c").exists()


def test_hub_dataset_unreachable_names_the_dataset(tiny_checkpoint, tmp_path, capsys):
    assert main(bert_tiny.SPEC, ["--model", str(tiny_checkpoint), "--cache-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stanfordnlp/sst2" in err[0] and "--dataset FILE" in err[0]
