"""The charts: drawn from the results' JSON files only, one point per runner, refusing values a
chart cannot honestly show; and the report needs no ML library."""
import json
import subprocess
import sys

import pytest

pytest.importorskip("matplotlib")

from bench import charts, report  # noqa: E402
from conftest import ROOT  # noqa: E402


def proof_point_doc(backend, precision, speedup, agreement, accuracy, trial=True):
    """The fields of a proof point's JSON the report and the charts read, with known values."""
    run = {"accuracy": 0.87, "agreement": None, "max_abs_logit_diff": None, "backend": "pytorch",
           "precision": "fp32", "throughput": {"median": 100.0, "min": 90.0, "max": 110.0},
           "speedup": None, "batch1_latency_ms": {"p50": 1.0}}
    built = {**run, "backend": backend, "precision": precision, "accuracy": accuracy,
             "agreement": agreement, "max_abs_logit_diff": 0.01,
             "speedup": {"median": speedup, "min": speedup * 0.9, "max": speedup * 1.1}}
    return {"command": ["bert_base.py"], "git_commit": "0" * 40, "start_time": "2026-11-29T00:00",
            "timing": {"sentences": 872, "of": 872, "rounds": 3},
            "environment": {"cpu": "Test CPU", "cpu_flags": ["avx512_bf16"], "cpu_count": 2,
                            "threads": {"threads": 2}, "python": "3.11", "versions": {}},
            "choice": {"trial": trial, "candidates": [], "chosen": f"{backend} {precision}",
                       "trial_sentences": 64, "rounds": 2, "trial_seconds": 1.0},
            "runs": [run, built]}


def benchmark_doc(rows):
    return {"model": "minilm", "sentences": "sst2", "batch_size": 32, "rounds": 3,
            "gemm_rates": {"fp32": 200.0, "bf16": 800.0, "int8": 1600.0},
            "rows": [{"model": "minilm", "runner": name, "precision": "fp32", "accuracy": accuracy,
                      "agreement": agreement, "gflops": 10.0, "gemm_share": 0.1,
                      "throughput": {"median": 1.0, "min": 1.0, "max": 1.0},
                      "speedup": None if speedup is None else
                      {"median": speedup, "min": speedup, "max": speedup}}
                     for name, speedup, agreement, accuracy in rows]}


def results_folder(path, agreement=0.99):
    path.mkdir()
    (path / "base.json").write_text(json.dumps(proof_point_doc("openvino", "bf16", 4.0, 1.0, 0.87)))
    (path / "quantize.json").write_text(json.dumps(
        proof_point_doc("openvino", "int8+bf16", 5.8, agreement, 0.86)))
    (path / "benchmark-minilm.json").write_text(json.dumps(benchmark_doc([
        ("pytorch-eager", None, None, 0.87), ("ort-fp32", 1.9, 1.0, 0.87),
        ("openvino-bf16", 4.1, 1.0, 0.87), ("openvino-int8", 5.7, 0.98, 0.868)])))
    return path


def test_one_point_per_runner_and_per_proof_point_drawn_from_the_files(tmp_path):
    folder = results_folder(tmp_path / "cpu-a")
    docs = report.proof_points(folder)
    points = [charts.proof_point(name, doc) for name, doc in docs.items()]
    points += charts.benchmark_points(json.loads((folder / "benchmark-minilm.json").read_text()))
    assert [(p.label, p.speedup, p.agreement, p.chosen) for p in points] == [
        ("bert_base: openvino bf16", 4.0, 1.0, True),
        ("bert_quantize: openvino int8+bf16", 5.8, 0.99, True),
        ("ort-fp32", 1.9, 1.0, False), ("openvino-bf16", 4.1, 1.0, False),
        ("openvino-int8", 5.7, 0.98, False)]  # eager is the reference line, not a point
    charts.cpu_chart(points, "Test CPU", "cpu-a", tmp_path / "a.png")
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the numbered list beside grows with the points: 30 points need a taller figure than 5
    many = [charts.Point(f"p{i}", 1.0 + i, 0.99, 0.8, "benchmark") for i in range(30)]
    charts.cpu_chart(many, "Test CPU", "cpu-a", tmp_path / "b.png")
    import matplotlib.pyplot as plt

    few_high, many_high = (plt.imread(tmp_path / n).shape[0] for n in ("a.png", "b.png"))
    assert many_high / few_high == pytest.approx((0.27 * 30 + 1.4) / 6.4, rel=0.05)


