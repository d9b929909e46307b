"""SigLIP encoder: load a checkpoint (hub id or local folder), encode texts and images."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import string
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
import numpy.typing as npt

from gallery_app.core.accelerator import fp16_keeps_image_vectors, image_autocast, pick_device
from gallery_app.core.errors import ConfigError, ModelUnavailable, NonFiniteVectors
from gallery_app.core.language import is_multilingual

if TYPE_CHECKING:
    from PIL import Image

# SigLIP 2 base at 224 px: ahead of SigLIP base at the same size and speed, and multilingual
# (README, "Which model by default, and why").
DEFAULT_MODEL = "google/siglip2-base-patch16-224"
# The default until issue 14: a user with a library of it (and none of DEFAULT_MODEL) keeps it.
PREVIOUS_DEFAULT_MODEL = "google/siglip-base-patch16-224"
DEFAULT_PROMPT_TEMPLATE = "a photo of {}."
MODEL_ENV = "GALLERY_APP_MODEL"
INT8_ENV = "GALLERY_APP_INT8"
TEXT_BATCH = 32
PRECISIONS = ("fp32", "int8")

FloatArray = npt.NDArray[np.float32]

log = logging.getLogger(__name__)


def resolve_model_id(explicit: str | None = None, data_dir: Path | None = None) -> str:
    """--model beats $GALLERY_APP_MODEL beats the default; local folders become absolute.

    With data_dir, the default is the one the user's libraries were built with: someone who
    indexed with PREVIOUS_DEFAULT_MODEL, and has no library of DEFAULT_MODEL, keeps it (a new
    default must not hide a library behind an empty one and hours of re-indexing).
    """
    model = explicit or os.environ.get(MODEL_ENV) or default_model(data_dir)
    if looks_like_path(model):
        return str(Path(model).expanduser().resolve())
    return model


def default_model(data_dir: Path | None = None) -> str:
    if data_dir is None:
        return DEFAULT_MODEL
    from gallery_app.core.library import library_folder

    def has_library(model_id: str) -> bool:
        return (library_folder(data_dir, model_id) / "catalog.sqlite").is_file()

    if has_library(PREVIOUS_DEFAULT_MODEL) and not has_library(DEFAULT_MODEL):
        return PREVIOUS_DEFAULT_MODEL
    return DEFAULT_MODEL


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


def make_prompt(
    text: str, template: str = DEFAULT_PROMPT_TEMPLATE, lower: Callable[[str], str] = str.lower
) -> str:
    """The exact string the tokenizer sees: template filled, whitespace collapsed, lowercased
    (`lower` is the checkpoint's own lowercasing, see TextEncoding)."""
    if "{}" not in template:
        raise ConfigError(f"prompt template {template!r} must contain '{{}}' for the query")
    query = " ".join(text.split())
    return lower(template.replace("{}", query))


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def ascii_lower(text: str) -> str:
    """A-Z -> a-z and nothing else: TensorFlow's tf.strings.lower with its default encoding
    "" ("interpreted as ASCII"), which big_vision's `lower` op calls."""
    return text.translate(_ASCII_LOWER)


# How a checkpoint's text tower was fed in training: its tokenizer family decides.
SENTENCEPIECE_TEXT = "sentencepiece"  # SigLIP: spiece.model, transformers' SiglipTokenizer
GEMMA_TEXT = "gemma"  # SigLIP 2: the Gemma tokenizer in tokenizer.json, no spiece.model
GEMMA_TOKENIZER_CLASSES = ("GemmaTokenizer", "GemmaTokenizerFast", "Siglip2Tokenizer")


@dataclass(frozen=True)
class TextEncoding:
    """The input ids a checkpoint's text tower was trained on, per tokenizer family.

    SigLIP (SentencePiece): transformers' SiglipTokenizer does it all (lower-case, strip
    punctuation, EOS, pad with EOS); we pad to max_length and pass input_ids only, no mask.

    SigLIP 2 (Gemma, `google/siglip2-*-patch16-*` and `-patch14-*`), from the sources:
    - big_vision's SigLIP2_demo.ipynb, the authors' reference: ``lower(key="text")|tok(
      length=64, model="gemma", bos="no", eos="sticky")``. `tok` (pp/proj/paligemma/ops.py)
      adds EOS, truncates to ``tokens[:63] + [EOS]`` ("sticky": the EOS is kept) and pads on
      the right with the tokenizer's pad id (<pad> = 0, not EOS as in SigLIP). `lower` is
      tf.strings.lower, ASCII only (see ascii_lower). Punctuation is kept: no canonicalization
      (big_vision's canonicalize_text only rewrites class names in its zero-shot evaluator).
    - The text transformer pools the last position (text_transformer.py pool_type "last";
      transformers' SiglipTextTransformer takes last_hidden_state[:, -1]), so the padding side
      and the EOS decide what every text vector is; the model takes no attention mask.
    - transformers' conversion (convert_siglip2_to_hf.py) saved the tokenizer with
      add_bos_token=False, add_eos_token=True, padding_side="right", input_ids only, and
      its Siglip2Processor pads to max_length 64. Loaded through AutoTokenizer, a fixed-
      resolution checkpoint (model_type siglip, tokenizer_class GemmaTokenizer) gets a
      GemmaTokenizer, which does not lower-case and whose class default is padding_side
      "left": so the layout is built here rather than trusted to the tokenizer's settings.
    The length is the text tower's max_position_embeddings (64 for every SigLIP 2).
    """

    family: str
    max_length: int
    eos_id: int | None = None
    pad_id: int | None = None

    def lower(self, text: str) -> str:
        return ascii_lower(text) if self.family == GEMMA_TEXT else text.lower()


def text_encoding_of(tokenizer: Any, max_length: int, model_id: str) -> TextEncoding:
    """The checkpoint's TextEncoding, read from its tokenizer files (tokenizer_config.json's
    tokenizer_class and special tokens), never from its name."""
    gemma = type(tokenizer).__name__ in GEMMA_TOKENIZER_CLASSES or (
        getattr(tokenizer, "eos_token", None) == "<eos>"
        and getattr(tokenizer, "bos_token", None) == "<bos>"
    )
    if not gemma:
        return TextEncoding(SENTENCEPIECE_TEXT, max_length)
    eos_id = getattr(tokenizer, "eos_token_id", None)
    pad_id = getattr(tokenizer, "pad_token_id", None)
    if not isinstance(eos_id, int) or not isinstance(pad_id, int):
        raise ModelUnavailable(
            f"Model {model_id}: its Gemma tokenizer (tokenizer.json) has no "
            f"{'<eos>' if not isinstance(eos_id, int) else '<pad>'} token, which SigLIP 2 text "
            "needs; re-download the checkpoint or choose another with --model."
        )
    return TextEncoding(GEMMA_TEXT, max_length, eos_id, pad_id)


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
        self.text_encoding = text_encoding_of(self._tokenizer, self.max_text_length, model_id)
        # Which languages a query may be in: see gallery_app.core.language.is_multilingual.
        self.multilingual = is_multilingual(model_id, self.text_encoding.family == GEMMA_TEXT)
        self.dim = int(_projection_dim(model))
        self.logit_scale = _finite_parameter(model, "logit_scale", model_id)
        self.logit_bias = _finite_parameter(model, "logit_bias", model_id)
        self.image_spec = _image_spec(processor.image_processor, model_id)
        self.image_fp16 = False  # fp16 autocast of the image tower (accelerators; see load)
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
            from transformers import AutoConfig, AutoModel
        except ImportError as exc:  # pragma: no cover - broken install
            raise ModelUnavailable(f"torch/transformers are not installed: {exc}") from exc

        device = device or pick_device()
        from gallery_app.core.download import load_source

        # A cached hub model loads from its snapshot folder, without any network call; one
        # neither cached nor reachable fails here in one line within seconds.
        source = load_source(model_id)
        try:
            # The checkpoint's numbers are checked before any weights are allocated: a config
            # asking for 100000 x 100000 pixels must not reach the allocator.
            with _quiet_transformers():
                config = AutoConfig.from_pretrained(source, trust_remote_code=False)
        except Exception as exc:  # transformers raises OSError, ValueError, JSON errors...
            raise ModelUnavailable(_load_failure_message(model_id, exc)) from exc
        refuse_unsupported_architecture(config, model_id)
        try:
            with _quiet_transformers():
                processor = _load_processor(source)
        except Exception as exc:  # transformers raises OSError, ValueError, JSON errors...
            raise ModelUnavailable(_load_failure_message(model_id, exc)) from exc
        if not hasattr(processor, "tokenizer") or not hasattr(processor, "image_processor"):
            raise ModelUnavailable(
                f"{model_id} has no tokenizer + image processor pair; its processor files "
                "(tokenizer_config.json, spiece.model or tokenizer.json, "
                "preprocessor_config.json) are missing."
            )
        validate_checkpoint_config(config, model_id)
        image_spec = _image_spec(processor.image_processor, model_id)
        _check_image_size_matches(image_spec, config, model_id)
        try:
            with _quiet_transformers():
                model, loading_info = AutoModel.from_pretrained(
                    source,
                    config=config,
                    trust_remote_code=False,
                    use_safetensors=True,
                    dtype=torch.float32,
                    output_loading_info=True,
                )
        except Exception as exc:  # transformers raises OSError, ValueError, safetensors errors...
            raise ModelUnavailable(_load_failure_message(model_id, exc)) from exc
        missing = sorted(loading_info.get("missing_keys") or ())
        if missing:
            # transformers would fill these with random numbers and only log a warning.
            raise ModelUnavailable(
                f"Model {model_id}: model.safetensors lacks {len(missing)} of the model's "
                f"weights ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); "
                "re-download the checkpoint or choose another with --model."
            )
        for needed in ("get_text_features", "get_image_features", "logit_scale", "logit_bias"):
            if not hasattr(model, needed):
                raise ModelUnavailable(
                    f"{model_id} loaded as {type(model).__name__}, which is not a SigLIP model "
                    f"(no {needed}). Choose a SigLIP checkpoint such as {DEFAULT_MODEL}."
                )
        model.eval().to(device)
        if precision == "int8":
            if device == "cpu":
                model = quantize_int8(model)
            else:
                log.info("int8 mode is for CPUs; the model stays fp32 on %s", device)
                precision = "fp32"
        encoder = cls(model, processor, model_id, device, prompt_template, precision)
        if device != "cpu":
            spec = encoder.image_spec
            encoder.image_fp16, worst = fp16_keeps_image_vectors(
                lambda pixels: _tower_features(model.get_image_features(pixel_values=pixels)),
                (spec.height, spec.width),
                device,
            )
            log.info(
                "image tower on %s: fp16 %s (worst cosine %.5f)", device, encoder.image_fp16, worst
            )
        return encoder

    def prompt(self, text: str) -> str:
        return make_prompt(text, self.prompt_template, self.text_encoding.lower)

    def tokenize(self, prompts: Sequence[str]) -> Any:
        """input_ids only, shape (n, max_length), laid out as the checkpoint was trained (see
        TextEncoding): SigLIP padded with EOS by its tokenizer; SigLIP 2 no BOS, the text's
        pieces up to max_length - 1, EOS, then <pad> on the right."""
        encoding = self.text_encoding
        texts = [encoding.lower(p) for p in prompts]
        if encoding.family != GEMMA_TEXT:
            batch = self._tokenizer(
                texts,
                padding="max_length",
                max_length=self.max_text_length,
                truncation=True,
                return_tensors="pt",
            )
            return batch["input_ids"]
        import torch

        length = self.max_text_length
        pieces = self._tokenizer(
            texts, add_special_tokens=False, truncation=True, max_length=length - 1
        )["input_ids"]
        eos, pad = encoding.eos_id, encoding.pad_id
        rows = [[*row, eos] + [pad] * (length - 1 - len(row)) for row in pieces]
        return torch.tensor(rows, dtype=torch.long)

    def encode_prompts(self, prompts: Sequence[str]) -> FloatArray:
        """L2-normalized text embeddings of exact prompt strings, shape (n, dim)."""
        if not prompts:
            return np.zeros((0, self.dim), np.float32)
        import torch

        chunks = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(prompts), TEXT_BATCH):
                input_ids = self.tokenize(prompts[start : start + TEXT_BATCH]).to(self.device)
                features = _tower_features(self._model.get_text_features(input_ids=input_ids))
                chunks.append(features.float().cpu().numpy())
        return self._checked_vectors(np.concatenate(chunks), "texts")

    def encode_texts(self, texts: Sequence[str]) -> FloatArray:
        return self.encode_prompts([self.prompt(t) for t in texts])

    def encode_pixels(self, pixels: FloatArray) -> FloatArray:
        """L2-normalized image embeddings of preprocessed (n, 3, H, W) pixel arrays."""
        if len(pixels) == 0:
            return np.zeros((0, self.dim), np.float32)
        import torch

        with self._lock, torch.inference_mode():
            tensor = torch.from_numpy(np.ascontiguousarray(pixels, np.float32)).to(self.device)
            with image_autocast(self.device, self.image_fp16):
                features = _tower_features(self._model.get_image_features(pixel_values=tensor))
            return self._checked_vectors(features.float().cpu().numpy(), "images")

    def encode_images(self, images: Sequence[Image.Image]) -> FloatArray:
        if not images:
            return np.zeros((0, self.dim), np.float32)
        pixels = np.stack([self.image_spec.to_model_input(im.convert("RGB")) for im in images])
        return self.encode_pixels(pixels)

    def _checked_vectors(self, features: npt.NDArray[Any], what: str) -> FloatArray:
        """Normalized vectors, or NonFiniteVectors: a NaN must never reach the library (it
        would rank nowhere, and JSON has no NaN)."""
        bad_rows = tuple(int(i) for i in np.flatnonzero(~np.isfinite(features).all(axis=1)))
        if bad_rows:
            raise NonFiniteVectors(
                f"Model {self.model_id} produced NaN or infinite vectors for {len(bad_rows)} "
                f"of {len(features)} {what}; nothing was stored. Its weights or preprocessing "
                "numbers are broken: re-download the checkpoint or choose another with --model.",
                bad_rows,
            )
        return _normalize(features)


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No progress bars or config notices from transformers while loading: they would land in
    the CLI's output (5.x draws a "Loading weights" bar). What matters is checked here and
    raised as ModelUnavailable instead."""
    from transformers.utils import logging as hf_logging

    from gallery_app.core.download import quiet_hub

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with quiet_hub():
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _load_processor(model_id: str) -> Any:
    """The checkpoint's tokenizer and its plain PIL + numpy image processor (the torchvision
    one needs an extra install).

    transformers 5 names that processor backend="pil". 4.x knows only use_fast, which
    AutoProcessor hands to the tokenizer as well: SigLIP's has no fast class, but SigLIP 2's
    Gemma tokenizer is fast-only (tokenizer.json), so there the two are loaded apart.
    """
    import transformers

    major = int(transformers.__version__.split(".", 1)[0])
    if major >= 5:
        return transformers.AutoProcessor.from_pretrained(
            model_id, trust_remote_code=False, backend="pil"
        )
    return SimpleNamespace(
        tokenizer=transformers.AutoTokenizer.from_pretrained(model_id, trust_remote_code=False),
        image_processor=transformers.AutoImageProcessor.from_pretrained(
            model_id, trust_remote_code=False, use_fast=False
        ),
    )


def _tower_features(output: Any) -> Any:
    """The projected embedding of a get_*_features call.

    transformers 4.x returns the tensor; 5.x a BaseModelOutputWithPooling whose pooler_output
    is that same tensor (SiglipModel.forward reads it there too).
    """
    if hasattr(output, "pooler_output"):
        return output.pooler_output
    return output


def _normalize(vectors: npt.NDArray[Any]) -> FloatArray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, np.float32(1e-12))).astype(np.float32)


def _projection_dim(model: Any) -> int:
    return int(_projection_dim_of(model.config.text_config))


def _projection_dim_of(text_config: Any) -> Any:
    # SigLIP's text head maps to projection_size (defaults to the text hidden size).
    return getattr(text_config, "projection_size", None) or text_config.hidden_size


# Bounds on a checkpoint's numbers. Real SigLIP checkpoints use 224..512 pixels and 64 text
# positions; the bounds are loose enough for any of them and tight enough that a hostile or
# garbled config cannot ask for gigabytes (100000 x 100000 pixels took 20 GB).
IMAGE_SIZE_RANGE = (16, 2048)
TEXT_LENGTH_RANGE = (1, 1024)
EMBEDDING_DIM_RANGE = (1, 16384)
PROCESSOR_FILES = "preprocessor_config.json / processor_config.json"
PIL_RESAMPLE_FILTERS = (0, 1, 2, 3, 4, 5)  # nearest, lanczos, bilinear, bicubic, box, hamming


def _bad_number(model_id: str, where: str, field: str, value: Any, expected: str) -> NoReturn:
    raise ModelUnavailable(
        f"Model {model_id}: {field} in its {where} is {value!r}; it must be {expected}. The "
        "checkpoint is damaged or not a SigLIP one: re-download it, or fix that field."
    )


def _bounded_int(model_id: str, where: str, field: str, value: Any, bounds: tuple[int, int]) -> int:
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _bad_number(model_id, where, field, value, f"a whole number from {low} to {high}")
    if not (math.isfinite(value) and value == int(value) and low <= value <= high):
        _bad_number(model_id, where, field, value, f"a whole number from {low} to {high}")
    return int(value)


NAFLEX_MODEL_TYPE = "siglip2"
FIXED_RESOLUTION_SIGLIP2 = "google/siglip2-base-patch16-224"


def refuse_unsupported_architecture(config: Any, model_id: str) -> None:
    """SigLIP 2 NaFlex checkpoints (model_type "siglip2", Siglip2Model) take patch sequences
    of the photo's own aspect ratio with a pixel mask, not the fixed H x W arrays the decode
    threads make: refused, in one line naming the checkpoints that work."""
    if getattr(config, "model_type", None) == NAFLEX_MODEL_TYPE:
        raise ModelUnavailable(
            f"{model_id} is a SigLIP 2 NaFlex checkpoint (Siglip2Model), which is not "
            f"supported; choose a fixed-resolution one such as {FIXED_RESOLUTION_SIGLIP2} "
            "(any google/siglip2-*-patchNN-SIZE or google/siglip-* checkpoint works)."
        )


def validate_checkpoint_config(config: Any, model_id: str) -> None:
    """ModelUnavailable naming the field and value when config.json's numbers are unusable.

    Runs before the weights are allocated: the vision tower's size follows image_size.
    """
    text_config = getattr(config, "text_config", None)
    vision_config = getattr(config, "vision_config", None)
    if text_config is None or vision_config is None:
        raise ModelUnavailable(
            f"{model_id} is a {type(config).__name__}, not a SigLIP model (its config.json has "
            f"no text_config and vision_config). Choose a SigLIP checkpoint such as "
            f"{DEFAULT_MODEL}."
        )
    where = "config.json"
    image_size = _bounded_int(
        model_id, where, "vision_config.image_size", vision_config.image_size, IMAGE_SIZE_RANGE
    )
    _bounded_int(
        model_id, where, "vision_config.patch_size", vision_config.patch_size, (1, image_size)
    )
    _bounded_int(
        model_id,
        where,
        "text_config.max_position_embeddings",
        text_config.max_position_embeddings,
        TEXT_LENGTH_RANGE,
    )
    vision_dim = _bounded_int(
        model_id,
        where,
        "vision_config.hidden_size",
        vision_config.hidden_size,
        EMBEDDING_DIM_RANGE,
    )
    text_field = (
        "text_config.projection_size"
        if getattr(text_config, "projection_size", None)
        else "text_config.hidden_size"
    )
    text_dim = _bounded_int(
        model_id, where, text_field, _projection_dim_of(text_config), EMBEDDING_DIM_RANGE
    )
    if text_dim != vision_dim:
        _bad_number(
            model_id,
            where,
            text_field,
            text_dim,
            f"equal to vision_config.hidden_size ({vision_dim}): text and image vectors are "
            "compared by cosine, so they need one dimension",
        )


def _check_image_size_matches(spec: ImageSpec, config: Any, model_id: str) -> None:
    """SigLIP's position embeddings are fixed: the processor must produce the trained size."""
    trained = int(config.vision_config.image_size)
    for field, value in (("size.height", spec.height), ("size.width", spec.width)):
        if value != trained:
            _bad_number(
                model_id,
                f"image processor config ({PROCESSOR_FILES})",
                field,
                value,
                f"{trained}, the vision_config.image_size the model was trained at",
            )


