"""Classifier checkpoints on disk: Hugging Face BERT-family teachers in, students out.

A checkpoint is a directory:

* ``model.safetensors`` — the weights, named as in ``BertForSequenceClassification``;
  ``ElectraForSequenceClassification``, ``RobertaForSequenceClassification`` (and
  XLM-R's) and ``DistilBertForSequenceClassification`` are read too, their names mapped
  onto BERT's (see ``_FAMILIES``): their encoders compute what BERT's does, RoBERTa numbers
  positions from ``pad_token_id + 1``, and the heads differ only in their activation.
  ``pytorch_model.bin`` is read with ``torch.load(weights_only=True)``; latbench never
  writes pickle. One thing differs in training only: ELECTRA's and RoBERTa's heads apply
  dropout before their first dense layer too, latbench's only after it;
* ``config.json`` — a Hugging Face BERT config, written whenever the architecture has one
  (equal layers), so ``transformers`` can load a latbench student as it is;
* ``latbench.json`` — latbench's own description (``ClassifierConfig`` + label names),
  written always: it is the only one that can describe per-layer head/FFN sizes and
  fixed head sizes;
* the tokenizer: ``tokenizer.json`` (``tokenizers`` format), BERT's ``vocab.txt``, or
  RoBERTa's ``vocab.json`` + ``merges.txt``; special tokens from ``special_tokens_map.json``.

Nothing is downloaded: a path that is not such a directory is a one-line error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from latbench.arch import Arch
from latbench.distill.model import Classifier, ClassifierConfig
from latbench.errors import LatbenchError
from latbench.files import atomic_output

LATBENCH_FILE = "latbench.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
#: Buffers some Hugging Face versions save beside the parameters; they hold no weights.
_IGNORED_KEYS = ("bert.embeddings.position_ids", "bert.embeddings.token_type_ids")


@dataclass(frozen=True)
class _Family:
    """How a Hugging Face sequence classifier maps onto latbench's BERT classifier:
    prefix renames of its parameter names (first match wins), the head's activation, and
    prefixes of parameters its classifier never uses."""

    renames: tuple[tuple[str, str], ...]
    head_activation: str
    unused: tuple[str, ...] = ()


#: ELECTRA and RoBERTa have BERT's encoder under another prefix and, in place of BERT's
#: pooler + classifier, a head of the same two layers (dense, activation, out_proj) on the
#: first token. DistilBERT names every layer its own way, has no token types, and its head
#: is a pre-classifier with ReLU. Their encoders compute exactly what BERT's does.
_HEAD = (("classifier.dense.", "bert.pooler.dense."), ("classifier.out_proj.", "classifier."))
_DISTILBERT_LAYER = (
    (".attention.q_lin.", ".attention.self.query."),
    (".attention.k_lin.", ".attention.self.key."),
    (".attention.v_lin.", ".attention.self.value."),
    (".attention.out_lin.", ".attention.output.dense."),
    (".sa_layer_norm.", ".attention.output.LayerNorm."),
    (".ffn.lin1.", ".intermediate.dense."),
    (".ffn.lin2.", ".output.dense."),
    (".output_layer_norm.", ".output.LayerNorm."),
)
_FAMILIES = {
    "bert": _Family((), "tanh"),
    "electra": _Family((("electra.", "bert."), *_HEAD), "gelu"),
    "roberta": _Family((("roberta.", "bert."), *_HEAD), "tanh", unused=("roberta.pooler.",)),
    "xlm-roberta": _Family((("roberta.", "bert."), *_HEAD), "tanh", unused=("roberta.pooler.",)),
    "distilbert": _Family(
        (
            ("distilbert.embeddings.", "bert.embeddings."),
            ("distilbert.transformer.layer.", "bert.encoder.layer."),
            ("pre_classifier.", "bert.pooler.dense."),
        ),
        "relu",
    ),
}
#: Model types whose position table starts with ``pad_token_id + 1`` reserved rows.
_OFFSET_POSITIONS = ("roberta", "xlm-roberta")


class CheckpointError(LatbenchError, ValueError):
    """A teacher or student directory that is missing, incomplete or not a BERT classifier."""


@dataclass(frozen=True)
class Encoded:
    """Token ids of a batch of texts, padded to the longest (int64 tensors [batch, seq])."""

    input_ids: Tensor
    attention_mask: Tensor
    token_type_ids: Tensor

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def take(self, index: Tensor) -> Encoded:
        """Rows ``index``, trimmed to the longest of them (less padding, less compute)."""
        mask = self.attention_mask[index]
        seq = int(mask.sum(dim=1).max())
        return Encoded(self.input_ids[index, :seq], mask[:, :seq], self.token_type_ids[index, :seq])


#: Special tokens (classification, separator, padding) of the two tokenizer families.
BERT_SPECIALS = ("[CLS]", "[SEP]", "[PAD]")
ROBERTA_SPECIALS = ("<s>", "</s>", "<pad>")


class TextEncoder:
    """A ``tokenizers.Tokenizer`` that adds the classification and separator tokens and pads
    to the longest: BERT's ``[CLS] a [SEP] b [SEP]`` or RoBERTa's ``<s> a </s></s> b </s>``.

    A tokenizer that already has a post-processor (Hugging Face's ``tokenizer.json`` does)
    keeps it. Otherwise ``specials`` (cls, sep, pad) name the tokens; by default BERT's when
    the vocabulary has ``[CLS]``, else RoBERTa's."""

    def __init__(self, tokenizer: Any, max_len: int, specials: Sequence[str] | None = None) -> None:
        from tokenizers.processors import TemplateProcessing

        tokenizer = tokenizer.__class__.from_str(tokenizer.to_str())  # a copy we may configure
        vocab = tokenizer.get_vocab()
        if specials is None:
            specials = BERT_SPECIALS if BERT_SPECIALS[0] in vocab or "<s>" not in vocab else ROBERTA_SPECIALS
        cls, sep, pad = specials
        missing = [t for t in specials if t not in vocab]
        if missing:
            raise CheckpointError(
                f"the tokenizer has no {', '.join(missing)} token(s); a classifier's tokenizer needs "
                f"{cls}, {sep} and {pad} in its vocabulary"
            )
        if tokenizer.post_processor is None:
            pair = f"{cls} $A {sep} $B:1 {sep}:1" if cls == "[CLS]" else f"{cls} $A {sep} {sep} $B {sep}"
            tokenizer.post_processor = TemplateProcessing(
                single=f"{cls} $A {sep}",
                pair=pair,
                special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])],
            )
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=max_len)
        self.tokenizer = tokenizer
        self.max_len = max_len
        self.pad_id = vocab[pad]

    def encode(self, texts: Sequence[str], pairs: Sequence[str | None] | None = None) -> Encoded:
        if pairs is not None and any(p is not None for p in pairs):
            items: list[Any] = [(t, p or "") for t, p in zip(texts, pairs, strict=True)]
        else:
            items = list(texts)
        encodings = self.tokenizer.encode_batch(items)
        seq = max((len(e.ids) for e in encodings), default=1)
        ids = torch.full((len(encodings), seq), self.pad_id, dtype=torch.int64)
        mask = torch.zeros((len(encodings), seq), dtype=torch.int64)
        types = torch.zeros((len(encodings), seq), dtype=torch.int64)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            ids[row, :n] = torch.tensor(enc.ids)
            mask[row, :n] = 1
            types[row, :n] = torch.tensor(enc.type_ids)
        return Encoded(ids, mask, types)

    def save(self, directory: Path) -> None:
        with atomic_output(directory / TOKENIZER_FILE) as tmp:
            self.tokenizer.save(tmp)


