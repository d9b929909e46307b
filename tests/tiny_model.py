"""Builds a tiny random SigLIP checkpoint on disk, loadable through AutoModel/AutoProcessor."""

from __future__ import annotations

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
    import torch
    from transformers import SiglipConfig, SiglipModel, SiglipProcessor, SiglipTokenizer

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

    torch.manual_seed(seed)
    config = SiglipConfig(
        text_config={
            "vocab_size": max(64, len(tokenizer)),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": 64,
            "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "bos_token_id": None,  # SigLIP has none; the default (49406) is CLIP's
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