def _image_spec(image_processor: Any, model_id: str) -> ImageSpec:
    """The processor's numbers, each checked: a std of 0 would make every vector NaN."""
    where = f"image processor config ({PROCESSOR_FILES})"
    size = getattr(image_processor, "size", None) or {}
    height, width = size.get("height"), size.get("width")
    if height is None or width is None:
        raise ModelUnavailable(
            f"{model_id}: unsupported image processor {type(image_processor).__name__} "
            f"(expected a fixed height x width, got size={dict(size)!r})."
        )
    height = _bounded_int(model_id, where, "size.height", height, IMAGE_SIZE_RANGE)
    width = _bounded_int(model_id, where, "size.width", width, IMAGE_SIZE_RANGE)
    resample = getattr(image_processor, "resample", 3)  # 3 = PIL bicubic, SigLIP's default
    resample = int(getattr(resample, "value", resample))
    if resample not in PIL_RESAMPLE_FILTERS:
        _bad_number(model_id, where, "resample", resample, "a PIL filter number from 0 to 5")
    rescale = image_processor.rescale_factor if image_processor.do_rescale else None
    if rescale is not None and not (
        isinstance(rescale, (int, float)) and math.isfinite(rescale) and 0 < rescale <= 1
    ):
        _bad_number(model_id, where, "rescale_factor", rescale, "a number above 0, at most 1")
    normalize = getattr(image_processor, "do_normalize", False)
    mean = _triple(image_processor.image_mean, model_id, where, "image_mean") if normalize else None
    std = _triple(image_processor.image_std, model_id, where, "image_std") if normalize else None
    if std is not None and not all(value > 0 for value in std):
        _bad_number(model_id, where, "image_std", list(std), "three numbers above 0")
    return ImageSpec(
        height=height,
        width=width,
        resample=resample,
        rescale_factor=float(rescale) if rescale is not None else None,
        mean=mean,
        std=std,
    )