@dataclass
class Checkpoint:
    """A loaded classifier: model (eval mode), its tokenizer and its label names."""

    model: Classifier
    encoder: TextEncoder
    label_names: tuple[str, ...]
    path: Path

    @property
    def arch(self) -> Arch:
        return self.model.arch


def load_checkpoint(path: str | Path, *, max_len: int | None = None) -> Checkpoint:
    """Load a teacher or student directory (see the module docstring)."""
    directory = Path(path)
    if not directory.is_dir():
        raise CheckpointError(
            f"{directory} is not a directory; give the folder of a Hugging Face BERT "
            "sequence classifier (config.json, model.safetensors, tokenizer) or a latbench student"
        )
    hf_type = None  # the Hugging Face model type, when the weights are named by Hugging Face
    quantization = None  # (weight bits, activation bits, fixed scales) of an LSQ student
    if (directory / LATBENCH_FILE).is_file():
        data = _read_json(directory / LATBENCH_FILE)
        try:
            config = ClassifierConfig.from_dict(data["classifier"])
            label_names = tuple(str(n) for n in data["label_names"])
            if data.get("quantization"):
                q = data["quantization"]
                quantization = (int(q["weight_bits"]), int(q["activation_bits"]), bool(q.get("fixed_scales")))
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{directory / LATBENCH_FILE} is malformed: {exc}") from None
        max_len = max_len or int(data.get("max_len", 128))
    elif (directory / "config.json").is_file():
        config, label_names, hf_max_len, hf_type = _config_from_hf(directory)
        max_len = max_len or hf_max_len
    else:
        raise CheckpointError(
            f"{directory} has no config.json (Hugging Face) or {LATBENCH_FILE} (latbench); "
            "is it the right folder?"
        )
    if max_len > config.max_tokens:
        raise CheckpointError(f"max length {max_len} exceeds the model's {config.max_tokens} positions")
    model = Classifier(config)
    if quantization is not None:
        from latbench.distill.quant import quantize_student

        quantize_student(model, quantization[0], quantization[1], fixed_scales=quantization[2])
    state = _read_weights(directory)
    if hf_type is not None:
        state = _bert_names(state, hf_type, config.arch.hidden)
    for key in _IGNORED_KEYS:
        state.pop(key, None)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        hint = (
            "; it has no classification head: fine-tune it on your task first"
            if any(k.startswith("classifier.") for k in missing)
            else ""
        )
        raise CheckpointError(
            f"weights in {directory} do not fit a BERT sequence classifier: "
            f"missing {missing[:3]}{'…' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'…' if len(unexpected) > 3 else ''}{hint}"
        )
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"weight {key} in {directory} has shape {tuple(tensor.shape)}, "
                f"the config says {tuple(expected[key].shape)}"
            )
    model.load_state_dict(state)
    model.eval()
    tokenizer, specials = _read_tokenizer(directory)
    return Checkpoint(model, TextEncoder(tokenizer, max_len, specials), label_names, directory)


