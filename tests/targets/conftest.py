"""Shared pieces of the tests of targets without a model file: tiny Hugging Face config folders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def gpt2_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the config.json of a 2-layer GPT-2 language model (what save_pretrained writes)."""
    from transformers import GPT2Config

    folder = tmp_path_factory.mktemp("hf") / "gpt2-tiny"
    GPT2Config(
        n_layer=2, n_embd=32, n_head=2, vocab_size=300, n_positions=32, architectures=["GPT2LMHeadModel"]
    ).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def bert_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BERT config.json without ``architectures`` (what ``BertConfig(...).save_pretrained`` writes)."""
    from transformers import BertConfig

    folder = tmp_path_factory.mktemp("hf") / "bert-tiny"
    BertConfig(
        num_hidden_layers=1,
        hidden_size=32,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=200,
        max_position_embeddings=24,
    ).save_pretrained(folder)
    return folder


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache, with fetching forbidden (HF_HUB_OFFLINE=1): nothing is downloaded."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hf-home" / "hub"


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Some CPU kernels size scratch buffers by thread count: measure and trace on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
