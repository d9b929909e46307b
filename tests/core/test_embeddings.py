"""The encoder reproduces SigLIP's own scoring: max_length padding, input_ids only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from photos import random_photo
from PIL import Image

from gallery_app.core.calibrate import model_preset
from gallery_app.core.embeddings import (
    DEFAULT_MODEL,
    SiglipEncoder,
    make_prompt,
    resolve_model_id,
)
from gallery_app.core.errors import ConfigError, ModelUnavailable
from gallery_app.core.indexer import Indexer
from gallery_app.core.search import Searcher


@pytest.fixture(scope="module")
def reference(tiny_model_dir: Path):
    """The checkpoint loaded the plain transformers way, as a reference implementation."""
    from transformers import SiglipModel, SiglipProcessor

    model = SiglipModel.from_pretrained(tiny_model_dir).eval()
    processor = SiglipProcessor.from_pretrained(tiny_model_dir)
    return model, processor


def reference_ids(processor, prompt: str, **overrides) -> torch.Tensor:
    options = {"padding": "max_length", "max_length": 64, "truncation": True}
    options.update(overrides)
    return processor.tokenizer([prompt], return_tensors="pt", **options)["input_ids"]


def features(output) -> np.ndarray:
    """transformers 4.x returns the embedding tensor, 5.x a model output holding it."""
    tensor = output.pooler_output if hasattr(output, "pooler_output") else output
    return tensor.numpy()


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.ravel(a), np.ravel(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_search_score_equals_siglip_logits(encoder, library, tmp_path, reference):
    """Model preset, no expansion: the app's score is sigmoid(logits_per_image) exactly."""
    model, processor = reference
    photo = tmp_path / "photos" / "one.png"
    photo.parent.mkdir()
    Image.fromarray(random_photo(7, (80, 60))).save(photo)
    Indexer(library, encoder).index([photo.parent])

    query = "a dog on the beach"
    hits = Searcher(library, encoder).search(query, expand=False)
    calibration = model_preset(encoder.logit_scale, encoder.logit_bias)
    [result] = hits.rank(calibration)

    prompt = "a photo of a dog on the beach."
    assert result.prompt == prompt
    with torch.no_grad():
        pixel_values = processor.image_processor(
            images=[Image.open(photo).convert("RGB")], return_tensors="pt"
        )["pixel_values"]
        logits = model(
            input_ids=reference_ids(processor, prompt), pixel_values=pixel_values
        ).logits_per_image
    expected = torch.sigmoid(logits).item()
    assert abs(result.score - expected) <= 1e-4
    # and the score is not trivially saturated, so the comparison means something
    assert 1e-3 < expected < 1 - 1e-3


def test_text_embedding_is_padded_and_unmasked(encoder, reference):
    model, processor = reference
    prompt = "a photo of a red car in the street."
    with torch.no_grad():
        padded = features(model.get_text_features(input_ids=reference_ids(processor, prompt)))
        unpadded_ids = processor.tokenizer([prompt], return_tensors="pt")["input_ids"]
        unpadded = features(model.get_text_features(input_ids=unpadded_ids))
        batch = processor.tokenizer(
            [prompt], padding="max_length", max_length=64, truncation=True, return_tensors="pt"
        )
        masked = features(
            model.get_text_features(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            )
        )

    ours = encoder.encode_prompts([prompt])
    assert ours.shape == (1, encoder.dim)
    assert np.linalg.norm(ours) == pytest.approx(1.0, abs=1e-5)
    assert cosine(ours, padded) == pytest.approx(1.0, abs=1e-5)
    assert cosine(ours, unpadded) < 0.999
    assert cosine(ours, masked) < 0.999
    assert unpadded_ids.shape[1] < 64  # the unpadded reference really is shorter


def test_tokenizer_pads_to_checkpoint_length(encoder):
    ids = encoder.tokenize(["a photo of a dog.", "a photo of " + "dog " * 200])
    assert tuple(ids.shape) == (2, encoder.max_text_length) == (2, 64)


def test_texts_are_lowercased_into_the_template(encoder):
    assert make_prompt("  Dog   on the BEACH ") == "a photo of dog on the beach."
    assert encoder.prompt("Sunset") == "a photo of sunset."
    upper, lower = encoder.encode_texts(["RED CAR", "red car"])
    assert cosine(upper, lower) == pytest.approx(1.0, abs=1e-6)


def test_prompt_template_must_have_placeholder():
    assert make_prompt("cat", "an image of {}") == "an image of cat"
    with pytest.raises(ConfigError):
        make_prompt("cat", "no placeholder")