def save_checkpoint(
    directory: str | Path, model: Classifier, encoder: TextEncoder, label_names: Sequence[str]
) -> list[str]:
    """Write ``model`` as a checkpoint; returns the names of the files written. The
    Hugging Face ``config.json`` is written only when the architecture has one."""
    from safetensors.torch import save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    config = model.config
    if len(label_names) != config.num_labels:
        raise ValueError(f"{len(label_names)} label names for {config.num_labels} labels")
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    with atomic_output(out / WEIGHTS_FILE) as tmp:
        save_file(state, tmp, metadata={"format": "pt"})
    encoder.save(out)
    written = [WEIGHTS_FILE, TOKENIZER_FILE]
    own = {"classifier": config.to_dict(), "label_names": list(label_names), "max_len": encoder.max_len}
    from latbench.distill.quant import quantization_of

    quantization = quantization_of(model)
    if quantization is not None:
        own["quantization"] = quantization
    _write_json(out / LATBENCH_FILE, own)
    written.append(LATBENCH_FILE)
    hf = hf_config(config, label_names) if quantization is None else None  # transformers has no LSQ layers
    if hf is not None:
        _write_json(out / "config.json", hf)
        written.append("config.json")
    return written


def hf_config(config: ClassifierConfig, label_names: Sequence[str]) -> dict[str, Any] | None:
    """The ``BertForSequenceClassification`` config for ``config``, or None when Hugging
    Face's BERT cannot express the model (per-layer sizes, a fixed head size, the head of
    ELECTRA or DistilBERT, or RoBERTa's position numbering)."""
    if (
        not config.arch.is_uniform
        or config.arch.head_size
        or config.pooler_activation != "tanh"
        or config.position_offset
    ):
        return None
    data = config.arch.to_hf_dict("bert")
    data.update(
        architectures=["BertForSequenceClassification"],
        hidden_dropout_prob=config.hidden_dropout,
        attention_probs_dropout_prob=config.attention_dropout,
        layer_norm_eps=config.layer_norm_eps,
        pad_token_id=config.pad_token_id,
        type_vocab_size=max(config.arch.type_vocab_size, 1),
        id2label={str(i): name for i, name in enumerate(label_names)},
        label2id={name: i for i, name in enumerate(label_names)},
    )
    return data


