"""``BehaviorMemoryBlock``: the behavior block as a LlamaIndex ``Memory`` block.

::

    chat_memory = Memory.from_defaults(session_id="s1", memory_blocks=[BehaviorMemoryBlock(memory)])
    await agent.run("How many primes are below 30?", memory=chat_memory)

``Memory.aget`` calls the block on every agent step. The block fetches once per task (the last
user message) and run, through the core's ``BlockFetcher`` (query length, time budget, logging),
and caches the rendered block, so every step of the task sends the same bytes (a stable prefix for
vLLM's prefix cache). Its priority is 0, so ``Memory`` never truncates it, and the token budget is
applied when rendering, whole behaviors at a time.

Retrieval that fails or takes longer than ``timeout_s`` gives no block (logged); the agent runs on.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.memory import BaseMemoryBlock
from llama_index_instrumentation.dispatcher import active_instrument_tags
from pydantic import Field, PrivateAttr

from ...errors import NotFoundError
from ...injection.fetch import BlockFetcher
from ...injection.render import RenderedBlock
from ._handlers import tag_namespace
from ._messages import last_user_text
from .instrumentation import TOPIC_TAG, instrumentation_for, run_key

__all__ = ["BehaviorMemoryBlock"]

log = logging.getLogger(__name__)


class BehaviorMemoryBlock(BaseMemoryBlock[str]):
    """Behaviors relevant to the current task, rendered for the prompt (a ``BaseMemoryBlock[str]``).

    ``namespace`` and ``topic`` default to the memory's namespace and no topic; a run's instrument
    tags override them (``NAMESPACE_TAG``, ``USER_TAG`` for a per-user namespace, ``TOPIC_TAG``;
    ``wrap`` sets them per run).
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
    # (scope, namespace, topic, task) -> the rendered block
    _cache: OrderedDict[tuple[str, ...], RenderedBlock] = PrivateAttr(default_factory=OrderedDict)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _fetchers: dict[str | None, BlockFetcher] = PrivateAttr(default_factory=dict)

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
        namespace = tag_namespace(self.namespace or self._memory.namespace, tags)
        topic = tags.get(TOPIC_TAG) or self.topic
        scope = run_key(tags) or str(block_kwargs.get("session_id") or "")
        key = (scope, namespace, topic or "", task)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
        if cached is None:
            fetched = await self._fetcher(topic).afetch(task, namespace)
            log.debug(
                "behavior block: %s, %d behaviors, %d tokens, %.1f ms",
                fetched.status,
                len(fetched.block.names),
                fetched.block.tokens,
                fetched.seconds * 1000,
            )
            with self._lock:  # two steps raced: the first block stored wins, so bytes never change
                cached = self._cache.setdefault(key, fetched.block)
                self._cache.move_to_end(key)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        self._note_shown(cached)
        return str(cached)

    def _fetcher(self, topic: str | None) -> BlockFetcher:
        """One fetcher per topic (a run's tag may name another topic than the block's)."""
        with self._lock:
            fetcher = self._fetchers.get(topic)
            if fetcher is None:
                fetcher = BlockFetcher(
                    self._memory, k=self.k, topic=topic, token_budget=self.token_budget, timeout_s=self.timeout_s
                )
                self._fetchers[topic] = fetcher
            return fetcher

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
            found = next(((key, block) for key, block in reversed(self._cache.items()) if str(block) == content), None)
        if found is None or not found[1].names:
            return None
        (_, namespace, _, _), block = found
        budget = block.tokens - tokens_to_truncate
        if budget <= 0:
            return None
        behaviors = []
        for name in block.names:  # the block keeps names only; the handbook has the rest
            try:
                behaviors.append(self._memory.handbook.get(name, namespace=namespace))
            except NotFoundError:
                continue
        return str(self._memory.render(behaviors, token_budget=budget)) or None

    def clear_cache(self) -> None:
        """Forget rendered blocks (the next step of every task retrieves again)."""
        with self._lock:
            self._cache.clear()
