"""Nothing stale: the model as every cache key names it (its weights, every config field that can
change what it computes, its tokenizer), and the calibration samples as the model sees them."""
import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

import bert_tiny
from common.inputs.calibration import Calibration
from common.inputs.batching import tokenize
from common.inputs.checkpoints import load_checkpoint, model_identity, tokenizer_fingerprint
from common.run.proofpoint import main


def _run(checkpoint, data_file, cache_dir, out, *extra):
    return main(bert_tiny.SPEC, ["--model", str(checkpoint), "--dataset", str(data_file),
                                 "--cache-dir", str(cache_dir), "--json", str(out), *extra])


def _edit_config(folder, **fields):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, **fields}))


@pytest.mark.parametrize("backend", ["onnxruntime", "auto"])
def test_a_config_edited_without_touching_a_tensor_is_another_model(
        tiny_checkpoint, data_file, tmp_path, backend):
    """gelu -> relu changes what the model computes, not its weights: the build is rebuilt (and the
    trial run again) and answers as the edited reference does; edited back, the first is reused."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_checkpoint, folder)
    cache, out = tmp_path / "cache", tmp_path / "r.json"
    argv = ("--backend", backend)

    def built() -> tuple[dict, dict]:
        assert _run(folder, data_file, cache, out, *argv) == 0
        doc = json.loads(out.read_text())
        return doc["runs"][1], doc["choice"]

    first, _ = built()
    assert first["cache_hit"] is False and first["agreement"] == 1.0
    _edit_config(folder, hidden_act="relu")
    edited, choice = built()
    assert edited["cache_hit"] is False and edited["agreement"] == 1.0
    assert edited["max_abs_logit_diff"] < 1e-4
    assert choice["cached"] is False
    _edit_config(folder, hidden_act="gelu")
    again, choice = built()
    assert again["cache_hit"] is True and again["agreement"] == 1.0
    assert choice["cached"] is (backend == "auto")


def test_fields_that_only_name_things_keep_the_identity(tiny_checkpoint, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_checkpoint, folder)
    before = load_checkpoint(str(folder)).identity
    _edit_config(folder, id2label={"0": "bad", "1": "good"}, label2id={"bad": 0, "good": 1},
                 transformers_version="0.0.0", _name_or_path="elsewhere")
    assert load_checkpoint(str(folder)).identity == before


@pytest.mark.parametrize("field, value", [("hidden_act", "relu"), ("layer_norm_eps", 1e-5),
                                          ("position_embedding_type", "relative_key"),
                                          ("num_labels", 3)])
def test_each_config_field_that_computes_changes_the_identity(tiny_checkpoint, field, value):
    checkpoint = load_checkpoint(str(tiny_checkpoint))
    before = checkpoint.identity
    assert model_identity(checkpoint.model, checkpoint.tokenizer, checkpoint.digest) == before
    setattr(checkpoint.model.config, field, value)
    assert model_identity(checkpoint.model, checkpoint.tokenizer, checkpoint.digest) != before


def test_the_tokenizer_and_the_weights_are_in_the_identity(tiny_checkpoint, tmp_path):
    checkpoint = load_checkpoint(str(tiny_checkpoint))
    fingerprint = tokenizer_fingerprint(checkpoint.tokenizer)
    assert tokenizer_fingerprint(load_checkpoint(str(tiny_checkpoint)).tokenizer) == fingerprint
    checkpoint.tokenizer.add_tokens(["zzzz"])  # another id for a word the model sees
    assert tokenizer_fingerprint(checkpoint.tokenizer) != fingerprint
    assert model_identity(checkpoint.model, checkpoint.tokenizer, checkpoint.digest) != \
        checkpoint.identity
    assert model_identity(checkpoint.model, None, "other weights") != \
        model_identity(checkpoint.model, None, checkpoint.digest)


def test_calibration_identity_holds_token_types_padding_and_the_length_cut(tiny_checkpoint):
    tokenizer = load_checkpoint(str(tiny_checkpoint)).tokenizer
    encoded = tokenize(tokenizer, ["a fun film", "great actors"], 128, ["good", "bad"])
    calibration = Calibration(source="train.tsv", seed=0, indices=np.array([3, 4]),
                              encoded=encoded, requested=2)
    tokens = calibration.cache_parts()["tokens"]
    assert replace(calibration).cache_parts()["tokens"] == tokens
    other_types = replace(encoded, type_ids=[np.zeros_like(t) for t in encoded.type_ids])
    assert any(t.any() for t in encoded.type_ids)  # a pair: the second text's types are 1
    for changed in (other_types, replace(encoded, pad_id=encoded.pad_id + 1),
                    replace(encoded, max_length=64)):
        assert replace(calibration, encoded=changed).cache_parts()["tokens"] != tokens


def test_the_padding_id_and_the_attention_implementation_are_in_the_identity(tiny_checkpoint):
    """The padding id fills every batch's tail (another id, other inputs), and the attention
    implementation (eager, sdpa) is another computation: neither is in the tokenizer's pipeline
    nor in the config's dictionary, so each is named in the identity on its own."""
    checkpoint = load_checkpoint(str(tiny_checkpoint))
    pipeline = checkpoint.tokenizer.backend_tokenizer.to_str()
    checkpoint.tokenizer.pad_token = "[SEP]"
    assert checkpoint.tokenizer.backend_tokenizer.to_str() == pipeline  # only the pad id moved
    assert model_identity(checkpoint.model, checkpoint.tokenizer, checkpoint.digest) != \
        checkpoint.identity
    checkpoint = load_checkpoint(str(tiny_checkpoint))
    config = checkpoint.model.config
    config._attn_implementation = "eager" if config._attn_implementation != "eager" else "sdpa"
    assert model_identity(checkpoint.model, checkpoint.tokenizer, checkpoint.digest) != \
        checkpoint.identity
