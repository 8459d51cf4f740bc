"""The experiments run through one harness (`python -m bench NAME`) and the product's code: smoke
runs on tiny inputs, every record checked against docs/bench-record.schema.json."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, requires_openvino


def valid_record(path) -> dict:
    import jsonschema

    record = json.loads(path.read_text())
    schema = json.loads((ROOT / "docs" / "bench-record.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(record)
    return record


def _run(args, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    if "--json" in args:
        valid_record(Path(args[args.index("--json") + 1]))
    return proc


def test_the_harness_lists_every_experiment_and_refuses_an_unknown_one():
    from bench.harness import COMMANDS, EXPERIMENTS

    listed = subprocess.run([sys.executable, "-m", "bench"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    names = [line.split()[0] for line in listed.stdout.splitlines() if line.startswith("  ")]
    assert listed.returncode == 0 and names == [*EXPERIMENTS, *COMMANDS]
    schema = json.loads((ROOT / "docs" / "bench-record.schema.json").read_text())
    assert schema["properties"]["bench"]["enum"] == list(EXPERIMENTS)
    unknown = subprocess.run([sys.executable, "-m", "bench", "nonesuch"], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 2 and "usage: python -m bench NAME" in unknown.stderr


def test_an_experiment_writes_one_record_with_what_ran_and_where(tmp_path):
    out = tmp_path / "startup.json"
    _run(["startup", "--runs", "1", "--json", str(out)], tmp_path)
    record = valid_record(out)
    assert record["bench"] == "startup" and record["command"] == [
        "python", "-m", "bench", "startup", "--runs", "1", "--json", str(out)]
    assert sorted(record["results"]) == sorted(f"{s} {c}" for s in (
        "bert_tiny.py", "bert_base.py", "bert_quantize.py") for c in ("--help", "a bad flag"))
    assert all(len(r["runs_s"]) == 1 and r["runs_s"][0] > 0 for r in record["results"].values())


@pytest.mark.parametrize("change", ["no bench", "unknown bench", "no cpu"])
def test_the_record_schema_refuses_a_record_without_what_ran_or_where(tmp_path, change):
    import jsonschema

    from bench.harness import write_record
    from common.host.provenance import started

    path = tmp_path / "r.json"
    write_record(path, "startup", started(["python", "-m", "bench", "startup"]), {"results": {}})
    record = valid_record(path)
    if change == "no bench":
        del record["bench"]
    elif change == "unknown bench":
        record["bench"] = "bench/startup.py"
    else:
        del record["cpu"]
    path.write_text(json.dumps(record))
    with pytest.raises(jsonschema.ValidationError):
        valid_record(path)


@requires_openvino
def test_int8_variants_builds_through_the_backend(tiny_checkpoint, data_file, train_file, tmp_path):
    out = tmp_path / "v.json"
    _run(["int8-variants", "--backend", "openvino", "--model", str(tiny_checkpoint),
          "--dataset", str(data_file), "--calibration-dataset", str(train_file),
          "--calibration-samples", "20", "--rounds", "1", "--only", "0,1", "--json", str(out)],
         tmp_path)
    rows = json.loads(out.read_text())["rows"]
    assert [r["variant"] for r in rows][0] == "pytorch fp32 (reference)" and len(rows) == 3
    assert rows[0]["agreement"] == 1.0 and all(0 <= r["agreement"] <= 1 for r in rows)


@requires_openvino
def test_benchmark_times_the_runners_it_is_asked_for(tmp_path):
    out = tmp_path / "b.json"
    _run(["speed", "--models", "tiny", "--runners",
          "pytorch-eager,openvino-fp32,ort-int8-static", "--rounds", "2", "--json", str(out)],
         tmp_path)
    doc = json.loads(out.read_text())
    assert [r["runner"] for r in doc["rows"]] == ["pytorch-eager", "ort-int8-static", "openvino-fp32"]
    assert [len(r["round_seconds"]) for r in doc["rows"]] == [2, 2, 2]
    assert set(doc["gemm_rates"]) == {"fp32", "bf16", "int8"}
    assert all(r["accuracy"] is None for r in doc["rows"])  # random weights: no accuracy to speak of


def test_benchmark_on_a_checkpoint_scores_every_runner(tiny_checkpoint, data_file, train_file,
                                                       tmp_path):
    out = tmp_path / "b.json"
    _run(["speed", "--model", str(tiny_checkpoint), "--dataset", str(data_file),
          "--calibration-dataset", str(train_file), "--runners",
          "pytorch-eager,ort-fp32,ort-fp32-optimized,ort-fp32-fused", "--rounds", "1",
          "--json", str(out)], tmp_path)
    eager, *built = json.loads(out.read_text())["rows"]
    assert [r["runner"] for r in built] == ["ort-fp32", "ort-fp32-optimized", "ort-fp32-fused"]
    assert eager["speedup"] is None and eager["agreement"] is None
    # fp32 graphs, however ONNX Runtime optimises or fuses them: the reference's answers
    assert all(r["agreement"] == 1.0 and r["accuracy"] == eager["accuracy"] for r in built)
    assert all(r["speedup"]["median"] > 0 for r in built)


@requires_openvino
def test_bucket_benchmark_builds_through_the_backend(tiny_checkpoint, data_file, train_file,
                                                     tmp_path):
    out = tmp_path / "k.json"
    _run(["ov-buckets", "--model", str(tiny_checkpoint), "--dataset", str(data_file),
          "--calibration-dataset", str(train_file), "--buckets", "1,8", "--rounds", "1",
          "--json", str(out)], tmp_path)
    rows = json.loads(out.read_text())["rows"]
    assert [(r["bucket"], r["build"] == "int8") for r in rows] == [
        (1, False), (8, False), (1, True), (8, True)]
    assert all(r["widths"] >= 1 and r["first_pass"] > 0 for r in rows)
    assert rows[1]["widths"] <= rows[0]["widths"]  # fewer (or as many) shapes once bucketed


@requires_openvino
def test_layer_gaps_builds_one_layer_at_a_time(tiny_checkpoint, data_file, train_file, tmp_path):
    out = tmp_path / "g.json"
    _run(["layer-gaps", "--model", str(tiny_checkpoint), "--dataset", str(data_file),
          "--calibration-dataset", str(train_file), "--calibration-samples", "40",
          "--validation-samples", "10",
          "--kinds", "feed-forward output", "--json", str(out)], tmp_path)
    doc = json.loads(out.read_text())
    assert [(r["in_float"], r["layer"]) for r in doc["rows"]] == [
        ("nothing", "-"), ("feed-forward output", "every"), ("feed-forward output", "0"),
        ("feed-forward output", "1")]
    assert doc["validation_sentences"] == 10
    assert all(r["logit_mse"] >= 0 and 0 <= r["agreement"] <= 1 for r in doc["rows"])


def test_a_record_that_does_not_match_its_schema_is_not_written(tmp_path):
    """Checked as it is written: an experiment's record under a name no schema knows raises,
    naming the field, and leaves no file (nor the one it would replace changed)."""
    from bench.harness import write_record
    from common.host.provenance import started
    from common.run.schemas import RecordInvalid

    path = tmp_path / "r.json"
    path.write_text("the earlier record\n")
    with pytest.raises(RecordInvalid, match=r"docs/bench-record.schema.json at bench: "):
        write_record(path, "bench/startup.py", started(["python", "-m", "bench"]), {})
    assert path.read_text() == "the earlier record\n" and list(tmp_path.iterdir()) == [path]


def test_house_reads_a_trees_structure(tmp_path):
    """On a tree made here: a module and a package that import each other (no module importing
    itself round a circle) is one import running back up; the longest chain is counted in
    modules; device questions and precision spellings are counted where they are."""
    from argparse import Namespace

    from bench.house import run

    pkg = tmp_path / "common" / "pkg"
    pkg.mkdir(parents=True)
    for init in (tmp_path / "common" / "__init__.py", pkg / "__init__.py"):
        init.write_text("")
    (tmp_path / "common" / "a.py").write_text(
        "from .pkg import b\n\ndef f(p):\n    return p == 'int8' or resolve_device('auto')\n")
    (pkg / "b.py").write_text("def g():\n    from .. import c\n")
    (tmp_path / "common" / "c.py").write_text("x = f'int8+{1}'\n")
    figures = run(Namespace(tree=tmp_path))
    assert figures["modules"] == 3 and figures["import_depth"] == 3  # a -> pkg.b -> c
    assert figures["imports_back_up"] == []
    assert figures["device_questions"] == {"common.a": 1}
    assert figures["precision_spelled"] == {"common.a": 1, "common.c": 1}
    (pkg / "d.py").write_text("from .. import a\n")  # the package imports the module back
    assert run(Namespace(tree=tmp_path))["imports_back_up"] == ["common.a <-> common.pkg"]
