"""``BehaviorMemoryBlock``: the behavior block as a LlamaIndex ``Memory`` block.

::

    chat_memory = Memory.from_defaults(session_id="s1", memory_blocks=[BehaviorMemoryBlock(memory)])
    await agent.run("How many primes are below 30?", memory=chat_memory)

``Memory.aget`` calls the block on every agent step. The block retrieves once per task (the last
user message) and run, renders the paper's block and caches it, so every step of the task sends
the same bytes (a stable prefix for vLLM's prefix cache). Its priority is 0, so ``Memory`` never
truncates it, and the token budget is applied when rendering, whole behaviors at a time.

Retrieval that fails or takes longer than ``timeout_s`` gives no block (logged); the agent runs on.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from typing import Any

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.memory import BaseMemoryBlock
from llama_index_instrumentation.dispatcher import active_instrument_tags
from pydantic import Field, PrivateAttr

from ...injection.render import RenderedBlock
from ._messages import last_user_text
from .instrumentation import NAMESPACE_TAG, TOPIC_TAG, instrumentation_for, run_key

__all__ = ["BehaviorMemoryBlock"]

log = logging.getLogger(__name__)

#: Longer user messages are cut to this many characters before retrieval (the start says what is asked).
MAX_QUERY_CHARS = 4000


class BehaviorMemoryBlock(BaseMemoryBlock[str]):
    """Behaviors relevant to the current task, rendered for the prompt (a ``BaseMemoryBlock[str]``).

    ``namespace`` and ``topic`` default to the memory's namespace and no topic; the instrument tags
    ``NAMESPACE_TAG``/``TOPIC_TAG`` of a run override them (``wrap`` sets them per run).
    """

    name: str = Field(default="behaviors", description="The block's name (its XML tag in the prompt).")
    priority: int = Field(default=0, description="0: Memory never truncates this block.")
    accept_short_term_memory: bool = Field(default=False, description="Flushed chat history is not kept.")
    namespace: str | None = Field(default=None, description="Namespace to retrieve from; default: the memory's.")
    topic: str | None = Field(default=None, description="Topic filter for retrieval.")
    k: int | None = Field(default=None, description="Behaviors retrieved; default: retrieval.k.")
    token_budget: int | None = Field(default=None, description="Block size limit; default: retrieval.token_budget.")
    timeout_s: float = Field(default=2.0, gt=0, description="Retrieval slower than this gives no block.")
    cache_size: int = Field(default=512, ge=1, description="Rendered blocks kept (one per task and run).")

    _memory: Any = PrivateAttr()
    # (scope, namespace, topic, task) -> (rendered block, the hits it was rendered from)
    _cache: OrderedDict[tuple[str, ...], tuple[RenderedBlock, tuple[Any, ...]]] = PrivateAttr(
        default_factory=OrderedDict
    )
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def __init__(self, memory: Any, **data: Any) -> None:
        super().__init__(**data)
        self._memory = memory

    @property
    def memory(self) -> Any:
        """The ``BehaviorMemory`` this block reads from."""
        return self._memory

    async def _aget(self, messages: list[ChatMessage] | None = None, **block_kwargs: Any) -> str:
        try:
            return await self._block(messages, block_kwargs)
        except Exception:  # the block is an extra: never let it break the user's agent
            log.exception("behavior block failed; the prompt goes without behaviors")
            return ""

    async def _block(self, messages: list[ChatMessage] | None, block_kwargs: dict[str, Any]) -> str:
        task = last_user_text(messages)
        if not task:
            return ""
        tags = active_instrument_tags.get()
        namespace = tags.get(NAMESPACE_TAG) or self.namespace
        topic = tags.get(TOPIC_TAG) or self.topic
        scope = run_key(tags) or str(block_kwargs.get("session_id") or "")
        key = (scope, namespace or "", topic or "", task)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
        if cached is None:
            rendered = await self._render(task, namespace, topic)
            with self._lock:  # two steps raced: the first block stored wins, so bytes never change
                cached = self._cache.setdefault(key, rendered)
                self._cache.move_to_end(key)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        self._note_shown(cached[0])
        return str(cached[0])

    async def _render(
        self, task: str, namespace: str | None, topic: str | None
    ) -> tuple[RenderedBlock, tuple[Any, ...]]:
        started = time.perf_counter()
        try:
            hits = await asyncio.wait_for(
                self._memory.aretrieve(task[:MAX_QUERY_CHARS], k=self.k, namespace=namespace, topic=topic),
                timeout=self.timeout_s,
            )
        except TimeoutError:
            log.warning("behavior retrieval took over %.1f s; this task runs without behaviors", self.timeout_s)
            return RenderedBlock(""), ()
        except Exception as exc:
            log.warning("behavior retrieval failed (%s: %s); this task runs without behaviors", type(exc).__name__, exc)
            return RenderedBlock(""), ()
        block = self._memory.render(hits, token_budget=self.token_budget)
        log.debug(
            "behavior block: %d behaviors, %d tokens, %.1f ms",
            len(block.names),
            block.tokens,
            (time.perf_counter() - started) * 1000,
        )
        return block, tuple(hits)

    def _note_shown(self, block: RenderedBlock) -> None:
        if not block.names:
            return
        instrumentation = instrumentation_for(self._memory)
        recorder = instrumentation.current_run() if instrumentation is not None else None
        if recorder is not None:
            recorder.show(block.names)

    async def _aput(self, messages: list[ChatMessage]) -> None:
        return None  # traces come from instrumentation, not from flushed chat history

    async def atruncate(self, content: str, tokens_to_truncate: int) -> str | None:
        """Drop whole behaviors from the end (only asked when ``priority`` is not 0)."""
        with self._lock:
            found = next((entry for entry in reversed(self._cache.values()) if str(entry[0]) == content), None)
        if found is None or not found[0].names:
            return None
        block, hits = found
        budget = block.tokens - tokens_to_truncate
        if budget <= 0:
            return None
        return str(self._memory.render(hits, token_budget=budget)) or None

    def clear_cache(self) -> None:
        """Forget rendered blocks (the next step of every task retrieves again)."""
        with self._lock:
            self._cache.clear()
