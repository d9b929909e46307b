"""The model catalog is data that agrees with the architectures it names (no downloads): each
entry's config has the resolution, patch and embedding size listed, and the listed download
size is what its parameter count takes in fp32."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from gallery_app.core import model_catalog
from gallery_app.core.embeddings import (
    DEFAULT_MODEL,
    _projection_dim_of,
    validate_checkpoint_config,
)
from gallery_app.core.errors import ConfigError
from gallery_app.core.model_catalog import load_catalog, model_choices, parse_catalog, siglip_config

ENTRIES = load_catalog()
README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.id for e in ENTRIES])
def test_each_entry_is_load_checked_by_its_config_shapes(entry):
    import torch
    from transformers import SiglipModel

    config = siglip_config(entry)
    validate_checkpoint_config(config, entry.id)  # what a load checks before any weights
    assert config.vision_config.image_size == entry.resolution
    assert config.vision_config.patch_size == entry.patch
    assert _projection_dim_of(config.text_config) == entry.embedding_dim
    assert config.vision_config.hidden_size == entry.embedding_dim
    with torch.device("meta"):  # shapes only: nothing is allocated
        model = SiglipModel(config)
    image_out = model.vision_model.head.mlp.fc2.out_features
    text_out = model.text_model.head.out_features
    assert image_out == text_out == entry.embedding_dim
    fp32_mb = sum(p.numel() for p in model.parameters()) * 4 / 1e6
    # Sizes read off hub pages agreed with this within 1 MB; the header adds a little.
    assert abs(fp32_mb - entry.download_mb) <= 2, (fp32_mb, entry.download_mb)


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.id for e in ENTRIES])
def test_each_id_names_what_the_entry_says(entry):
    name = entry.id.split("/", 1)[1]
    assert name.startswith(f"{entry.family}-{entry.size}-patch{entry.patch}-{entry.resolution}")
    assert entry.multilingual == (
        entry.family == "siglip2" or "multilingual" in name or "i18n" in name
    )
    # SigLIP 2 uses the Gemma vocabulary; multilingual SigLIP a 250k one; English SigLIP 32k.
    vocab = {"siglip2": 256000}.get(entry.family, 250000 if entry.multilingual else 32000)
    assert entry.architecture.vocab_size == vocab
    assert entry.download_mb_source == "computed" or entry.download_mb_source.startswith(
        "https://huggingface.co/"
    )


def test_the_default_model_is_in_the_catalog_and_speeds_are_relative_to_siglip_base():
    assert DEFAULT_MODEL in {entry.id for entry in ENTRIES}
    base = model_catalog.find("google/siglip-base-patch16-224")
    assert base is not None and base.relative_cpu_speed in (None, 1.0)


def test_a_bad_entry_is_refused_naming_it():
    good = {
        "id": "x/siglip-base-patch16-224",
        "family": "siglip",
        "size": "base",
        "resolution": 224,
        "patch": 16,
        "embedding_dim": 768,
        "download_mb": 813,
        "download_mb_source": "computed",
        "languages": "english",
        "relative_cpu_speed": None,
        "choose_when": "tests",
        "architecture": {
            "hidden_size": 768,
            "intermediate_size": 3072,
            "layers": 12,
            "heads": 12,
            "vocab_size": 32000,
            "text_length": 64,
        },
    }
    assert parse_catalog({"models": [good]}, "t")[0].id == "x/siglip-base-patch16-224"
    with pytest.raises(ConfigError, match=r"models\[1\].*'resolution'"):
        parse_catalog({"models": [good, {**good, "id": "y", "resolution": "big"}]}, "t")
    with pytest.raises(ConfigError, match="listed twice"):
        parse_catalog({"models": [good, good]}, "t")
    with pytest.raises(ConfigError, match="'languages'"):
        parse_catalog({"models": [{**good, "languages": "klingon"}]}, "t")


def test_cached_models_are_marked_from_the_cache_alone(tmp_path, monkeypatch, tiny_model_dir):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert not any(choice.cached for choice in model_choices())
    model_id = "google/siglip2-base-patch16-224"
    repo = tmp_path / "hub" / f"models--{model_id.replace('/', '--')}"
    shutil.copytree(tiny_model_dir, repo / "snapshots" / "abc")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc")
    choices = {choice.entry.id: choice for choice in model_choices()}
    assert [i for i, c in choices.items() if c.cached] == [model_id]
    assert [i for i, c in choices.items() if c.default] == [DEFAULT_MODEL]


def test_readme_table_is_the_catalog():
    text = README.read_text("utf-8")
    table = re.search(r"<!-- models table -->\n(.*?)\n<!-- /models table -->", text, re.S)
    assert table is not None, "README lacks the models table markers"
    assert table.group(1).strip() == model_catalog.table_markdown(), (
        "README's model table is out of date: run python scripts/models_table.py"
    )
