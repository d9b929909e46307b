"""SigLIP 2 (fixed resolution) loads through the SigLIP path and is fed as it was trained."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from photos import random_photo
from PIL import Image
from tiny_model import SIGLIP2_TOKENIZER_CONFIG, build_tiny_naflex, build_tiny_siglip2

from gallery_app.core.calibrate import model_preset
from gallery_app.core.embeddings import (
    GEMMA_TEXT,
    SENTENCEPIECE_TEXT,
    SiglipEncoder,
    ascii_lower,
)
from gallery_app.core.errors import ModelUnavailable
from gallery_app.core.indexer import Indexer
from gallery_app.core.library import Library
from gallery_app.core.search import Searcher

LENGTH = 64


@pytest.fixture(scope="module")
def siglip2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_siglip2(tmp_path_factory.mktemp("models") / "tiny-siglip2")


@pytest.fixture(scope="module")
def encoder2(siglip2_dir: Path) -> SiglipEncoder:
    return SiglipEncoder.load(str(siglip2_dir), device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def reference2(siglip2_dir: Path):
    """The checkpoint the plain transformers way: SiglipModel, and the tokenizer AutoProcessor
    picks from tokenizer_config.json (a GemmaTokenizer)."""
    from transformers import AutoProcessor, SiglipModel

    model = SiglipModel.from_pretrained(siglip2_dir).eval()
    processor = AutoProcessor.from_pretrained(siglip2_dir)
    return model, processor


def reference_ids(tokenizer, prompt: str) -> torch.Tensor:
    """What transformers' tokenizer gives with the checkpoint's settings, padded to 64."""
    return tokenizer(
        [ascii_lower(prompt)],
        padding="max_length",
        max_length=LENGTH,
        truncation=True,
        return_tensors="pt",
    )["input_ids"]


def trained_layout(tokenizer, prompt: str, config: dict) -> list[int]:
    """The ids the checkpoint's tokenizer_config.json asks for, built by hand from its
    add_bos_token / add_eos_token / padding_side and the pieces of the text."""
    pieces = tokenizer(ascii_lower(prompt), add_special_tokens=False)["input_ids"]
    ids = [tokenizer.bos_token_id] if config["add_bos_token"] else []
    ids += pieces[: LENGTH - 2] + ([tokenizer.eos_token_id] if config["add_eos_token"] else [])
    padding = [tokenizer.pad_token_id] * (LENGTH - len(ids))
    return ids + padding if config["padding_side"] == "right" else padding + ids


def features(output) -> np.ndarray:
    tensor = output.pooler_output if hasattr(output, "pooler_output") else output
    return tensor.numpy()


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.ravel(a), np.ravel(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_the_checkpoint_has_no_sentencepiece_file_and_is_read_as_gemma(
    siglip2_dir: Path, encoder2: SiglipEncoder
) -> None:
    assert not (siglip2_dir / "spiece.model").exists()
    assert (siglip2_dir / "tokenizer.json").exists()
    assert json.loads((siglip2_dir / "config.json").read_text())["model_type"] == "siglip"
    assert encoder2.text_encoding.family == GEMMA_TEXT
    assert (encoder2.text_encoding.eos_id, encoder2.text_encoding.pad_id) == (1, 0)
    assert encoder2.multilingual


def test_ids_follow_the_checkpoint_config(encoder2: SiglipEncoder, reference2) -> None:
    """No BOS, the pieces, EOS, then <pad> on the right: what the real checkpoint's
    tokenizer_config.json says (and big_vision's bos="no", eos="sticky")."""
    _, processor = reference2
    tokenizer = processor.tokenizer
    config = SIGLIP2_TOKENIZER_CONFIG
    assert (config["add_bos_token"], config["add_eos_token"], config["padding_side"]) == (
        False,
        True,
        "right",
    )
    prompt = encoder2.prompt("A dog on the beach")
    ours = encoder2.tokenize([prompt])[0].tolist()
    assert ours == trained_layout(tokenizer, prompt, config)
    assert ours == reference_ids(tokenizer, prompt)[0].tolist()
    eos_at = ours.index(1)
    assert ours[0] != tokenizer.bos_token_id
    assert ours[eos_at + 1 :] == [0] * (LENGTH - eos_at - 1) and eos_at < 20


def test_a_long_text_keeps_its_eos_last(encoder2: SiglipEncoder, reference2) -> None:
    _, processor = reference2
    prompt = encoder2.prompt("dog " * 200)
    ours = encoder2.tokenize([prompt])[0].tolist()
    assert len(ours) == LENGTH and ours[-1] == 1 and 0 not in ours
    assert ours == reference_ids(processor.tokenizer, prompt)[0].tolist()


def test_text_and_image_vectors_equal_siglip_models(encoder2: SiglipEncoder, reference2) -> None:
    model, processor = reference2
    prompt = encoder2.prompt("a red car in the street")
    image = Image.fromarray(random_photo(5, (70, 50)))
    with torch.no_grad():
        text = features(
            model.get_text_features(input_ids=reference_ids(processor.tokenizer, prompt))
        )
        pixels = processor.image_processor(images=[image], return_tensors="pt")["pixel_values"]
        picture = features(model.get_image_features(pixel_values=pixels))
    assert cosine(encoder2.encode_prompts([prompt]), text) == pytest.approx(1.0, abs=1e-5)
    assert cosine(encoder2.encode_images([image]), picture) == pytest.approx(1.0, abs=1e-5)


def test_a_flipped_padding_side_or_a_dropped_eos_moves_the_vector(
    encoder2: SiglipEncoder, reference2
) -> None:
    """Why the layout is tested: either mistake gives another text vector. On random weights a
    missing EOS moves it little (one of 64 attended positions, an EOS embedding nothing special
    yet): more than computing the same ids twice does (below 1e-6), far less than in a trained
    model; the ids tests above are the exact guard."""
    model, processor = reference2
    tokenizer = processor.tokenizer
    prompt = encoder2.prompt("snow on the mountain")
    config = SIGLIP2_TOKENIZER_CONFIG
    left = trained_layout(tokenizer, prompt, {**config, "padding_side": "left"})
    no_eos = trained_layout(tokenizer, prompt, {**config, "add_eos_token": False})
    ours = encoder2.encode_prompts([prompt])
    with torch.no_grad():
        right = features(model.get_text_features(input_ids=encoder2.tokenize([prompt])))
        vectors = [
            features(model.get_text_features(input_ids=torch.tensor([wrong])))
            for wrong in (left, no_eos)
        ]
    assert 1 - cosine(ours, right) < 1e-6
    assert cosine(ours, vectors[0]) < 0.99
    assert 1 - cosine(ours, vectors[1]) > 2e-5


def test_search_score_equals_siglip_logits(
    encoder2: SiglipEncoder, reference2, tmp_path: Path, isolated_dirs: Path
) -> None:
    model, processor = reference2
    photo = tmp_path / "photos" / "one.png"
    photo.parent.mkdir()
    Image.fromarray(random_photo(11, (80, 60))).save(photo)
    library = Library(isolated_dirs, encoder2.model_id, encoder2.dim)
    try:
        Indexer(library, encoder2).index([photo.parent])
        hits = Searcher(library, encoder2).search("a dog on the beach", expand=False)
        [result] = hits.rank(model_preset(encoder2.logit_scale, encoder2.logit_bias))
    finally:
        library.close()
    assert result.prompt == "a photo of a dog on the beach."
    with torch.no_grad():
        pixels = processor.image_processor(
            images=[Image.open(photo).convert("RGB")], return_tensors="pt"
        )["pixel_values"]
        logits = model(
            input_ids=reference_ids(processor.tokenizer, result.prompt), pixel_values=pixels
        ).logits_per_image
    expected = torch.sigmoid(logits).item()
    assert abs(result.score - expected) <= 1e-4
    assert 1e-3 < expected < 1 - 1e-3


def test_lowercasing_is_ascii_only_as_in_big_vision(encoder2: SiglipEncoder) -> None:
    """big_vision's `lower` is tf.strings.lower, whose default encoding is ASCII."""
    assert ascii_lower("Ñandú ÉTÉ Dog") == "Ñandú ÉtÉ dog"
    assert encoder2.prompt("  A Dog   ON the BEACH ") == "a photo of a dog on the beach."
    assert encoder2.prompt("Москва") == "a photo of Москва."
    upper, lower = encoder2.encode_texts(["RED CAR", "red car"])
    assert cosine(upper, lower) == pytest.approx(1.0, abs=1e-6)


def test_a_tokenizer_config_without_the_settings_still_gets_the_trained_layout(
    tmp_path: Path, encoder2: SiglipEncoder
) -> None:
    """A re-saved Gemma tokenizer without padding_side falls back to the class default, left
    padding; the layout comes from the checkpoint family, not from that setting."""
    from transformers import AutoTokenizer

    bare = {k: v for k, v in SIGLIP2_TOKENIZER_CONFIG.items() if not k.startswith(("add_", "pad"))}
    bare["pad_token"] = "<pad>"
    folder = build_tiny_siglip2(tmp_path / "bare", tokenizer_config=bare)
    loaded = SiglipEncoder.load(str(folder), device="cpu")
    prompt = loaded.prompt("dog")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.padding_side == "left"  # what trusting the tokenizer would have done
    assert loaded.tokenize([prompt])[0].tolist() == encoder2.tokenize([prompt])[0].tolist()


def test_the_family_comes_from_the_files_not_the_name(
    siglip2_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    english_named = tmp_path / "siglip-base-patch16-224"
    shutil.copytree(siglip2_dir, english_named)
    siglip2_named = tmp_path / "siglip2-base-patch16-224"
    shutil.copytree(tiny_model_dir, siglip2_named)
    gemma = SiglipEncoder.load(str(english_named), device="cpu")
    sentencepiece = SiglipEncoder.load(str(siglip2_named), device="cpu")
    assert (gemma.text_encoding.family, gemma.multilingual) == (GEMMA_TEXT, True)
    assert (sentencepiece.text_encoding.family, sentencepiece.multilingual) == (
        SENTENCEPIECE_TEXT,
        False,
    )


def test_naflex_checkpoints_are_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoModel

    folder = build_tiny_naflex(tmp_path / "siglip2-naflex")
    loaded: list[str] = []
    monkeypatch.setattr(AutoModel, "from_pretrained", lambda *a, **k: loaded.append("weights"))
    with pytest.raises(ModelUnavailable) as caught:
        SiglipEncoder.load(str(folder), device="cpu")
    message = str(caught.value)
    assert "\n" not in message
    assert str(folder) in message and "NaFlex" in message
    assert "google/siglip2-base-patch16-224" in message
    assert loaded == []  # refused before any weight was read