def _triple(values: Any, model_id: str, where: str, field: str) -> tuple[float, float, float]:
    if isinstance(values, (int, float)) and not isinstance(values, bool):
        values = [values] * 3
    shown = list(values) if isinstance(values, (list, tuple)) else values
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        _bad_number(model_id, where, field, shown, "three finite numbers")
    if len(numbers) != 3 or not all(math.isfinite(v) for v in numbers):
        _bad_number(model_id, where, field, shown, "three finite numbers")
    first, second, third = numbers
    return first, second, third


def _finite_parameter(model: Any, name: str, model_id: str) -> float:
    value = float(getattr(model, name).detach().float().cpu().item())
    if not math.isfinite(value):
        _bad_number(model_id, "model.safetensors", name, value, "a finite number")
    return value


def _load_failure_message(model_id: str, exc: Exception) -> str:
    reason = " ".join(str(exc).split())[:300] or type(exc).__name__
    if os.path.isdir(model_id):
        fix = (
            "The folder must hold config.json, model.safetensors, preprocessor_config.json "
            "and the tokenizer files (spiece.model, or tokenizer.json for SigLIP 2); "
            "re-download or re-save it with save_pretrained."
        )
    else:
        fix = (
            "Connect to the internet once so it can be downloaded to the Hugging Face cache, "
            "or pass --model /path/to/a/local/siglip/folder (or set GALLERY_APP_MODEL)."
        )
    return f"Cannot load SigLIP model {model_id!r}: {reason}. {fix}"