def test_image_preprocessing_matches_processor(encoder, reference):
    _, processor = reference
    image = Image.fromarray(random_photo(3, (97, 41)))
    ours = encoder.image_spec.to_model_input(image)
    theirs = processor.image_processor(images=[image], return_tensors="np")["pixel_values"][0]
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_image_embeddings_are_normalized_and_distinct(encoder):
    images = [Image.fromarray(random_photo(seed)) for seed in range(3)]
    vectors = encoder.encode_images(images)
    assert vectors.shape == (3, encoder.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert cosine(vectors[0], vectors[1]) < 0.9999


def test_exposes_checkpoint_scale_and_bias(encoder, reference):
    model, _ = reference
    assert encoder.logit_scale == pytest.approx(model.logit_scale.item())
    assert encoder.logit_bias == pytest.approx(model.logit_bias.item())
    assert encoder.dim == model.config.text_config.hidden_size
    assert encoder.model_id == str(Path(encoder.model_id).resolve())


def test_model_id_resolution(monkeypatch, tmp_path):
    assert resolve_model_id(None) == DEFAULT_MODEL
    monkeypatch.setenv("GALLERY_APP_MODEL", "someone/siglip-x")
    assert resolve_model_id(None) == "someone/siglip-x"
    assert resolve_model_id(str(tmp_path)) == str(tmp_path.resolve())


def test_a_library_of_the_previous_default_keeps_it_as_the_default(tmp_path: Path) -> None:
    from gallery_app.core.embeddings import PREVIOUS_DEFAULT_MODEL
    from gallery_app.core.library import library_folder

    assert DEFAULT_MODEL == "google/siglip2-base-patch16-224"
    assert resolve_model_id(None, tmp_path) == DEFAULT_MODEL  # a new user
    old = library_folder(tmp_path, PREVIOUS_DEFAULT_MODEL)
    old.mkdir(parents=True)
    (old / "catalog.sqlite").write_bytes(b"")
    assert resolve_model_id(None, tmp_path) == PREVIOUS_DEFAULT_MODEL
    assert resolve_model_id("someone/siglip-x", tmp_path) == "someone/siglip-x"
    new = library_folder(tmp_path, DEFAULT_MODEL)
    new.mkdir(parents=True)
    (new / "catalog.sqlite").write_bytes(b"")
    assert resolve_model_id(None, tmp_path) == DEFAULT_MODEL  # once both exist, the new one


@pytest.mark.parametrize("problem", ["missing", "empty", "corrupt-weights", "no-tokenizer"])
def test_unloadable_model_raises_typed_error(problem, tiny_model_dir, tmp_path):
    folder = tmp_path / "model"
    if problem != "missing":
        shutil.copytree(tiny_model_dir, folder)
    if problem == "empty":
        for item in folder.iterdir():
            item.unlink()
    elif problem == "corrupt-weights":
        (folder / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    elif problem == "no-tokenizer":
        (folder / "spiece.model").unlink()
    with pytest.raises(ModelUnavailable) as caught:
        SiglipEncoder.load(str(folder))
    message = str(caught.value)
    assert str(folder) in message
    assert "--model" in message or "folder" in message


def test_offline_hub_id_raises_typed_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable) as caught:
        SiglipEncoder.load("nobody-here/not-a-real-siglip")
    assert "nobody-here/not-a-real-siglip" in str(caught.value)
    assert "internet" in str(caught.value)


# int8 ("fast") mode --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def int8_encoder(tiny_model_dir: Path) -> SiglipEncoder:
    return SiglipEncoder.load(str(tiny_model_dir), device="cpu", precision="int8")


def test_int8_quantizes_the_linear_layers(int8_encoder: SiglipEncoder, encoder) -> None:
    assert int8_encoder.precision == "int8"
    assert encoder.precision == "fp32"
    kinds = {type(m).__module__ for m in int8_encoder._model.modules()}
    assert any("quantized" in k for k in kinds)
    assert not any("quantized" in type(m).__module__ for m in encoder._model.modules())


def test_int8_embeddings_stay_close_to_fp32(int8_encoder: SiglipEncoder, encoder) -> None:
    images = [Image.fromarray(random_photo(seed)) for seed in range(8)]
    image_cos = np.sum(encoder.encode_images(images) * int8_encoder.encode_images(images), axis=1)
    prompts = [encoder.prompt(t) for t in ("dog", "a red car", "snow on the mountain", "cake")]
    text_cos = np.sum(encoder.encode_prompts(prompts) * int8_encoder.encode_prompts(prompts), 1)
    assert image_cos.min() >= 0.99
    assert text_cos.min() >= 0.99


def test_precision_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from gallery_app.core.embeddings import INT8_ENV, resolve_precision

    monkeypatch.delenv(INT8_ENV, raising=False)
    assert resolve_precision() == "fp32"
    monkeypatch.setenv(INT8_ENV, "1")
    assert resolve_precision() == "int8"
    assert resolve_precision(fast=False) == "fp32"  # an explicit choice beats the environment
    monkeypatch.setenv(INT8_ENV, "no")
    assert resolve_precision() == "fp32"
    assert resolve_precision(fast=True) == "int8"


def test_unknown_precision_is_a_config_error(tiny_model_dir: Path) -> None:
    with pytest.raises(ConfigError, match="precision"):
        SiglipEncoder.load(str(tiny_model_dir), device="cpu", precision="fp8")


# The checkpoint's numbers are validated ------------------------------------------------------


def _edit_processor_config(folder: Path, **changes) -> None:
    """Edit the image processor's numbers in either layout: preprocessor_config.json (the hub's
    and transformers 4.x's) or processor_config.json's "image_processor" (transformers 5)."""
    legacy = folder / "preprocessor_config.json"
    if legacy.exists():
        data = json.loads(legacy.read_text())
        data.update(changes)
        legacy.write_text(json.dumps(data))
        return
    combined = folder / "processor_config.json"
    data = json.loads(combined.read_text())
    data["image_processor"].update(changes)
    combined.write_text(json.dumps(data))


def _edit_model_config(folder: Path, tower: str, **changes) -> None:
    path = folder / "config.json"
    data = json.loads(path.read_text())
    data[tower].update(changes)
    path.write_text(json.dumps(data))


@pytest.fixture
def model_copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "edited-model"
    shutil.copytree(tiny_model_dir, folder)
    return folder


@pytest.fixture
def weights_never_allocated(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records any AutoModel.from_pretrained call: a bad config must be refused before it."""
    import transformers

    calls: list[str] = []
    original = transformers.AutoModel.from_pretrained

    def recording(*args, **kwargs):
        calls.append(str(args[0]))
        return original(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", recording)
    return calls


@pytest.mark.parametrize(
    ("field", "changes", "shown"),
    [
        ("size.height", {"size": {"height": 100000, "width": 100000}}, "100000"),
        ("size.width", {"size": {"height": 32, "width": 0}}, "0"),
        ("size.height", {"size": {"height": 64, "width": 64}}, "64"),  # not the trained 32
        ("image_std", {"image_std": [0.5, 0.0, 0.5]}, "0.0"),
        ("image_std", {"image_std": [0.5, -1.0, 0.5]}, "-1.0"),
        ("image_std", {"image_std": [0.5, float("nan"), 0.5]}, "nan"),
        ("image_mean", {"image_mean": [0.5, float("inf"), 0.5]}, "inf"),
        ("image_mean", {"image_mean": [0.5, 0.5]}, "[0.5, 0.5]"),
        ("rescale_factor", {"rescale_factor": 0}, "0"),
        ("rescale_factor", {"rescale_factor": 255.0}, "255.0"),
        ("resample", {"resample": 99}, "99"),
    ],
)
def test_bad_processor_numbers_are_refused(
    model_copy: Path, weights_never_allocated: list[str], field, changes, shown
) -> None:
    _edit_processor_config(model_copy, **changes)
    with pytest.raises(ModelUnavailable) as caught:
        SiglipEncoder.load(str(model_copy), device="cpu")
    message = str(caught.value)
    assert str(model_copy) in message
    assert field in message
    assert shown in message
    assert weights_never_allocated == []


@pytest.mark.parametrize(
    ("tower", "changes", "field", "shown"),
    [
        ("vision_config", {"image_size": 100000}, "vision_config.image_size", "100000"),
        ("vision_config", {"image_size": 8}, "vision_config.image_size", "8"),
        ("vision_config", {"patch_size": 0}, "vision_config.patch_size", "0"),
        ("vision_config", {"hidden_size": 10**9}, "vision_config.hidden_size", "1000000000"),
        (
            "text_config",
            {"max_position_embeddings": 10**9},
            "text_config.max_position_embeddings",
            "1000000000",
        ),
        ("text_config", {"projection_size": 16}, "text_config.projection_size", "16"),
    ],
)
def test_bad_model_config_numbers_are_refused_before_the_weights(
    model_copy: Path, weights_never_allocated: list[str], tower, changes, field, shown
) -> None:
    _edit_model_config(model_copy, tower, **changes)
    with pytest.raises(ModelUnavailable) as caught:
        SiglipEncoder.load(str(model_copy), device="cpu")
    message = str(caught.value)
    assert str(model_copy) in message
    assert field in message
    assert shown in message
    assert weights_never_allocated == []


def test_an_intact_copy_loads_and_reaches_the_weights(
    model_copy: Path, weights_never_allocated: list[str]
) -> None:
    """The two tests above would pass vacuously if loading never got that far."""
    encoder = SiglipEncoder.load(str(model_copy), device="cpu")
    assert weights_never_allocated == [str(model_copy)]
    assert encoder.image_spec.std == (0.5, 0.5, 0.5)


@pytest.mark.parametrize("parameter", ["logit_scale", "logit_bias"])
def test_non_finite_logit_parameters_are_refused(tmp_path: Path, parameter: str) -> None:
    from tiny_model import build_tiny_siglip

    folder = build_tiny_siglip(tmp_path / "nan-model", **{parameter: float("nan")})
    with pytest.raises(ModelUnavailable) as caught:
        SiglipEncoder.load(str(folder), device="cpu")
    assert parameter in str(caught.value)
    assert str(folder) in str(caught.value)


def test_the_hub_layout_loads(model_copy: Path, encoder) -> None:
    """A checkpoint with preprocessor_config.json (as on the hub) loads under 4.x and 5.x."""
    combined = model_copy / "processor_config.json"
    if combined.exists():  # saved by transformers 5: split it the way the hub stores it
        data = json.loads(combined.read_text())
        image = {**data.pop("image_processor"), "processor_class": "SiglipProcessor"}
        (model_copy / "preprocessor_config.json").write_text(json.dumps(image))
        combined.write_text(json.dumps(data))
    loaded = SiglipEncoder.load(str(model_copy), device="cpu")
    assert loaded.image_spec == encoder.image_spec
    np.testing.assert_allclose(
        loaded.encode_texts(["dog"]), encoder.encode_texts(["dog"]), atol=1e-6
    )


@pytest.fixture
def poisoned_encoder(tiny_model_dir: Path) -> SiglipEncoder:
    """A fresh encoder whose weights hold a NaN, as a damaged checkpoint would."""
    loaded = SiglipEncoder.load(str(tiny_model_dir), device="cpu", precision="fp32")
    with torch.no_grad():
        for module in (loaded._model.vision_model, loaded._model.text_model):
            next(module.parameters()).fill_(float("nan"))
    return loaded


def test_nan_vectors_raise_instead_of_being_returned(poisoned_encoder: SiglipEncoder) -> None:
    from gallery_app.core.errors import NonFiniteVectors

    images = [Image.fromarray(random_photo(seed)) for seed in range(2)]
    with pytest.raises(NonFiniteVectors) as caught:
        poisoned_encoder.encode_images(images)
    assert caught.value.bad_rows == (0, 1)
    assert poisoned_encoder.model_id in str(caught.value)
    with pytest.raises(NonFiniteVectors, match="texts"):
        poisoned_encoder.encode_texts(["dog"])


def test_nan_vectors_never_reach_the_library(poisoned_encoder, library, make_images) -> None:
    from gallery_app.core.errors import NonFiniteVectors

    paths = make_images(2)
    library_encoder = poisoned_encoder
    with pytest.raises(NonFiniteVectors):
        Indexer(library, library_encoder).index([paths[0].parent])
    assert library.catalog.count() == 0


def test_a_checkpoint_missing_weights_is_refused(model_copy: Path) -> None:
    """transformers would initialise the missing tensors at random and only log a warning."""
    from safetensors.torch import load_file, save_file

    weights_file = model_copy / "model.safetensors"
    tensors = load_file(weights_file)
    dropped = next(name for name in sorted(tensors) if "vision_model" in name)
    del tensors[dropped]
    save_file(tensors, weights_file, metadata={"format": "pt"})
    with pytest.raises(ModelUnavailable) as caught:
        SiglipEncoder.load(str(model_copy), device="cpu")
    assert str(model_copy) in str(caught.value)
    assert "lacks 1 of the model's weights" in str(caught.value)


def test_loading_prints_nothing(tiny_model_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """transformers 5 draws a progress bar while loading; it must not reach the CLI's output."""
    capfd.readouterr()
    SiglipEncoder.load(str(tiny_model_dir), device="cpu")
    captured = capfd.readouterr()
    assert (captured.out, captured.err) == ("", "")