def _bert_names(state: dict[str, Tensor], model_type: str, hidden: int) -> dict[str, Tensor]:
    """``state`` with the parameter names of ``BertForSequenceClassification``."""
    family = _FAMILIES[model_type]
    renamed = {}
    for key, tensor in state.items():
        if key.startswith(family.unused):
            continue
        for old, new in family.renames:
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        if model_type == "distilbert" and key.startswith("bert.encoder.layer."):
            for old, new in _DISTILBERT_LAYER:
                key = key.replace(old, new)
        renamed[key] = tensor
    if model_type == "distilbert":
        # No token types: one all-zero type embedding adds nothing, as DistilBERT does.
        renamed.setdefault("bert.embeddings.token_type_embeddings.weight", torch.zeros(1, hidden))
    return renamed


def _config_from_hf(directory: Path) -> tuple[ClassifierConfig, tuple[str, ...], int, str]:
    data = _read_json(directory / "config.json")
    model_type = data.get("model_type")
    if model_type not in _FAMILIES:
        raise CheckpointError(
            f"{directory} holds a {model_type!r} model; latbench reads sequence classifiers of "
            f"model_type {', '.join(repr(t) for t in _FAMILIES)} (e.g. BERT, TinyBERT, MiniLM, "
            "ELECTRA, RoBERTa, DistilBERT)"
        )
    distil = model_type == "distilbert"
    act = data.get("activation" if distil else "hidden_act", "gelu")
    if act != "gelu":
        raise CheckpointError(f"{directory}: activation {act!r} is not supported (only 'gelu')")
    if data.get("position_embedding_type", "absolute") != "absolute":
        raise CheckpointError(
            f"{directory}: position_embedding_type {data['position_embedding_type']!r} is not "
            "supported (only 'absolute')"
        )
    try:
        arch = Arch.from_hf_config(data)
    except LatbenchError as exc:
        raise CheckpointError(f"{directory}: {exc}") from None
    id2label = data.get("id2label") or {}
    if id2label:
        label_names = tuple(str(id2label[k]) for k in sorted(id2label, key=int))
    else:
        label_names = tuple(f"LABEL_{i}" for i in range(int(data.get("num_labels", 2))))
    pad_token_id = int(data.get("pad_token_id") or 0)
    try:
        config = ClassifierConfig(
            arch=Arch.from_dict({**arch.to_dict(), "type_vocab_size": max(arch.type_vocab_size, 1)}),
            num_labels=len(label_names),
            # DistilBERT's LayerNorms are fixed at 1e-12 and its config has no such key.
            layer_norm_eps=float(data.get("layer_norm_eps", 1e-12)),
            hidden_dropout=float(data.get("dropout" if distil else "hidden_dropout_prob", 0.1)),
            attention_dropout=float(
                data.get("attention_dropout" if distil else "attention_probs_dropout_prob", 0.1)
            ),
            pad_token_id=pad_token_id,
            pooler_activation=_FAMILIES[model_type].head_activation,
            position_offset=pad_token_id + 1 if model_type in _OFFSET_POSITIONS else 0,
        )
    except LatbenchError as exc:
        raise CheckpointError(f"{directory}: {exc}") from None
    max_len = 128
    tok_config = directory / "tokenizer_config.json"
    if tok_config.is_file():
        declared = _read_json(tok_config).get("model_max_length")
        if isinstance(declared, int) and 0 < declared < 10**6:
            max_len = min(declared, 128)
    return config, label_names, min(max_len, config.max_tokens), model_type


