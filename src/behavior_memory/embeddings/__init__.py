"""Embedders: texts to L2-normalised float32 vectors (hashing, sentence-transformers, OpenAI-compatible)."""

from __future__ import annotations

from .base import Embedder, l2_normalize
from .config import EmbeddingsConfig, NoEmbeddingsConfig, build_embedder, parse_embeddings_config
from .hashing import HashingEmbedder, HashingEmbeddingsConfig
from .openai_compat import OpenAIEmbedder, OpenAIEmbeddingsConfig
from .sentence_transformers import SentenceTransformerEmbedder, SentenceTransformersConfig

__all__ = [
    "Embedder",
    "EmbeddingsConfig",
    "HashingEmbedder",
    "HashingEmbeddingsConfig",
    "NoEmbeddingsConfig",
    "OpenAIEmbedder",
    "OpenAIEmbeddingsConfig",
    "SentenceTransformerEmbedder",
    "SentenceTransformersConfig",
    "build_embedder",
    "l2_normalize",
    "parse_embeddings_config",
]