def test_report_draws_a_chart_per_folder_and_one_across_them_the_same_bytes_each_time(tmp_path):
    folders = [results_folder(tmp_path / "cpu-a"), results_folder(tmp_path / "cpu-b", 0.97)]
    drawn = report.draw(folders, tmp_path / "plots")
    assert sorted(drawn) == ["cpu-a", "cpu-b", "cpus"]
    first = {name: path.read_bytes() for name, path in drawn.items()}
    again = report.draw(folders, tmp_path / "plots")
    assert {name: path.read_bytes() for name, path in again.items()} == first
    assert first["cpu-a"] != first["cpu-b"]  # another agreement, another picture
    assert charts.cross_cpu_chart([(f.name, report.proof_points(f)) for f in folders],
                                  tmp_path / "x.png") == 4  # 2 proof points x 2 CPUs


@pytest.mark.parametrize("field, value, message", [
    ("agreement", 1.2, r"agreement 1\.2 is outside \[0, 1\]; not drawn"),
    ("accuracy", -0.1, r"accuracy -0\.1 is outside \[0, 1\]; not drawn"),
    ("speedup", 0.0, r"speed-up 0\.0 is not a positive number; not drawn"),
    ("speedup", float("nan"), r"speed-up nan is not a positive number; not drawn"),
])
def test_a_value_out_of_range_is_refused_not_drawn(tmp_path, field, value, message):
    doc = proof_point_doc("openvino", "bf16", 4.0, 1.0, 0.87)
    built = doc["runs"][1]
    if field == "speedup":
        built["speedup"]["median"] = value
    else:
        built[field] = value
    with pytest.raises(ValueError, match=message):
        charts.proof_point("base.json", doc)


def test_the_report_runs_without_any_ml_library(tmp_path):
    """Turning JSON into Markdown and charts (`python -m bench report`) imports no torch,
    transformers or runtime."""
    folder = results_folder(tmp_path / "cpu-a")
    blocked = ("torch", "transformers", "onnx", "onnxruntime", "openvino", "nncf", "datasets",
               "tokenizers", "huggingface_hub")
    code = ("import runpy, sys\n"
            f"for name in {blocked!r}:\n    sys.modules[name] = None  # import fails\n"
            f"sys.argv = ['bench', 'report', {str(folder)!r}, '--plots', {str(tmp_path / 'p')!r}]\n"
            "runpy.run_module('bench', run_name='__main__')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "`python bert_base.py" in proc.stdout and "openvino bf16" in proc.stdout
    assert (tmp_path / "p" / "cpu-a.png").is_file()


def test_a_glob_over_the_results_passes_over_the_plots_folder(tmp_path, capsys):
    folder = results_folder(tmp_path / "cpu-a")
    plots = tmp_path / "plots"
    assert report.main([str(folder), "--plots", str(plots)]) == 0
    capsys.readouterr()
    assert report.main([str(folder), str(plots), "--plots", str(plots)]) == 0  # results/*
    assert f"{plots}: no proof-point JSON files; passed over" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="none of the folders holds proof-point JSON files"):
        report.main([str(plots)])


def frontier_doc(rows):
    return {"model": "/m/minilm", "rows": [
        {"variant": name, "accuracy": 0.87, "agreement": agreement,
         "speedup": {"median": speedup, "min": speedup, "max": speedup}}
        for name, speedup, agreement in [("pytorch fp32 (reference)", 1.0, 1.0), *rows]]}


def test_frontier_points_join_builds_that_are_one_model_and_the_chart_draws_each_once(tmp_path):
    doc = frontier_doc([("fp32 (no INT8)", 2.0, 1.0), ("plain INT8 (the default)", 5.0, 0.99),
                        ("--min-agreement 0.99", 5.1, 0.99), ("--min-agreement 0.995", 4.0, 0.995),
                        ("--min-agreement 0.999", 5.2, 0.99)])
    points = charts.frontier_points(doc)
    assert [(p.label, p.speedup, p.agreement) for p in points] == [
        ("fp32", 2.0, 1.0), ("min-agreement 0.995", 4.0, 0.995),
        ("plain INT8, min-agreement 0.99", 5.0, 0.99), ("min-agreement 0.999", 5.2, 0.99)]
    path = tmp_path / "f.png"
    charts.frontier_chart({"openvino": doc, "onnxruntime": frontier_doc(
        [("fp32 (no INT8)", 2.1, 1.0)])}, "title", path)
    first = path.read_bytes()
    charts.frontier_chart({"openvino": doc, "onnxruntime": frontier_doc(
        [("fp32 (no INT8)", 2.1, 1.0)])}, "title", path)
    assert path.read_bytes() == first and first.startswith(b"\x89PNG")
