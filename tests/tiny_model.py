"""Builds a tiny random SigLIP checkpoint on disk, loadable through AutoModel/AutoProcessor."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

CORPUS = """a photo of a dog on the beach.
a photo of a cat on the sofa.
a photo of a red car in the street.
a photo of the sea at sunset.
a photo of snow on the mountain.
a photo of children playing in the park.
a photo of a birthday cake with candles.
a photo of a puppy in the grass.
a photo of people at a wedding.
a photo of a bicycle near a tree.
a photo of rain in the city at night.
a photo of a boat on the lake.
"""


def train_vocab(folder: Path, vocab_size: int = 48, text: str | None = None) -> Path:
    """A SentencePiece model with SigLIP's special pieces (pad 0, eos 1, unk 2, no bos),
    trained on `text` (default: a tiny caption corpus). The benchmarks' vocab uses it too."""
    import sentencepiece as spm

    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "corpus.txt"
    corpus.write_text(CORPUS * 4 if text is None else text, encoding="utf-8")
    prefix = folder / "spiece"
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        pad_piece="<pad>",
        eos_piece="</s>",
        unk_piece="<unk>",
        hard_vocab_limit=False,
        character_coverage=1.0,
        minloglevel=2,
    )
    corpus.unlink()
    return prefix.with_suffix(".model")


def build_tiny_siglip(
    folder: Path,
    *,
    image_size: int = 32,
    seed: int = 0,
    logit_scale: float = math.log(10.0),
    logit_bias: float = -2.0,
) -> Path:
    """Save a random-weight SigLIP (text max_position_embeddings = 64) plus its processor."""
    from transformers import SiglipProcessor, SiglipTokenizer

    try:  # transformers 5: the PIL processor has its own class (the default needs torchvision)
        from transformers import SiglipImageProcessorPil as SiglipImageProcessor
    except ImportError:  # transformers 4.x: the default one is PIL-based
        from transformers import SiglipImageProcessor

    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        vocab = train_vocab(Path(scratch))
        tokenizer = SiglipTokenizer(vocab_file=str(vocab), model_max_length=64)
        image_processor = SiglipImageProcessor(size={"height": image_size, "width": image_size})
        processor = SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer)
        processor.save_pretrained(folder)  # copies spiece.model while it still exists

    return _save_model(
        folder,
        max(64, len(tokenizer)),
        tokenizer.pad_token_id,
        tokenizer.eos_token_id,
        None,  # SigLIP has no BOS; the config's default (49406) is CLIP's
        image_size,
        seed,
        logit_scale,
        logit_bias,
    )


def _save_model(
    folder: Path,
    vocab_size: int,
    pad_token_id: int | None,
    eos_token_id: int | None,
    bos_token_id: int | None,
    image_size: int,
    seed: int,
    logit_scale: float,
    logit_bias: float,
) -> Path:
    """A random-weight SiglipModel this small beside the processor files in `folder`."""
    import torch
    from transformers import SiglipConfig, SiglipModel

    torch.manual_seed(seed)
    config = SiglipConfig(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": 64,
            "pad_token_id": pad_token_id,
            "eos_token_id": eos_token_id,
            "bos_token_id": bos_token_id,
        },
        vision_config={
            "image_size": image_size,
            "patch_size": 8,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
        },
    )
    model = SiglipModel(config).eval()
    with torch.no_grad():
        model.logit_scale.fill_(logit_scale)
        model.logit_bias.fill_(logit_bias)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


# SigLIP 2 --------------------------------------------------------------------------------------

SIGLIP2_CORPUS = (
    CORPUS
    + """una foto de un perro en la playa.
une photo d'un chien sur la plage.
ein foto von einem hund am strand.
"""
)
# Gemma's special tokens at Gemma's ids (pad 0, eos 1, bos 2, unk 3, mask 4), the two chat
# tokens special_tokens_map.json lists, then byte-fallback pieces for any character.
GEMMA_SPECIALS = ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>")
GEMMA_BYTES = tuple(f"<0x{byte:02X}>" for byte in range(256))


