"""The measured figures come from result files: bench/report.py renders what they hold."""
import json

import bert_tiny
from bench import report
from common.run.proofpoint import main


def test_report_renders_the_runs_numbers_and_rewrites_only_the_pages_block(
        tiny_checkpoint, data_file, tmp_path, monkeypatch):
    results = tmp_path / "results"
    results.mkdir()
    assert main(bert_tiny.SPEC, ["--model", str(tiny_checkpoint), "--dataset", str(data_file),
                                 "--cache-dir", str(tmp_path / "c"), "--backend", "onnxruntime",
                                 "--json", str(results / "tiny.json")]) == 0
    # the real file's layout, with figures set to known values: the row must show exactly these
    doc = json.loads((results / "tiny.json").read_text())
    reference, built = doc["runs"]
    reference.update(accuracy=0.79816, throughput={"median": 5698.4, "min": 5630.2, "max": 5805.9},
                     batch1_latency_ms={"p50": 0.664, "p90": 1.0, "p99": 1.2})
    built.update(backend="openvino", precision="bf16", accuracy=0.80046, agreement=0.99427,
                 max_abs_logit_diff=0.0312, throughput={"median": 10936.0, "min": 9072.0, "max": 12009.0},
                 speedup={"median": 1.9191, "min": 1.6149, "max": 2.0712},
                 batch1_latency_ms={"p50": 0.5049, "p90": 1.0, "p99": 1.2})
    doc["timing"].update(sentences=872, of=872, rounds=3)
    doc["command"] = ["bert_tiny.py", "--model", "m", "--json", "x.json", "--cache-dir", "c"]
    (results / "tiny.json").write_text(json.dumps(doc))
    row = report.proof_points_table([doc]).splitlines()[2]
    assert row == ("| `python bert_tiny.py --model m` | openvino bf16 | 0.7982 | 0.8005 | 0.9943 | 0.031 "
                   "| 5698 (5630–5806) | 10936 (9072–12009) | 1.92 (1.61–2.07) | 0.66 / 0.50 "
                   "| 872 of 872, 3 rounds |")
    readme = tmp_path / "results.md"
    readme.write_text(f"# Title\n\nbefore\n{report.BEGIN}\nold figures\n{report.END}\nafter\n")
    monkeypatch.setattr(report, "ROOT", tmp_path)  # the results folder is named relative to it
    assert report.main([str(results), "--page", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# Title\n\nbefore\n") and text.endswith(f"{report.END}\nafter\n")
    assert "old figures" not in text and row in text and doc["git_commit"][:12] in text


def test_the_trial_table_shows_a_dropped_build_as_not_timed():
    doc = {"command": ["bert_quantize.py", "--json", "q.json"], "choice": {
        "trial": True, "chosen": "openvino int8+bf16", "trial_sentences": 128, "rounds": 2,
        "trial_seconds": 3.25, "candidates": [
            {"candidate": "openvino int8+bf16", "sent_per_s": 1520.4, "sent_per_s_min": 1300.2,
             "sent_per_s_max": 1740.0, "agreement": 0.9921875},
            {"candidate": "openvino int8+fp16", "first_pass_sent_per_s": 0.54, "dropped": "..."}]}}
    assert report.trial_table([doc]).splitlines()[2:] == [
        "| `python bert_quantize.py` | openvino int8+bf16 | 1520 (1300–1740) | 0.9922 | **yes** |",
        "| `python bert_quantize.py` | openvino int8+fp16 | not timed: 0.5 sent/s in its first pass "
        "| - |  |",
        "|  | trial: 128 sentences, 2 rounds, 3.2 s |  |  |  |"]


def test_a_folder_measured_at_several_commits_names_each(tmp_path, monkeypatch):
    results = tmp_path / "results"
    results.mkdir()
    doc = {"git_commit": "a" * 40, "start_time": "2026-12-01T20:00:00", "command": ["bert_tiny.py"],
           "environment": {"cpu": "Some CPU", "cpu_flags": [], "cpu_count": 2, "python": "3.11",
                           "versions": {}},
           "runs": [{"accuracy": 0.8, "throughput": {"median": 1.0, "min": 1.0, "max": 1.0},
                     "batch1_latency_ms": None},
                    {"backend": "x", "precision": "fp32", "accuracy": 0.8, "agreement": 1.0,
                     "max_abs_logit_diff": 0.0, "throughput": {"median": 1.0, "min": 1.0, "max": 1.0},
                     "speedup": {"median": 1.0, "min": 1.0, "max": 1.0}, "batch1_latency_ms": None}],
           "timing": {"sentences": 8, "of": 8, "rounds": 1}}
    (results / "tiny.json").write_text(json.dumps(doc))
    (results / "base.json").write_text(json.dumps({**doc, "git_commit": "b" * 40 + "-dirty"}))
    monkeypatch.setattr(report, "ROOT", tmp_path)
    text = report.render(results, {})
    assert f"project commits `{'a' * 12}`, `{'b' * 12} with uncommitted changes` (each file " \
           "records its own)" in text


def test_the_slice_cell_shows_the_bound_that_decided_where_there_was_one():
    before_the_rule = {"plain_int8": {"agreement": 0.992}, "agreement": 0.997}
    assert report.slice_cell(before_the_rule) == "0.9920 → 0.9970"
    assert report.slice_cell({**before_the_rule, "agreement_lower_bound": 0.99252}) == \
        "0.9920 → 0.9970 (≥ 0.9925)"


def test_the_slice_cell_names_a_distillation_beside_or_instead_of_plain_int8():
    distilled = {"agreement": 0.988, "seconds": 212.4}
    fell_back = {"plain_int8": {"agreement": 0.992}, "agreement": 0.997,
                 "agreement_lower_bound": 0.99252, "distillation": distilled}
    assert report.slice_cell(fell_back) == "0.9920 → 0.9970 (≥ 0.9925); distilled 0.9880 (212 s)"
    reached = {"agreement": 0.999, "agreement_lower_bound": 0.99553, "distillation": distilled}
    assert report.slice_cell(reached) == "distilled: 0.9990 (≥ 0.9955)"


def test_the_machine_line_gives_the_threads_the_runners_got_not_the_cpu_count():
    env = {"cpu": "AMD EPYC", "cpu_flags": ["avx2"], "cpu_count": 16, "python": "3.11.7",
           "versions": {"torch": "2.13.0"}, "threads": {"threads": 4}}
    assert report.machine({"environment": env}) == (
        "AMD EPYC (avx2), 4 of 16 logical CPUs used, Python 3.11.7, torch 2.13.0")
