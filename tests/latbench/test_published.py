from __future__ import annotations

import pytest

from latbench.errors import ConfigError
from latbench.published import PUBLISHED, PublishedModel, published


def test_every_published_model_reads_back_as_its_shape() -> None:
    assert len(PUBLISHED) == 32 and len({m.name for m in PUBLISHED}) == 32
    for model in PUBLISHED:
        arch = model.arch()  # through the transformers config, as --hf-model reads a checkpoint
        assert (arch.num_layers, arch.hidden) == (model.layers, model.hidden), model.name
        assert set(arch.heads) == {model.heads} and set(arch.ffn) == {model.ffn}, model.name
    by_name = {m.name: m for m in PUBLISHED}
    assert by_name["distilbert-base"].arch().type_vocab_size == 0  # DistilBERT has no segments
    assert by_name["roberta-base"].arch().vocab_size == 50265
    assert by_name["turc-L8-H512"].heads == 8 and by_name["turc-L8-H512"].ffn == 2048


def test_models_are_chosen_by_name_and_unknown_names_are_refused() -> None:
    assert [m.name for m in published("bert-base, turc-L2-H128")] == ["bert-base", "turc-L2-H128"]
    assert published() == list(PUBLISHED)
    with pytest.raises(ConfigError, match=r"unknown published model.*gpt-2; known: turc-L2-H128"):
        published("bert-base,gpt-2")
    with pytest.raises(ConfigError, match="none given"):
        published(" , ")
    with pytest.raises(ConfigError, match="model family must be one of"):
        PublishedModel("t5-small", "t5", 6, 512, 8, 2048)
