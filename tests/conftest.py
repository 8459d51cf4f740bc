"""Fixtures: a tiny random BERT classifier with a real tokenizer, and small SST-2-like data files."""
from __future__ import annotations

import atexit
import importlib.util
import itertools
import json
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import pytest

# Hermetic: a user's Hugging Face settings (offline mode, endpoint, caches) must not change what the
# tests see. Set before any Hugging Face library is imported, since they read them at import. No
# test may touch the real hub: it is a closed local port.
for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_CACHE",
              "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE", "TRANSFORMERS_CACHE", "HF_TOKEN"):
    os.environ.pop(_name, None)
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="bert-proof-points-hf-home-")
atexit.register(shutil.rmtree, os.environ["HF_HOME"], ignore_errors=True)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.host.paths import ROOT, SHARED  # noqa: E402

# The suite must pass whatever CPU runs it: PROOF_POINTS_TEST_CPU=<a results JSON> makes every
# in-process test see that file's CPU (model, family and model numbers, matrix flags) instead of
# this host's, e.g. each CPU under bench/results in turn. Patched before any module of the project
# takes its own reference to cpu_info.
if os.environ.get("PROOF_POINTS_TEST_CPU"):
    import common.host.cpu  # noqa: E402

    _env = json.loads(Path(os.environ["PROOF_POINTS_TEST_CPU"]).read_text())["environment"]
    _as_recorded = {"model": _env["cpu"], "family": _env.get("cpu_family", ""),
                    "logical_cpus": os.cpu_count(), "flags": _env["cpu_flags"]}
    common.host.cpu.cpu_info = lambda: _as_recorded


# Where a Ctrl-C can land between two steps that touch the disk: the project's code and the
# standard library's file handling (pathlib's and json's lines are computation, like their caller's).
def touches_files(code_file: str) -> bool:
    return (code_file.startswith(str(ROOT / "common"))
            or os.path.basename(code_file) in ("shutil.py", "tempfile.py", "contextlib.py"))


def ctrl_c_at_each_line(prepare: Callable[[], None], action: Callable[[], object]) -> Iterator[int]:
    """Ctrl-C at every moment of `action`: run prepare() then action() again and again, the n-th
    time with a real SIGINT sent to this process, under the proof points' handler, as the n-th of
    action's lines that touches_files() runs; yields n after each run, until a run ends before its
    n-th line. A SIGINT that a held() step recorded is raised after the run."""
    from common.host import interrupt

    previous = signal.getsignal(signal.SIGINT)
    try:
        for n in itertools.count(1):
            lines = 0

            def at_each_line(frame, event, arg):
                nonlocal lines
                if event == "line" and touches_files(frame.f_code.co_filename):
                    lines += 1
                    if lines == n:
                        signal.raise_signal(signal.SIGINT)
                return at_each_line

            interrupt.install()  # forgets the last run's Ctrl-C
            prepare()
            sys.settrace(at_each_line)
            try:
                action()
                sys.settrace(None)
                interrupt.check()
            except KeyboardInterrupt:
                pass
            finally:
                sys.settrace(None)
            if lines < n:
                return
            yield n
    finally:
        interrupt.install()
        signal.signal(signal.SIGINT, previous)


WORDS = ("good great fine fun charming lovely bad awful dull boring terrible movie film story "
         "actors plot it is was a the and but not very , . ' s").split()
SENTENCES = [
    ("it 's a charming and lovely film .", 1),
    ("a dull , boring plot .", 0),
    ("great actors", 1),
    ("the story was not very fun and the actors were awful , but the film is fine .", 0),
    ("terrible", 0),
    ("good movie , great story , lovely actors .", 1),
    ("it was fine but dull", 0),
    ("a fun film", 1),
    ("the plot is bad and the movie is boring and the actors are awful and it is not fun .", 0),
    ("lovely", 1),
    ("not very good", 0),
    ("charming , great fun", 1),
]


def write_data(path: Path, rows=SENTENCES, columns=("sentence", "label")) -> Path:
    """Write rows in the format the file extension names."""
    import pandas as pd

    frame = pd.DataFrame([dict(zip(columns, row)) for row in rows], columns=list(columns))
    suffix = path.suffix
    if suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict("records")))
    else:
        raise ValueError(suffix)
    return path


