"""The benchmark scripts run through the product's code: smoke runs on tiny inputs, JSON checked."""
import json
import subprocess
import sys

from conftest import ROOT, requires_openvino


def _run(args, tmp_path):
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@requires_openvino
def test_int8_variants_builds_through_the_backend(tiny_checkpoint, data_file, train_file, tmp_path):
    out = tmp_path / "v.json"
    _run(["bench/int8_variants.py", "--backend", "openvino", "--model", str(tiny_checkpoint),
          "--dataset", str(data_file), "--calibration-dataset", str(train_file),
          "--calibration-samples", "20", "--rounds", "1", "--only", "0,1", "--json", str(out)],
         tmp_path)
    rows = json.loads(out.read_text())["rows"]
    assert [r["variant"] for r in rows][0] == "pytorch fp32 (reference)" and len(rows) == 3
    assert rows[0]["agreement"] == 1.0 and all(0 <= r["agreement"] <= 1 for r in rows)


@requires_openvino
def test_benchmark_times_the_runners_it_is_asked_for(tmp_path):
    out = tmp_path / "b.json"
    _run(["bench/benchmark.py", "--models", "tiny", "--runners",
          "pytorch-eager,openvino-fp32,ort-int8-static", "--rounds", "2", "--json", str(out)],
         tmp_path)
    doc = json.loads(out.read_text())
    assert [r["runner"] for r in doc["rows"]] == ["pytorch-eager", "ort-int8-static", "openvino-fp32"]
    assert [len(r["seconds"]) for r in doc["rows"]] == [2, 2, 2]
    assert set(doc["gemm_rates"]) == {"fp32", "bf16", "int8"}
