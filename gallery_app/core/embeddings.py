"""SigLIP encoder: load a checkpoint (hub id or local folder), encode texts and images."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from gallery_app.core.errors import ConfigError, ModelUnavailable

if TYPE_CHECKING:
    from PIL import Image

DEFAULT_MODEL = "google/siglip-base-patch16-224"
DEFAULT_PROMPT_TEMPLATE = "a photo of {}."
MODEL_ENV = "GALLERY_APP_MODEL"
INT8_ENV = "GALLERY_APP_INT8"
TEXT_BATCH = 32
PRECISIONS = ("fp32", "int8")

FloatArray = npt.NDArray[np.float32]

log = logging.getLogger(__name__)


def resolve_model_id(explicit: str | None = None) -> str:
    """--model beats $GALLERY_APP_MODEL beats the default; local folders become absolute."""
    model = explicit or os.environ.get(MODEL_ENV) or DEFAULT_MODEL
    if looks_like_path(model):
        return str(Path(model).expanduser().resolve())
    return model


def looks_like_path(model: str) -> bool:
    expanded = os.path.expanduser(model)
    return (
        os.path.isdir(expanded)
        or os.path.isabs(expanded)
        or model.startswith(("./", "../", "~", ".\\", "..\\"))
    )


def resolve_precision(fast: bool | None = None) -> str:
    """--fast beats $GALLERY_APP_INT8 (1/true/yes/on) beats full precision."""
    if fast is None:
        fast = os.environ.get(INT8_ENV, "").strip().lower() in ("1", "true", "yes", "on")
    return "int8" if fast else "fp32"


def quantize_int8(model: Any) -> Any:
    """Dynamic int8 quantization of every nn.Linear (weights int8, activations per batch).

    On the benchmark CPU (AVX-512 VNNI) it runs the vision tower ~2.1x and the text tower
    ~2.8x faster, with embeddings within cosine 0.999 of fp32 (benchmarks/RESULTS.md). torch's
    default quantized engine is kept: x86, fbgemm and onednn ran within 6% of each other there.
    """
    import warnings

    import torch

    with warnings.catch_warnings():
        # torch 2.10+ points eager-mode users at torchao; the eager API still works here.
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def pick_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def make_prompt(text: str, template: str = DEFAULT_PROMPT_TEMPLATE) -> str:
    """The exact string the tokenizer sees: template filled, whitespace collapsed, lowercased."""
    if "{}" not in template:
        raise ConfigError(f"prompt template {template!r} must contain '{{}}' for the query")
    query = " ".join(text.split())
    return template.replace("{}", query).lower()


@dataclass(frozen=True)
class ImageSpec:
    """The checkpoint's image preprocessing, applied in numpy so decode threads can run it."""

    height: int
    width: int
    resample: int
    rescale_factor: float | None
    mean: tuple[float, float, float] | None
    std: tuple[float, float, float] | None

    def to_model_input(self, rgb: Image.Image) -> FloatArray:
        """Squash-resize an RGB image and normalize it to a (3, H, W) float32 array."""
        resized = rgb.resize((self.width, self.height), resample=self.resample)
        pixels: FloatArray = np.asarray(resized, dtype=np.float32)
        if self.rescale_factor is not None:
            pixels = np.multiply(pixels, self.rescale_factor, dtype=np.float32)
        if self.mean is not None and self.std is not None:
            centred = np.subtract(pixels, np.asarray(self.mean, np.float32), dtype=np.float32)
            pixels = np.divide(centred, np.asarray(self.std, np.float32), dtype=np.float32)
        return np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32)


