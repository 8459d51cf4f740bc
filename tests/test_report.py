"""README's measured figures come from result files: bench/report.py renders what they hold."""
import json

import bert_tiny
from bench import report
from common.proofpoint import main


def test_report_renders_the_runs_numbers_and_rewrites_only_the_readme_block(
        tiny_checkpoint, data_file, tmp_path, monkeypatch):
    results = tmp_path / "results"
    results.mkdir()
    assert main(bert_tiny.SPEC, ["--model", str(tiny_checkpoint), "--dataset", str(data_file),
                                 "--cache-dir", str(tmp_path / "c"), "--backend", "onnxruntime",
                                 "--json", str(results / "tiny.json")]) == 0
    doc = json.loads((results / "tiny.json").read_text())
    reference, built = doc["runs"]
    table = report.proof_points_table([doc])
    row = table.splitlines()[2]
    assert f"| {reference['accuracy']:.4f} | {built['accuracy']:.4f} | {built['agreement']:.4f} |" in row
    speedup = built["speedup"]
    assert f"{speedup['median']:.2f} ({speedup['min']:.2f}–{speedup['max']:.2f})" in row
    assert f"`python bert_tiny.py --model {tiny_checkpoint}" in row
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n{report.BEGIN}\nold figures\n{report.END}\nafter\n")
    monkeypatch.setattr(report, "ROOT", tmp_path)  # the results folder is named relative to it
    assert report.main([str(results), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# Title\n\nbefore\n") and text.endswith(f"{report.END}\nafter\n")
    assert "old figures" not in text and row in text and doc["git_commit"][:12] in text
