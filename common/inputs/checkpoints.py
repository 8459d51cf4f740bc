"""Load a sequence classifier (2 labels or more) and its tokenizer, from a local folder or a hub id."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from ..host.errors import UserError, first_line
from .examples import LabelSpace
from .sources import looks_local

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")


# config fields that only name things: a change of them changes nothing the model computes
NAMING_FIELDS = ("_name_or_path", "transformers_version", "id2label", "label2id")


@dataclass(frozen=True)
class Checkpoint:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    digest: str  # hash of the weights (the JSON's weights_sha256)
    identity: str  # the model as every cache key names it: weights, config, tokenizer

    @property
    def labels(self) -> LabelSpace:
        """The model's labels: their count, and their names (lower case) from its label2id."""
        config = self.model.config
        names = {str(name).strip().casefold(): int(i) for name, i in config.label2id.items()}
        return LabelSpace(config.num_labels, names)


def weights_digest(model: torch.nn.Module) -> str:
    """Hash every parameter and buffer so a changed checkpoint never reuses an old build."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tensor.dtype).encode())
        h.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def tokenizer_fingerprint(tokenizer) -> str | None:
    """What turns text into the ids the model sees: a fast tokenizer's whole pipeline (normaliser,
    pre-tokeniser, vocabulary, post-processor), else its class, vocabulary and special tokens;
    and the padding id."""
    if tokenizer is None:
        return None
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else json.dumps(
        [type(tokenizer).__name__, sorted(tokenizer.get_vocab().items()),
         tokenizer.special_tokens_map], default=str)
    return hashlib.sha256(f"{text}\npad {tokenizer.pad_token_id}".encode()).hexdigest()


def model_identity(model: torch.nn.Module, tokenizer, weights: str) -> str:
    """The model as every cache key names it: its weights, every config field that can change
    what it computes (the whole config but the fields that only name things; the label count and
    the attention implementation kept) and what its tokenizer makes of text. A config edited
    without touching a tensor (an activation, an epsilon) is another model."""
    config = {k: v for k, v in model.config.to_dict().items() if k not in NAMING_FIELDS}
    config.update(num_labels=model.config.num_labels,
                  attention=getattr(model.config, "_attn_implementation", None))
    parts = {"weights": weights, "config": config, "tokenizer": tokenizer_fingerprint(tokenizer)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def checkpoint_of(model: torch.nn.Module, tokenizer) -> Checkpoint:
    """A Checkpoint of a loaded model, its weights digest and identity computed."""
    digest = weights_digest(model)
    return Checkpoint(model=model, tokenizer=tokenizer, digest=digest,
                      identity=model_identity(model, tokenizer, digest))


def _check_classifier(config, source: str) -> None:
    architectures = getattr(config, "architectures", None) or []
    if not any(a.endswith("ForSequenceClassification") for a in architectures):
        found = ", ".join(architectures) or "no architecture"
        raise UserError(f"'{source}' is not a sequence classifier ({found}); "
                        "the proof points need a checkpoint fine-tuned for SST-2")
    if config.num_labels < 2:
        raise UserError(f"'{source}' has {config.num_labels} label (a regression head); the proof "
                        "points compare the classes a classifier picks: it needs 2 labels or more")


def load_checkpoint(source: str) -> Checkpoint:
    """Load model (fp32, eval mode, CPU) and tokenizer; every failure becomes a UserError."""
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UserError(f"--model '{source}' is a file; expected a checkpoint folder or hub id")
        if not (path / "config.json").is_file():
            raise UserError(f"'{source}' is not a checkpoint folder: it has no config.json")
        if not any((path / name).is_file() for name in TOKENIZER_FILES):
            raise UserError(f"'{source}' has no tokenizer (none of {', '.join(TOKENIZER_FILES)})")
        location = str(path)
    else:
        if looks_local(source):
            raise UserError(f"checkpoint folder '{source}' does not exist")
        location = source  # a hub id, found loadable by sources.resolve
    try:
        config = AutoConfig.from_pretrained(location)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load the checkpoint config of '{source}': {first_line(exc)}") from None
    _check_classifier(config, source)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location)
    except (OSError, ValueError, TypeError) as exc:
        raise UserError(f"cannot load a tokenizer from '{source}': {first_line(exc)}") from None
    if len(tokenizer) > config.vocab_size:
        raise UserError(f"the tokenizer of '{source}' has {len(tokenizer)} tokens, "
                        f"more than the model's {config.vocab_size}")
    try:
        model = AutoModelForSequenceClassification.from_pretrained(location)
    except (OSError, ValueError, RuntimeError) as exc:
        raise UserError(f"cannot load the weights of '{source}': {first_line(exc)}") from None
    model = model.float().eval()
    return checkpoint_of(model, tokenizer)