def _read_weights(directory: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    single = directory / WEIGHTS_FILE
    if single.is_file():
        return load_file(single)
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(_read_json(index)["weight_map"].values()))
        state: dict[str, Tensor] = {}
        for shard in shards:
            state.update(load_file(directory / shard))
        return state
    legacy = directory / "pytorch_model.bin"
    if legacy.is_file():
        return torch.load(legacy, map_location="cpu", weights_only=True)
    raise CheckpointError(f"{directory} has no weights (model.safetensors or pytorch_model.bin)")


def _read_tokenizer(directory: Path) -> tuple[Any, tuple[str, str, str] | None]:
    """The tokenizer in ``directory`` and its (cls, sep, pad) tokens when the Hugging Face
    tokenizer files name them (None: let ``TextEncoder`` tell from the vocabulary)."""
    from tokenizers import Tokenizer

    tok_config: dict[str, Any] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        if (directory / name).is_file():
            tok_config.update(_read_json(directory / name))
    specials = _specials(tok_config)
    if (directory / TOKENIZER_FILE).is_file():
        return Tokenizer.from_file(str(directory / TOKENIZER_FILE)), specials
    vocab = directory / "vocab.txt"
    if vocab.is_file():
        from tokenizers.implementations import BertWordPieceTokenizer

        lowercase = bool(tok_config.get("do_lower_case", True))
        return BertWordPieceTokenizer(str(vocab), lowercase=lowercase)._tokenizer, specials
    bpe_vocab, merges = directory / "vocab.json", directory / "merges.txt"
    if bpe_vocab.is_file() and merges.is_file():  # RoBERTa's byte-level BPE
        from tokenizers.implementations import ByteLevelBPETokenizer

        prefix = bool(tok_config.get("add_prefix_space", False))
        from tokenizers.processors import RobertaProcessing

        bpe = ByteLevelBPETokenizer(str(bpe_vocab), str(merges), add_prefix_space=prefix)._tokenizer
        cls, sep, pad = specials or ROBERTA_SPECIALS
        ids = bpe.get_vocab()
        if cls in ids and sep in ids:  # else TextEncoder says what is missing
            bpe.add_special_tokens([cls, sep, pad])
            bpe.post_processor = RobertaProcessing((sep, ids[sep]), (cls, ids[cls]), add_prefix_space=prefix)
        return bpe, specials
    raise CheckpointError(
        f"{directory} has no tokenizer (tokenizer.json, vocab.txt, or vocab.json with merges.txt)"
    )


def _specials(tok_config: dict[str, Any]) -> tuple[str, str, str] | None:
    def token(name: str) -> str | None:
        value = tok_config.get(name)
        if isinstance(value, dict):  # an AddedToken written out
            value = value.get("content")
        return value if isinstance(value, str) else None

    names = (token("cls_token"), token("sep_token"), token("pad_token"))
    return names if all(names) else None  # type: ignore[return-value]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object")
    return data


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
