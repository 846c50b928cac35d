"""``OpenAIEmbedder``: any OpenAI-compatible ``/v1/embeddings`` server (vLLM, TEI, llama.cpp, OpenAI).

vLLM serves embedding models (``vllm serve BAAI/bge-m3 --task embed``, the paper's AIME choice) at
``http://HOST:8000/v1``. We go through the ``openai`` package, letting it build its own HTTP client so
the same code runs on openai 2.x (httpx) and 3.x (httpx2). Every failure (unreachable server, HTTP
error, malformed answer) becomes an ``EmbeddingError`` naming the server.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ..errors import EmbeddingError
from .base import Embedder, l2_normalize

if TYPE_CHECKING:  # numpy loads with the first vector, not with the import
    import numpy as np
    import numpy.typing as npt

__all__ = ["OpenAIEmbedder", "OpenAIEmbeddingsConfig"]

logger = logging.getLogger(__name__)


class OpenAIEmbeddingsConfig(BaseModel):
    """YAML ``embeddings: {provider: openai, base_url: http://localhost:8000/v1, model: ...}``."""

    model_config = ConfigDict(extra="forbid")

    provider: Literal["openai"] = "openai"
    base_url: str = Field(description="the server's OpenAI-compatible root, ending in /v1")
    model: str
    api_key: SecretStr = SecretStr("EMPTY")
    dim: int | None = Field(default=None, ge=1, description="expected vector length; learned if omitted")
    timeout_s: float = Field(default=30.0, gt=0)
    batch_size: int = Field(default=64, ge=1)
    max_retries: int = Field(default=2, ge=0)


class OpenAIEmbedder(Embedder):
    """Embeds through ``POST {base_url}/embeddings``; sync and async, batched, normalised."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "EMPTY",
        dim: int | None = None,
        timeout_s: float = 30.0,
        batch_size: int = 64,
        max_retries: int = 2,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout_s = timeout_s
        self.batch_size = max(1, batch_size)
        self.max_retries = max_retries
        self._api_key = api_key
        self._dim = dim
        self._client: Any = None
        self._async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIEmbedder(base_url={self.base_url!r}, model={self.model!r}, dim={self._dim})"

    @property
    def name(self) -> str:
        return f"openai:{self.model}"

    @property
    def dim(self) -> int:
        if self._dim is None:  # ask the server once
            self.embed(["dimension probe"])
        assert self._dim is not None
        return self._dim

    # --- clients -----------------------------------------------------------------------------
    def _kwargs(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "api_key": self._api_key,
            "timeout": self.timeout_s,
            "max_retries": self.max_retries,
        }

    def _sync_client(self) -> Any:
        with self._lock:
            if self._client is None:
                import openai

                self._client = openai.OpenAI(**self._kwargs())
            return self._client

    def _async_client(self) -> Any:
        # an async HTTP pool belongs to the event loop it was opened on: one client per loop
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._async_clients.get(loop)
            if client is None:
                import openai

                client = self._async_clients[loop] = openai.AsyncOpenAI(**self._kwargs())
            return client

    # --- embedding ---------------------------------------------------------------------------
    def _error(self, exc: BaseException) -> EmbeddingError:
        status = getattr(exc, "status_code", None)
        detail = f"HTTP {status}: " if status else ""
        return EmbeddingError(
            f"embedding server {self.base_url} (model {self.model!r}) failed: {detail}{type(exc).__name__}: {exc}",
            base_url=self.base_url,
            status=status,
        )

    def _rows(self, response: Any, expected: int) -> list[list[float]]:
        data = sorted(getattr(response, "data", None) or [], key=lambda item: item.index)
        if len(data) != expected:
            raise EmbeddingError(
                f"embedding server {self.base_url} returned {len(data)} vectors for {expected} texts",
                base_url=self.base_url,
            )
        return [list(item.embedding) for item in data]

    def _finish(self, rows: list[list[float]]) -> npt.NDArray[np.float32]:
        import numpy as np

        matrix = l2_normalize(np.asarray(rows, dtype=np.float32))
        got = matrix.shape[1]
        if self._dim is None:
            self._dim = got
        elif got != self._dim:
            raise EmbeddingError(
                f"embedding server {self.base_url} returned {got}-d vectors; expected {self._dim}",
                base_url=self.base_url,
            )
        return matrix

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        import numpy as np

        texts = list(texts)
        if not texts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        client = self._sync_client()
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            t0 = time.perf_counter()
            try:
                response = client.embeddings.create(model=self.model, input=batch, encoding_format="float")
            except Exception as exc:
                raise self._error(exc) from exc
            logger.info(
                "POST %s/embeddings model=%s texts=%d %.0f ms",
                self.base_url,
                self.model,
                len(batch),
                1000 * (time.perf_counter() - t0),
            )
            rows += self._rows(response, len(batch))
        return self._finish(rows)

    async def aembed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        import numpy as np

        texts = list(texts)
        if not texts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        client = self._async_client()
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            t0 = time.perf_counter()
            try:
                response = await client.embeddings.create(model=self.model, input=batch, encoding_format="float")
            except Exception as exc:
                raise self._error(exc) from exc
            logger.info(
                "POST %s/embeddings model=%s texts=%d %.0f ms",
                self.base_url,
                self.model,
                len(batch),
                1000 * (time.perf_counter() - t0),
            )
            rows += self._rows(response, len(batch))
        return self._finish(rows)

    def close(self) -> None:
        """Close the sync HTTP client (async ones close with their event loop's garbage)."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    @classmethod
    def from_config(cls, config: OpenAIEmbeddingsConfig) -> OpenAIEmbedder:
        return cls(
            base_url=config.base_url,
            model=config.model,
            api_key=config.api_key.get_secret_value(),
            dim=config.dim,
            timeout_s=config.timeout_s,
            batch_size=config.batch_size,
            max_retries=config.max_retries,
        )
