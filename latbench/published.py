"""Published BERT-family configurations, for checking latbench on models people deploy.

BERT-base, the 24 miniatures of Turc et al. (2019, "Well-Read Students Learn Better"),
DistilBERT, TinyBERT (4 and 6 layers), MiniLM (6 and 12 layers, hidden 384), RoBERTa-base
and ELECTRA-base: their shapes, and the ``transformers`` config that builds each with
random weights (the shape is what times; nothing is downloaded).
``benchmarks/builder_bench.py`` times latbench's graph of each against the model
``transformers`` exports; ``benchmarks/predictor_bench.py`` scores predictors on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from latbench.arch import Arch
from latbench.errors import ConfigError

FAMILIES = ("bert", "distilbert", "roberta", "electra")


@dataclass(frozen=True)
class PublishedModel:
    name: str
    family: str
    layers: int
    hidden: int
    heads: int
    ffn: int

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ConfigError(f"model family must be one of {', '.join(FAMILIES)}, got {self.family!r}")

    def hf_config(self) -> Any:
        """The ``transformers`` config of this model (``transformers`` is latbench's ``hf``
        extra): the published shape with the family's vocabulary and positions."""
        import transformers

        if self.family == "distilbert":
            return transformers.DistilBertConfig(
                n_layers=self.layers, dim=self.hidden, n_heads=self.heads, hidden_dim=self.ffn
            )
        shape = {
            "hidden_size": self.hidden,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "intermediate_size": self.ffn,
        }
        if self.family == "roberta":
            roberta = {"vocab_size": 50265, "max_position_embeddings": 514, "type_vocab_size": 1}
            return transformers.RobertaConfig(**shape, **roberta, pad_token_id=1)
        if self.family == "electra":
            return transformers.ElectraConfig(**shape, embedding_size=self.hidden)
        return transformers.BertConfig(**shape)

    def arch(self) -> Arch:
        """latbench's architecture of this model, read from its config as ``latbench measure
        --hf-model`` reads a checkpoint's."""
        return Arch.from_hf_config(self.hf_config())


def _turc(layers: int, hidden: int) -> PublishedModel:
    return PublishedModel(f"turc-L{layers}-H{hidden}", "bert", layers, hidden, hidden // 64, 4 * hidden)


PUBLISHED: tuple[PublishedModel, ...] = (
    *(_turc(n, h) for n in (2, 4, 6, 8, 10, 12) for h in (128, 256, 512, 768)),
    PublishedModel("bert-base", "bert", 12, 768, 12, 3072),
    PublishedModel("distilbert-base", "distilbert", 6, 768, 12, 3072),
    PublishedModel("tinybert-4L-312", "bert", 4, 312, 12, 1200),
    PublishedModel("tinybert-6L-768", "bert", 6, 768, 12, 3072),
    PublishedModel("minilm-L12-H384", "bert", 12, 384, 12, 1536),
    PublishedModel("minilm-L6-H384", "bert", 6, 384, 12, 1536),
    PublishedModel("roberta-base", "roberta", 12, 768, 12, 3072),
    PublishedModel("electra-base", "electra", 12, 768, 12, 3072),
)


def published(names: str | None = None) -> list[PublishedModel]:
    """The published models named in ``names`` (comma-separated; all when None), in the
    order given; an unknown name is a one-line error that lists the known ones."""
    by_name = {m.name: m for m in PUBLISHED}
    if names is None:
        return list(PUBLISHED)
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in by_name]
    if unknown or not wanted:
        raise ConfigError(
            f"unknown published model(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(by_name)}"
        )
    return [by_name[n] for n in wanted]
