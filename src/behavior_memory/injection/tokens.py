"""Token counting for the behavior block's budget, offline.

tiktoken downloads its BPE files on first use, and the machines we run on may have no network. The
``cl100k_base`` file ships inside this package (``behavior_memory/data/tiktoken/``), named by
tiktoken's cache key (the sha1 of the blob URL); tiktoken checks its sha256 against the hash it
knows, so the data is authentic. cl100k only approximates the tokenizer of a Qwen or Llama model
served by vLLM; exact counts come from the server's ``usage``. For a budget, close is enough.

If tiktoken cannot load at all, counts fall back to ``ceil(len(text) / 4)`` and one WARNING says so.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from pathlib import Path
from typing import Any

__all__ = ["ENCODING_NAME", "TIKTOKEN_DATA_DIR", "count_tokens", "uses_tiktoken"]

logger = logging.getLogger(__name__)

ENCODING_NAME = "cl100k_base"
#: Folder holding tiktoken BPE files under their cache-key names.
TIKTOKEN_DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "tiktoken"

_lock = threading.Lock()
_encoding: Any = None
_loaded = False  # True once a load was tried, whatever its result


def _load_encoding() -> Any:
    """Load cl100k_base from our package data; ``None`` (and one WARNING) if that fails."""
    try:
        import tiktoken
    except ImportError as exc:
        logger.warning("tiktoken is not importable (%s); token counts are approximated as len/4", exc)
        return None
    # TIKTOKEN_CACHE_DIR is process-wide: set it only for the load and put the old value back, so
    # a user's own tiktoken cache keeps working after us.
    previous = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = str(TIKTOKEN_DATA_DIR)
    try:
        return tiktoken.get_encoding(ENCODING_NAME)
    except Exception as exc:  # any failure (network, hash, version) has the same answer
        logger.warning(
            "tiktoken could not load %s from %s (%s: %s); token counts are approximated as len/4",
            ENCODING_NAME,
            TIKTOKEN_DATA_DIR,
            type(exc).__name__,
            exc,
        )
        return None
    finally:
        if previous is None:
            os.environ.pop("TIKTOKEN_CACHE_DIR", None)
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = previous


def _get_encoding() -> Any:
    global _encoding, _loaded
    if not _loaded:
        with _lock:
            if not _loaded:
                _encoding = _load_encoding()
                _loaded = True
    return _encoding


def uses_tiktoken() -> bool:
    """Whether counts come from tiktoken (``True``) or from the ``len/4`` approximation."""
    return _get_encoding() is not None


def count_tokens(text: str) -> int:
    """Number of ``cl100k_base`` tokens in ``text`` (special tokens counted as plain text).

    >>> count_tokens("")
    0
    >>> count_tokens("hello world")
    2
    """
    if not text:
        return 0
    encoding = _get_encoding()
    if encoding is None:
        return math.ceil(len(text) / 4)
    return len(encoding.encode_ordinary(text))