def _tiny_config(kind: str, vocab_size: int, num_labels: int):
    """Random, tiny, and shaped like each family: what the export and the reference must handle."""
    import transformers as t

    common = dict(vocab_size=vocab_size, num_labels=num_labels, max_position_embeddings=130)
    if kind == "distilbert":  # forward takes no token_type_ids
        return t.DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, pad_token_id=0,
                                  **common), t.DistilBertForSequenceClassification
    if kind == "roberta":  # positions offset past the padding index; one token type
        return t.RobertaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=64, type_vocab_size=1, pad_token_id=0,
                               **common), t.RobertaForSequenceClassification
    if kind == "electra":  # embeddings narrower than the hidden size
        return t.ElectraConfig(embedding_size=16, hidden_size=32, num_hidden_layers=2,
                               num_attention_heads=2, intermediate_size=64, **common), \
            t.ElectraForSequenceClassification
    if kind == "albert":  # one layer's weights shared across the stack
        return t.AlbertConfig(embedding_size=16, hidden_size=32, num_hidden_layers=2,
                              num_attention_heads=2, intermediate_size=64, **common), \
            t.AlbertForSequenceClassification
    if kind == "minilm":  # a BERT with a narrow hidden size split over many heads
        return t.BertConfig(hidden_size=48, num_hidden_layers=3, num_attention_heads=12,
                            intermediate_size=96, **common), t.BertForSequenceClassification
    config = t.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=64, **{**common, "max_position_embeddings": 128})
    return config, t.BertModel if kind == "BertModel" else t.BertForSequenceClassification


def make_checkpoint(folder: Path, num_labels: int = 2, seed: int = 0, kind: str = "bert",
                    labels: tuple[str, ...] = ()) -> Path:
    """A random checkpoint of `kind` (bert, distilbert, roberta, electra, albert, minilm, or
    BertModel: no classifier head) with a real WordPiece tokenizer over WORDS; `labels`: the
    names of its classes (id2label), else transformers' LABEL_0, LABEL_1, ..."""
    import torch
    from transformers import BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab-source.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    try:  # transformers 5.x takes vocab=; 4.x (the GroqFlow stack) takes vocab_file=
        tokenizer = BertTokenizer(vocab=str(vocab))
    except TypeError:
        tokenizer = BertTokenizer(vocab_file=str(vocab))
    tokenizer.save_pretrained(folder)
    vocab.unlink()
    config, model_class = _tiny_config(kind, len(WORDS) + 5, num_labels)
    if labels:
        config.id2label = dict(enumerate(labels))
        config.label2id = {name: i for i, name in enumerate(labels)}
    torch.manual_seed(seed)
    model_class(config).eval().save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def sensitive_tiny(tmp_path_factory):
    """The bundled BERT-tiny with one outlier channel after every layer (x30): per-tensor INT8
    activations then lose enough of the others to flip a few answers."""
    import torch

    from common.inputs.checkpoints import load_checkpoint

    folder = tmp_path_factory.mktemp("sensitive") / "bert-tiny"
    shutil.copytree(ROOT / "models" / "bert-tiny-sst2", folder)
    model = load_checkpoint(str(folder)).model
    with torch.no_grad():
        for layer in model.bert.encoder.layer:
            layer.output.LayerNorm.weight[0] *= 30.0
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def data_file(tmp_path_factory) -> Path:
    return write_data(tmp_path_factory.mktemp("data") / "validation.tsv")


@pytest.fixture(scope="session")
def train_file(tmp_path_factory) -> Path:
    rows = [(f"{a} {b} film .", i % 2) for i, (a, b) in
            enumerate((a, b) for a in WORDS[:10] for b in WORDS[10:16])]
    return write_data(tmp_path_factory.mktemp("train") / "train.tsv", rows)


@pytest.fixture
def cache_dir(tmp_path) -> Path:
    return tmp_path / "cache"