class SiglipEncoder:
    """A loaded SigLIP checkpoint. Thread-safe: forwards are serialized by one lock."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        model_id: str,
        device: str,
        prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
        precision: str = "fp32",
    ) -> None:
        make_prompt("", prompt_template)  # validate early
        self._model = model
        self._tokenizer = processor.tokenizer
        self.model_id = model_id
        self.device = device
        # int8 vectors stay within cos 0.99 of fp32 ones, so both share one library.
        self.precision = precision
        self.prompt_template = prompt_template
        config = model.config
        self.max_text_length = int(config.text_config.max_position_embeddings)
        self.dim = int(_projection_dim(model))
        self.logit_scale = float(model.logit_scale.detach().float().cpu().item())
        self.logit_bias = float(model.logit_bias.detach().float().cpu().item())
        self.image_spec = _image_spec(processor.image_processor, model_id)
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        model_id: str | None = None,
        device: str | None = None,
        prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
        precision: str | None = None,
    ) -> SiglipEncoder:
        """Load through AutoModel/AutoProcessor: safetensors only, never remote code.

        precision "int8" (default: $GALLERY_APP_INT8) quantizes the Linear layers; it is a
        CPU feature, so on a GPU the model stays fp32.
        """
        model_id = resolve_model_id(model_id)
        precision = precision or resolve_precision()
        if precision not in PRECISIONS:
            raise ConfigError(
                f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}"
            )
        if looks_like_path(model_id) and not os.path.isdir(model_id):
            raise ModelUnavailable(
                f"Model folder {model_id} does not exist. Pass --model with a folder that "
                "holds config.json, model.safetensors and the tokenizer files, or a hub id "
                f"such as {DEFAULT_MODEL}."
            )
        try:
            import torch
            from transformers import AutoModel, AutoProcessor
        except ImportError as exc:  # pragma: no cover - broken install
            raise ModelUnavailable(f"torch/transformers are not installed: {exc}") from exc

        device = device or pick_device()
        try:
            # The slow image processor is plain PIL + numpy; the fast one needs torchvision.
            processor = AutoProcessor.from_pretrained(
                model_id, trust_remote_code=False, use_fast=False
            )
            model = AutoModel.from_pretrained(
                model_id,
                trust_remote_code=False,
                use_safetensors=True,
                dtype=torch.float32,
            )
        except Exception as exc:  # transformers raises OSError, ValueError, safetensors errors...
            raise ModelUnavailable(_load_failure_message(model_id, exc)) from exc
        for needed in ("get_text_features", "get_image_features", "logit_scale", "logit_bias"):
            if not hasattr(model, needed):
                raise ModelUnavailable(
                    f"{model_id} loaded as {type(model).__name__}, which is not a SigLIP model "
                    f"(no {needed}). Choose a SigLIP checkpoint such as {DEFAULT_MODEL}."
                )
        if not hasattr(processor, "tokenizer") or not hasattr(processor, "image_processor"):
            raise ModelUnavailable(
                f"{model_id} has no tokenizer + image processor pair; its processor files "
                "(tokenizer_config.json, spiece.model, preprocessor_config.json) are missing."
            )
        model.eval().to(device)
        if precision == "int8":
            if device == "cpu":
                model = quantize_int8(model)
            else:
                log.info("int8 mode is for CPUs; the model stays fp32 on %s", device)
                precision = "fp32"
        return cls(model, processor, model_id, device, prompt_template, precision)

    def prompt(self, text: str) -> str:
        return make_prompt(text, self.prompt_template)

    def tokenize(self, prompts: Sequence[str]) -> Any:
        """input_ids only, padded to max_length: SigLIP was trained with pad = EOS, no mask."""
        batch = self._tokenizer(
            [p.lower() for p in prompts],
            padding="max_length",
            max_length=self.max_text_length,
            truncation=True,
            return_tensors="pt",
        )
        return batch["input_ids"]

    def encode_prompts(self, prompts: Sequence[str]) -> FloatArray:
        """L2-normalized text embeddings of exact prompt strings, shape (n, dim)."""
        if not prompts:
            return np.zeros((0, self.dim), np.float32)
        import torch

        chunks = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(prompts), TEXT_BATCH):
                input_ids = self.tokenize(prompts[start : start + TEXT_BATCH]).to(self.device)
                features = self._model.get_text_features(input_ids=input_ids)
                chunks.append(features.float().cpu().numpy())
        return _normalize(np.concatenate(chunks))

    def encode_texts(self, texts: Sequence[str]) -> FloatArray:
        return self.encode_prompts([self.prompt(t) for t in texts])

    def encode_pixels(self, pixels: FloatArray) -> FloatArray:
        """L2-normalized image embeddings of preprocessed (n, 3, H, W) pixel arrays."""
        if len(pixels) == 0:
            return np.zeros((0, self.dim), np.float32)
        import torch

        with self._lock, torch.inference_mode():
            tensor = torch.from_numpy(np.ascontiguousarray(pixels, np.float32)).to(self.device)
            features = self._model.get_image_features(pixel_values=tensor)
            return _normalize(features.float().cpu().numpy())

    def encode_images(self, images: Sequence[Image.Image]) -> FloatArray:
        if not images:
            return np.zeros((0, self.dim), np.float32)
        pixels = np.stack([self.image_spec.to_model_input(im.convert("RGB")) for im in images])
        return self.encode_pixels(pixels)


def _normalize(vectors: npt.NDArray[Any]) -> FloatArray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, np.float32(1e-12))).astype(np.float32)


def _projection_dim(model: Any) -> int:
    # SigLIP's text head maps to projection_size (defaults to the text hidden size).
    text_config = model.config.text_config
    return int(getattr(text_config, "projection_size", None) or text_config.hidden_size)


def _image_spec(image_processor: Any, model_id: str) -> ImageSpec:
    size = getattr(image_processor, "size", None) or {}
    if "height" not in size or "width" not in size:
        raise ModelUnavailable(
            f"{model_id}: unsupported image processor {type(image_processor).__name__} "
            f"(expected a fixed height x width, got size={size!r})."
        )
    resample = getattr(image_processor, "resample", 3)  # 3 = PIL bicubic, SigLIP's default
    rescale = image_processor.rescale_factor if image_processor.do_rescale else None
    normalize = getattr(image_processor, "do_normalize", False)
    mean = _triple(image_processor.image_mean) if normalize else None
    std = _triple(image_processor.image_std) if normalize else None
    return ImageSpec(
        height=int(size["height"]),
        width=int(size["width"]),
        resample=int(resample),
        rescale_factor=float(rescale) if rescale is not None else None,
        mean=mean,
        std=std,
    )


def _triple(values: Any) -> tuple[float, float, float]:
    if isinstance(values, (int, float)):
        values = [values] * 3
    first, second, third = (float(v) for v in values)
    return first, second, third


def _load_failure_message(model_id: str, exc: Exception) -> str:
    reason = " ".join(str(exc).split())[:300] or type(exc).__name__
    if os.path.isdir(model_id):
        fix = (
            "The folder must hold config.json, model.safetensors, preprocessor_config.json "
            "and the tokenizer files (spiece.model); re-download or re-save it with "
            "save_pretrained."
        )
    else:
        fix = (
            "Connect to the internet once so it can be downloaded to the Hugging Face cache, "
            "or pass --model /path/to/a/local/siglip/folder (or set GALLERY_APP_MODEL)."
        )
    return f"Cannot load SigLIP model {model_id!r}: {reason}. {fix}"
