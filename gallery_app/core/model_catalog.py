"""The known SigLIP / SigLIP 2 checkpoints (data: resources/models.json) and which are cached.

One place for what the CLI's `gallery-app models`, the window's Preferences and the README's
table show.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from gallery_app.core.errors import ConfigError

CATALOG_FILE = "models.json"
FAMILIES = ("siglip", "siglip2")
LANGUAGES = ("english", "multilingual")


@dataclass(frozen=True)
class Architecture:
    """The numbers config.json implies; both towers share them in every SigLIP checkpoint."""

    hidden_size: int
    intermediate_size: int
    layers: int
    heads: int
    vocab_size: int
    text_length: int


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    family: str  # "siglip" or "siglip2"
    size: str  # base, large, so400m
    resolution: int
    patch: int
    embedding_dim: int
    download_mb: int  # model.safetensors, MB (10^6 bytes)
    download_mb_source: str  # the hub page it was read off, or "computed"
    languages: str  # "english" or "multilingual"
    relative_cpu_speed: float | None  # image-tower images/s relative to SigLIP base-224
    choose_when: str
    architecture: Architecture

    @property
    def multilingual(self) -> bool:
        return self.languages == "multilingual"


@dataclass(frozen=True)
class ModelChoice:
    """One row of the list: an entry, whether it is cached, and whether it is the default."""

    entry: CatalogEntry
    cached: bool
    default: bool


@functools.lru_cache(maxsize=1)
def load_catalog() -> tuple[CatalogEntry, ...]:
    source = resources.files("gallery_app.resources").joinpath(CATALOG_FILE)
    return parse_catalog(json.loads(source.read_text("utf-8")), f"built-in {CATALOG_FILE}")


def parse_catalog(data: Any, origin: str) -> tuple[CatalogEntry, ...]:
    """Entries from decoded JSON; ConfigError naming the entry and field when one is wrong."""
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise ConfigError(f"{origin}: expected an object with a 'models' list")
    entries = []
    seen: set[str] = set()
    for index, raw in enumerate(data["models"]):
        where = f"{origin}: models[{index}]"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where} must be an object")
        try:
            entry = CatalogEntry(
                id=_text(raw, "id"),
                family=_choice(raw, "family", FAMILIES),
                size=_text(raw, "size"),
                resolution=_whole(raw, "resolution"),
                patch=_whole(raw, "patch"),
                embedding_dim=_whole(raw, "embedding_dim"),
                download_mb=_whole(raw, "download_mb"),
                download_mb_source=_text(raw, "download_mb_source"),
                languages=_choice(raw, "languages", LANGUAGES),
                relative_cpu_speed=_speed(raw),
                choose_when=_text(raw, "choose_when"),
                architecture=Architecture(
                    **{
                        name: _whole(raw.get("architecture") or {}, name)
                        for name in Architecture.__dataclass_fields__
                    }
                ),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        if entry.id in seen:
            raise ConfigError(f"{where}: {entry.id} is listed twice")
        seen.add(entry.id)
        entries.append(entry)
    return tuple(entries)


def find(model_id: str) -> CatalogEntry | None:
    return next((entry for entry in load_catalog() if entry.id == model_id), None)


def model_choices() -> list[ModelChoice]:
    """Every catalog entry with whether it is in the hub cache (a cache read, no network)."""
    from gallery_app.core.download import cached_snapshot
    from gallery_app.core.embeddings import DEFAULT_MODEL

    return [
        ModelChoice(entry, cached_snapshot(entry.id) is not None, entry.id == DEFAULT_MODEL)
        for entry in load_catalog()
    ]


def siglip_config(entry: CatalogEntry) -> Any:
    """The transformers SiglipConfig the entry stands for (shapes only; no weights)."""
    from transformers import SiglipConfig

    arch = entry.architecture
    towers = {
        "hidden_size": arch.hidden_size,
        "intermediate_size": arch.intermediate_size,
        "num_hidden_layers": arch.layers,
        "num_attention_heads": arch.heads,
    }
    # SigLIP's SentencePiece pads and ends with id 1; Gemma (SigLIP 2) pads 0, ends 1, begins 2.
    tokens = (
        {"pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2}
        if entry.family == "siglip2"
        else {"pad_token_id": 1, "eos_token_id": 1, "bos_token_id": None}
    )
    return SiglipConfig(
        text_config={
            **towers,
            **tokens,
            "vocab_size": arch.vocab_size,
            "max_position_embeddings": arch.text_length,
        },
        vision_config={**towers, "image_size": entry.resolution, "patch_size": entry.patch},
    )


def vision_config(entry: CatalogEntry) -> Any:
    """The image tower's SiglipVisionConfig (what the speed benchmark builds)."""
    return siglip_config(entry).vision_config


def table_markdown(entries: tuple[CatalogEntry, ...] | None = None) -> str:
    """The README's table of the catalog (tests check the README holds exactly this)."""
    rows = [
        "| model | family | pixels | download | vector | languages | CPU speed | choose it when |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for entry in entries or load_catalog():
        rows.append(
            f"| `{entry.id}` | {'SigLIP 2' if entry.family == 'siglip2' else 'SigLIP'} "
            f"{entry.size} | {entry.resolution} | {format_mb(entry.download_mb)} | "
            f"{entry.embedding_dim} | {entry.languages} | {format_speed(entry.relative_cpu_speed)} "
            f"| {entry.choose_when} |"
        )
    return "\n".join(rows)


def format_mb(megabytes: int) -> str:
    return f"{megabytes / 1000:.2f} GB" if megabytes >= 1000 else f"{megabytes} MB"


def format_speed(speed: float | None) -> str:
    """'1.00x' of SigLIP base-224's images per second, or '?' when not measured."""
    return "?" if speed is None else f"{speed:.2f}x"


def _text(raw: dict[str, Any], key: str) -> str:
    value = raw[key]
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"'{key}' must be a non-empty string, got {value!r}")
    return value


def _choice(raw: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = _text(raw, key)
    if value not in allowed:
        raise ValueError(f"'{key}' must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _whole(raw: dict[str, Any], key: str) -> int:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"'{key}' must be a positive whole number, got {value!r}")
    return value


def _speed(raw: dict[str, Any]) -> float | None:
    value = raw.get("relative_cpu_speed")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"'relative_cpu_speed' must be a positive number, got {value!r}")
    return float(value)