# The GroqFlow stack (requirements-groq.txt) has no OpenVINO: its tests are skipped there.
OPENVINO = importlib.util.find_spec("openvino") is not None
requires_openvino = pytest.mark.skipif(not OPENVINO, reason="openvino is not installed")
OV = pytest.param("openvino", marks=requires_openvino)

requires_shared = pytest.mark.skipif(not (SHARED / "models").is_dir(),
                                     reason="../shared (checkpoints and SST-2) is not present")

# Tests of minutes each (a --min-agreement search on the shared MiniLM): run where
# PROOF_POINTS_LONG_TESTS=1 is set, by hand: .ci/run leaves them out (docs/testing.md).
long_test = pytest.mark.skipif(not os.environ.get("PROOF_POINTS_LONG_TESTS"),
                               reason="minutes long: set PROOF_POINTS_LONG_TESTS=1")


# A GPU, simulated: torch "can use" CUDA, and a build on it runs on the CPU, so that --device, the
# candidates, the trial, the labels and the report of a GPU host run here (CI has no GPU).
SIMULATED_GPU = {"name": "Simulated GPU", "memory_bytes": 80 * 2**30, "compute_capability": "9.0",
                 "multiprocessors": 132, "driver": "580.0", "cuda_runtime": "13.0", "devices": 1}


@pytest.fixture
def simulated_gpu(monkeypatch):
    import torch

    from common.host import gpu

    monkeypatch.setattr(gpu, "cuda_problem", lambda: None)
    monkeypatch.setattr(gpu, "torch_device", lambda device: torch.device("cpu"))
    monkeypatch.setattr(gpu, "gpu_info", lambda: dict(SIMULATED_GPU))
    monkeypatch.setattr(gpu, "native_bf16", lambda: True)  # compute capability 9.0
    return SIMULATED_GPU


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (`pytest -m gpu` on a GPU host: "
                                       "the device check); skipped, saying so, without one")


@pytest.fixture(autouse=True)
def cpu_unless_marked_gpu(request, monkeypatch):
    """The suite runs on the CPU on a GPU host too, as it does in CI (`--device auto` would
    otherwise take the GPU in many tests); only the tests marked `gpu` see the GPU, and they are
    skipped where torch can use none."""
    from common.host import gpu

    if request.node.get_closest_marker("gpu"):
        problem = gpu.cuda_problem()
        if problem is not None:
            pytest.skip(f"needs a CUDA GPU: {problem}")
        return
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # for the scripts the tests start
    monkeypatch.setattr(gpu, "cuda_problem", lambda: "the tests run on the CPU unless marked gpu")
    monkeypatch.setattr(gpu, "gpu_info", lambda: None)


@pytest.fixture
def no_gpu(monkeypatch):
    """Whatever this host has, torch finds no GPU."""
    from common.host import gpu

    monkeypatch.setattr(gpu, "cuda_problem", lambda: "torch 2.x (CUDA 13.0) finds no usable GPU")
    monkeypatch.setattr(gpu, "gpu_info", lambda: None)


@pytest.fixture
def quick_compile(monkeypatch):
    """torch_compile builds through dynamo's `eager` backend: the backend's own code in a second
    or two, without inductor's code generation (tests/test_torch_compile.py compiles with inductor
    itself once)."""
    from common.backends import torch_compile

    monkeypatch.setitem(torch_compile.FLOAT_RECIPE, "compiler", "eager")


def chosen_by_the_rule(choice: dict) -> dict:
    """The trial entry the documented rule picks (docs/trial.md), worked out here from the
    record's figures: of the candidates passing the gate, those within 3% of the fastest, the
    one agreeing most."""
    allowed = choice["gate"]["allowed_disagreements"]
    passing = [c for c in choice["candidates"] if not c.get("compared_only")
               and c.get("disagreements", allowed + 1) <= allowed]
    top = max(c["sent_per_s"] for c in passing)
    near = [c for c in passing if c["sent_per_s"] >= 0.97 * top]
    return max(near, key=lambda c: (c["agreement"], c["sent_per_s"]))


def valid_results(document: dict) -> dict:
    """The results document, validated against docs/results.schema.json (jsonschema raises)."""
    import jsonschema

    schema = json.loads((ROOT / "docs" / "results.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(document)
    return document
