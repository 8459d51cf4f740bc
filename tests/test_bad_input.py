"""Every failure a user can cause: exit code 2, stderr ending in one error line (progress lines may
come before it, a traceback never), no cache entry, no results file."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

import bert_quantize
import bert_tiny
from common.run.proofpoint import main
from conftest import OV, ROOT, make_checkpoint, requires_openvino, write_data


def _model(kind, tmp_path, tiny_checkpoint):
    if kind == "good":
        return str(tiny_checkpoint)
    folder = tmp_path / f"model-{kind}"
    if kind == "empty-folder":
        folder.mkdir()
    elif kind == "no-tokenizer":
        shutil.copytree(tiny_checkpoint, folder)
        for name in ("tokenizer.json", "vocab.txt"):
            (folder / name).unlink(missing_ok=True)
    elif kind == "three-labels":
        make_checkpoint(folder, num_labels=3, labels=("negative", "neutral", "positive"))
    elif kind == "regression":
        make_checkpoint(folder, num_labels=1)
    elif kind == "no-classifier":
        make_checkpoint(folder, kind="BertModel")
    elif kind == "a-file":
        folder.write_text("not a folder")
    elif kind == "missing-folder":
        return str(tmp_path / "no" / "such" / "folder")
    else:
        return kind  # a hub id
    return str(folder)


def _data(kind, tmp_path, data_file):
    if kind == "good":
        return str(data_file)
    path = tmp_path / "bad.tsv"
    if kind == "missing":
        return str(tmp_path / "nothing-here.tsv")
    if kind == "wrong-columns":
        write_data(path, [("good", 1)], columns=("review", "label"))
    elif kind == "label-3":
        write_data(path, [("good", 2), ("bad", 3)])
    elif kind == "empty-pair":
        path.write_text("sentence1\tsentence2\tlabel\ngood\tfine\t1\nbad\t\t0\n")
    elif kind == "empty-sentence":
        path.write_text("sentence\tlabel\ngood film\t1\n\t0\n")
    elif kind == "label-2":
        write_data(path, [("good", 1), ("bad", 2)])
    elif kind == "label-1.5":
        write_data(path, [("good", 1), ("bad", 1.5)])
    elif kind == "label-word":
        write_data(path, [("good", "positive")])
    elif kind == "no-rows":
        path.write_text("sentence\tlabel\n")
    elif kind == "unknown-format":
        path = tmp_path / "data.xlsx"
        path.write_text("x")
    return str(path)


CASES = [
    # id, model, data, extra argv, message pattern
    ("unknown hub id, hub unreachable", "someone/no-such-model", "good", [],
     r"cannot load model 'someone/no-such-model' \(pass a local checkpoint folder with --model DIR\): "
     r"the Hugging Face hub is unreachable \(.*\)$"),
    ("folder that is not a checkpoint", "empty-folder", "good", [], r"is not a checkpoint folder: it has no config.json"),
    ("checkpoint folder missing", "missing-folder", "good", [], r"checkpoint folder .* does not exist"),
    ("model path is a file", "a-file", "good", [], r"is a file; expected a checkpoint folder"),
    ("checkpoint without tokenizer", "no-tokenizer", "good", [], r"has no tokenizer"),
    ("regression head", "regression", "good", [],
     r"has 1 label \(a regression head\); the proof points compare the classes a classifier "
     r"picks: it needs 2 labels or more$"),
    ("a label the model does not have", "three-labels", "label-3", [],
     r"row 2: label 3 is not one of the model's labels: 0 \(negative\), 1 \(neutral\), "
     r"2 \(positive\)$"),
    ("a label column that is not there", "good", "good", ["--label-column", "stars"],
     r"has no column 'stars' \(its columns: sentence, label\); name the right one with "
     r"--label-column NAME$"),
    ("a pair column with an empty cell", "good", "empty-pair", [], r"row 2: empty 'sentence2'$"),
    ("not a sequence classifier", "no-classifier", "good", [], r"is not a sequence classifier \(BertModel\)"),
    ("data file missing", "good", "missing", [], r"data file .*nothing-here.tsv' does not exist"),
    ("unknown data format", "good", "unknown-format", [], r"has an unknown format"),
    ("no text column", "good", "wrong-columns", [],
     r"has no text column \(sentence or text, or a pair: sentence1/sentence2, question/sentence, "
     r"premise/hypothesis, question1/question2; its columns: review, label\); name it with "
     r"--text-column NAME$"),
    ("empty sentence", "good", "empty-sentence", [], r"row 2: empty sentence"),
    ("label outside 0/1", "good", "label-2", [], r"row 2: label 2 is not 0 or 1"),
    ("sentiment above 1", "good", "label-1.5", [],
     r"row 2: label 1.5 is not 0 or 1 \(nor a sentiment in \[0, 1\]\)"),
    ("--split of a file without a split column", "good", "good", ["--split", "test"],
     r"--split test: '.*' is one table \(no 'split' column\)"),
    ("--seed where nothing is drawn at random", "good", "good", ["--seed", "3"],
     r"unrecognized arguments: --seed 3"),
    ("a label name the model does not have", "good", "label-word", [],
     r"row 1: label 'positive' is not one of the model's labels: 0 \(label_0\), 1 \(label_1\)$"),
    ("no rows", "good", "no-rows", [], r"has no rows"),
    ("--limit 0", "good", "good", ["--limit", "0"], r"argument --limit: 0 is out of range"),
    ("--batch-size 0", "good", "good", ["--batch-size", "0"], r"argument --batch-size: 0 is out of range"),
    ("--batch-size x", "good", "good", ["--batch-size", "x"], r"argument --batch-size: 'x' is not an integer"),
    ("--max-length 4", "good", "good", ["--max-length", "4"], r"argument --max-length: 4 is out of range"),
    ("--max-length over the model's positions", "good", "good", ["--max-length", "512"],
     r"--max-length 512 exceeds the model's 128 positions"),
    ("--rebuild never, nothing cached", "good", "good", ["--rebuild", "never"],
     r"--rebuild never: no usable cached build"),
    ("--json folder missing", "good", "good", ["--json", "{tmp}/no/such/out.json"], r"--json .* does not exist"),
]


def assert_ends_in_one_error_line(stderr: str, pattern: str) -> None:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert sum(": error: " in line for line in lines) == 1, lines
    assert re.search(pattern, lines[-1]), lines[-1]


def exit_code(spec, argv) -> int:
    """main()'s return value, or the code of argparse's SystemExit for a bad flag."""
    try:
        return main(spec, argv)
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line_and_touches_nothing(case, tmp_path, tiny_checkpoint, data_file, capsys):
    _, model, data, extra, pattern = case
    cache, results = tmp_path / "cache", tmp_path / "results.json"
    argv = ["--model", _model(model, tmp_path, tiny_checkpoint), "--dataset",
            _data(data, tmp_path, data_file), "--cache-dir", str(cache), "--json", str(results),
            "--mismatches", str(tmp_path / "mismatches.tsv")]
    argv += [a.replace("{tmp}", str(tmp_path)) for a in extra]
    capsys.readouterr()
    assert exit_code(bert_tiny.SPEC, argv) == 2
    assert_ends_in_one_error_line(capsys.readouterr().err, pattern)
    assert not (cache / "entries").exists() or not list((cache / "entries").iterdir())
    assert not results.exists() and not (tmp_path / "mismatches.tsv").exists()


@pytest.mark.parametrize("extra, pattern", [
    (["--calibration-samples", "0"], r"argument --calibration-samples: 0 is out of range"),
    ([], r"--dataset is a local file, so name the training data .* --calibration-dataset FILE"),
    (["--calibration-dataset", "{data}"],
     r"12 of the 12 calibration sentences drawn from .* are also evaluated .*; calibrate on training data"),
])
def test_bad_calibration_input(extra, pattern, tmp_path, tiny_checkpoint, data_file, capsys):
    argv = ["--model", str(tiny_checkpoint), "--dataset", str(data_file),
            "--cache-dir", str(tmp_path / "cache")] + [a.replace("{data}", str(data_file)) for a in extra]
    assert exit_code(bert_quantize.SPEC, argv) == 2
    assert_ends_in_one_error_line(capsys.readouterr().err, pattern)
    assert not (tmp_path / "cache").exists()


def test_unwritable_cache_folder(tmp_path, tiny_checkpoint, data_file, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    argv = ["--model", str(tiny_checkpoint), "--dataset", str(data_file),
            "--cache-dir", str(blocker / "cache"), "--json", str(tmp_path / "r.json")]
    assert exit_code(bert_tiny.SPEC, argv) == 2
    assert_ends_in_one_error_line(capsys.readouterr().err, r"cache folder .* cannot be written .*--cache-dir DIR")
    assert not (tmp_path / "r.json").exists()


def test_results_are_replaced_whole(tmp_path, tiny_checkpoint, data_file, monkeypatch, capsys):
    """A failure while writing the results leaves the previous file intact and no temporary behind."""
    import common.host.files

    results = tmp_path / "r.json"
    argv = ["--model", str(tiny_checkpoint), "--dataset", str(data_file),
            "--cache-dir", str(tmp_path / "cache"), "--json", str(results)]
    assert exit_code(bert_tiny.SPEC, argv) == 0  # builds the cache entry
    results.write_text('{"previous": true}')

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(common.host.files.os, "fsync", disk_full)
    capsys.readouterr()
    assert exit_code(bert_tiny.SPEC, argv) == 2
    assert_ends_in_one_error_line(capsys.readouterr().err, r"cannot write '.*r.json': No space left")
    assert json.loads(results.read_text()) == {"previous": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "r.json"]


@pytest.mark.parametrize("backend", ["onnxruntime", OV])
def test_ctrl_c_during_a_build_leaves_no_entry(tmp_path, tiny_checkpoint, data_file, monkeypatch,
                                               capsys, backend):
    import importlib

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module("common.backends.export"), "export_onnx", interrupted)
    cache = tmp_path / "cache"
    argv = ["--model", str(tiny_checkpoint), "--dataset", str(data_file), "--cache-dir", str(cache),
            "--json", str(tmp_path / "r.json"), "--backend", backend]
    assert exit_code(bert_tiny.SPEC, argv) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        "bert_tiny: interrupted; no partial build or results file was left behind"
    assert not list((cache / "entries").iterdir()) and not list((cache / "tmp").iterdir())
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("backend, model_file, entry_name", [
    ("onnxruntime", "model.onnx", "onnx"),  # ONNX Runtime's fp32 build is the shared export
    pytest.param("openvino", "model.bin", "ov-float", marks=requires_openvino)])
@pytest.mark.parametrize("damage", ["truncate-model", "garbage-state"])
def test_a_damaged_cached_build_is_detected_and_rebuilt(damage, backend, model_file, entry_name,
                                                        tmp_path, tiny_checkpoint, data_file, capsys):
    cache = tmp_path / "cache"
    argv = ["--model", str(tiny_checkpoint), "--dataset", str(data_file), "--cache-dir", str(cache),
            "--json", str(tmp_path / "r.json"), "--backend", backend, "--precision", "fp32"]
    assert exit_code(bert_tiny.SPEC, argv) == 0
    (entry,) = (cache / "entries").glob(f"{entry_name}-*")
    if damage == "truncate-model":
        model = entry / model_file
        model.write_bytes(model.read_bytes()[:1000])
    else:
        (entry / "state.json").write_text("\x00garbage")
    capsys.readouterr()
    assert exit_code(bert_tiny.SPEC, argv) == 0
    err = capsys.readouterr().err
    assert re.search(rf"cache entry '{entry_name}-\w+' is unusable \(.*\); rebuilding", err)
    built = json.loads((tmp_path / "r.json").read_text())["runs"][1]
    assert built["cache_hit"] is False and built["agreement"] == 1.0


def test_unknown_hub_id_in_offline_mode(tmp_path, data_file):
    """HF_HUB_OFFLINE=1 skips the probe; a model the local cache lacks is still one clear line.
    A subprocess, since the Hugging Face libraries read HF_HUB_OFFLINE when they are imported."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")}
    proc = subprocess.run([sys.executable, "bert_tiny.py", "--model", "someone/no-such-model",
                           "--dataset", str(data_file), "--cache-dir", str(tmp_path / "cache")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert_ends_in_one_error_line(
        proc.stderr, r"cannot load model 'someone/no-such-model' \(pass a local checkpoint folder "
                     r"with --model DIR\): HF_HUB_OFFLINE is set and it is not in the local")
    assert not (tmp_path / "cache").exists()