def gemma_style_tokenizer(vocab_size: int = 360, text: str = SIGLIP2_CORPUS):
    """A Gemma-like fast tokenizer built with the `tokenizers` library: BPE with byte fallback,
    spaces as "▁", no sentencepiece file. Saved the way transformers' SigLIP 2 conversion
    saved google/siglip2-*: add_bos_token=False, add_eos_token=True, padding_side="right",
    input_ids only (convert_siglip2_to_hf.py, get_siglip2_tokenizer)."""
    import transformers
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    backend.normalizer = normalizers.Replace(" ", "▁")
    backend.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[*GEMMA_SPECIALS, *GEMMA_BYTES],
        show_progress=False,
    )
    backend.train_from_iterator(text.splitlines(), trainer)
    options = {
        "add_bos_token": False,
        "add_eos_token": True,
        "padding_side": "right",
        "model_input_names": ["input_ids"],
        "additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"],
    }
    if int(transformers.__version__.split(".", 1)[0]) < 5:  # 4.x: the fast class wraps it
        return transformers.GemmaTokenizerFast(tokenizer_object=backend, **options)
    model = json.loads(backend.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return transformers.GemmaTokenizer(vocab=model["vocab"], merges=merges, **options)


# tokenizer_config.json modelled on google/siglip2-base-patch16-224's: a GemmaTokenizer saved by
# transformers 4.49 with the conversion's options (no BOS, EOS added, right padding, input_ids
# only), special tokens as in its special_tokens_map.json; added_tokens_decoder left out.
SIGLIP2_TOKENIZER_CONFIG = {
    "add_bos_token": False,
    "add_eos_token": True,
    "additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"],
    "bos_token": "<bos>",
    "clean_up_tokenization_spaces": False,
    "eos_token": "<eos>",
    "extra_special_tokens": {},
    "model_input_names": ["input_ids"],
    "model_max_length": 1000000000000000019884624838656,
    "pad_token": "<pad>",
    "padding_side": "right",
    "processor_class": "SiglipProcessor",
    "sp_model_kwargs": {},
    "spaces_between_special_tokens": False,
    "tokenizer_class": "GemmaTokenizer",
    "unk_token": "<unk>",
    "use_default_system_prompt": False,
}


def build_tiny_siglip2(
    folder: Path,
    *,
    image_size: int = 32,
    seed: int = 1,
    logit_scale: float = math.log(10.0),
    logit_bias: float = -2.0,
    tokenizer_config: dict | None = None,
) -> Path:
    """A random-weight fixed-resolution SigLIP 2: model_type "siglip" (SiglipModel), the Gemma
    tokenizer in tokenizer.json only (no spiece.model), pad 0 / eos 1 / bos 2 as in Gemma.

    tokenizer_config replaces tokenizer_config.json (default: SIGLIP2_TOKENIZER_CONFIG).
    """
    from transformers import SiglipProcessor

    try:
        from transformers import SiglipImageProcessorPil as SiglipImageProcessor
    except ImportError:  # transformers 4.x
        from transformers import SiglipImageProcessor

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = gemma_style_tokenizer()
    image_processor = SiglipImageProcessor(size={"height": image_size, "width": image_size})
    SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    (folder / "tokenizer_config.json").write_text(
        json.dumps(tokenizer_config or SIGLIP2_TOKENIZER_CONFIG, indent=2), encoding="utf-8"
    )
    special = {
        "additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"],
        **{
            f"{kind}_token": {
                "content": token,
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
            }
            for kind, token in (
                ("bos", "<bos>"),
                ("eos", "<eos>"),
                ("pad", "<pad>"),
                ("unk", "<unk>"),
            )
        },
    }
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2), "utf-8")
    assert not (folder / "spiece.model").exists()

    return _save_model(
        folder,
        len(tokenizer),
        tokenizer.pad_token_id,
        tokenizer.eos_token_id,
        tokenizer.bos_token_id,
        image_size,
        seed,
        logit_scale,
        logit_bias,
    )


def build_tiny_naflex(folder: Path) -> Path:
    """A random-weight SigLIP 2 NaFlex checkpoint (model_type "siglip2", Siglip2Model)."""
    import torch
    from transformers import Siglip2Config, Siglip2Model

    torch.manual_seed(0)
    tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
             "num_attention_heads": 4}  # fmt: skip
    config = Siglip2Config(
        text_config={
            **tower,
            "vocab_size": 400,
            "bos_token_id": 2,
            "eos_token_id": 1,
            "pad_token_id": 0,
        },
        vision_config={**tower, "patch_size": 8, "num_patches": 16},
    )
    Siglip2Model(config).save_pretrained(folder, safe_serialization=True)
    tokenizer = gemma_style_tokenizer()
    tokenizer.save_pretrained(folder)
    return folder
