"""A fast per-run ``Memory`` for the block: an in-process chat store and a compiled-once template.

``Memory.from_defaults()`` costs a LlamaIndex agent more than our block does (measured in
``bench/bench_llamaindex.py`` on this machine): every run opens a new SQLAlchemy + aiosqlite engine,
every step reads and writes it through a thread, and every step with a non-empty block compiles the
jinja ``memory_blocks_template`` again (tens of milliseconds). ``behavior_chat_memory`` builds the same
``Memory`` (same rendered bytes) with a dict-backed ``AsyncDBChatStore`` and the default template
rendered without jinja for text blocks; ``wrap`` uses it for the runs it creates a memory for.
"""

from __future__ import annotations

import threading
from typing import Any, cast

from llama_index.core.base.llms.types import ChatMessage, TextBlock
from llama_index.core.memory import InsertMethod, Memory
from llama_index.core.memory.memory import DEFAULT_MEMORY_BLOCKS_TEMPLATE
from llama_index.core.prompts import RichPromptTemplate
from llama_index.core.storage.chat_store.base_db import AsyncDBChatStore, MessageStatus
from pydantic import PrivateAttr

from .block import BehaviorMemoryBlock

__all__ = ["FAST_MEMORY_BLOCKS_TEMPLATE", "FastMemoryBlocksTemplate", "InProcessChatStore", "behavior_chat_memory"]


class InProcessChatStore(AsyncDBChatStore):
    """Chat history in a dict (one run's, or one process's): the SQL store's semantics, no database.

    Reads return copies, as rows read back from a database would, so callers may mutate them.
    """

    _rows: dict[str, list[tuple[ChatMessage, MessageStatus]]] = PrivateAttr(default_factory=dict)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def class_name(cls) -> str:
        return "InProcessChatStore"

    def _select(self, key: str, status: MessageStatus | None) -> list[ChatMessage]:
        return [m for m, s in self._rows.get(key, []) if status is None or s == status]

    async def get_messages(
        self,
        key: str,
        status: MessageStatus | None = MessageStatus.ACTIVE,
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[ChatMessage]:
        with self._lock:
            found = self._select(key, status)
        found = found[offset or 0 :]
        if limit is not None:
            found = found[:limit]
        return [m.model_copy(deep=True) for m in found]

    async def count_messages(self, key: str, status: MessageStatus | None = MessageStatus.ACTIVE) -> int:
        with self._lock:
            return len(self._select(key, status))

    async def add_message(self, key: str, message: ChatMessage, status: MessageStatus = MessageStatus.ACTIVE) -> None:
        await self.add_messages(key, [message], status)

    async def add_messages(
        self, key: str, messages: list[ChatMessage], status: MessageStatus = MessageStatus.ACTIVE
    ) -> None:
        with self._lock:
            self._rows.setdefault(key, []).extend((m.model_copy(deep=True), status) for m in messages)

    async def set_messages(
        self, key: str, messages: list[ChatMessage], status: MessageStatus = MessageStatus.ACTIVE
    ) -> None:
        with self._lock:
            self._rows[key] = [(m.model_copy(deep=True), status) for m in messages]

    async def delete_message(self, key: str, idx: int) -> ChatMessage | None:
        with self._lock:
            rows = self._rows.get(key, [])
            return rows.pop(idx)[0] if 0 <= idx < len(rows) else None

    async def delete_messages(self, key: str, status: MessageStatus | None = None) -> None:
        with self._lock:
            if status is None:
                self._rows.pop(key, None)
            else:
                self._rows[key] = [(m, s) for m, s in self._rows.get(key, []) if s != status]

    async def delete_oldest_messages(self, key: str, n: int) -> list[ChatMessage]:
        with self._lock:
            rows = self._rows.get(key, [])
            removed, self._rows[key] = rows[:n], rows[n:]
        return [m for m, _ in removed]

    async def archive_oldest_messages(self, key: str, n: int) -> list[ChatMessage]:
        with self._lock:
            rows = self._rows.get(key, [])
            active = [i for i, (_, s) in enumerate(rows) if s == MessageStatus.ACTIVE][:n]
            for i in active:
                rows[i] = (rows[i][0], MessageStatus.ARCHIVED)
            return [rows[i][0].model_copy(deep=True) for i in active]

    async def get_keys(self) -> list[str]:
        with self._lock:
            return list(self._rows)


class FastMemoryBlocksTemplate(RichPromptTemplate):  # type: ignore[no-redef]  # plugin vs its `kwargs` field
    """LlamaIndex's default memory template, rendered without jinja when every block is text.

    ``Memory`` formats its blocks on every ``aget`` and ``RichPromptTemplate`` compiles its jinja
    source each time (about 13 ms here). For text blocks the default template's output is plain
    concatenation; a unit test pins it to the jinja rendering byte for byte. Anything else (images,
    a partially formatted template, another template) goes through jinja as before.
    """

    def format_messages(self, llm: Any = None, **values: Any) -> list[ChatMessage]:
        blocks = values.get("memory_blocks") or []
        if (
            self.template_str != DEFAULT_MEMORY_BLOCKS_TEMPLATE.template_str
            or self.kwargs
            or set(values) != {"memory_blocks"}
            or not all(isinstance(b, TextBlock) for _, content in blocks for b in content)
        ):
            return super().format_messages(llm=llm, **values)
        lines = ["<memory>"]
        for name, content in blocks:
            lines.append(f"<{name}>")
            lines.extend(block.text for block in content)
            lines.append(f"</{name}>")
        lines.append("</memory>")
        return [ChatMessage(role="user", blocks=[TextBlock(text="\n".join(lines))])]


#: LlamaIndex's default memory template (same output), without the per-step jinja compile.
FAST_MEMORY_BLOCKS_TEMPLATE: RichPromptTemplate = cast(Any, FastMemoryBlocksTemplate)(
    DEFAULT_MEMORY_BLOCKS_TEMPLATE.template_str
)


def behavior_chat_memory(
    block: BehaviorMemoryBlock,
    *,
    session_id: str | None = None,
    insert_method: InsertMethod = InsertMethod.SYSTEM,
    token_limit: int = 30_000,
) -> Memory:
    """A ``Memory`` holding ``block``, kept in process, with the memoized default template."""
    return Memory(
        session_id=session_id or f"bm-{id(block)}",
        memory_blocks=[block],
        insert_method=insert_method,
        token_limit=token_limit,
        memory_blocks_template=FAST_MEMORY_BLOCKS_TEMPLATE,
        sql_store=InProcessChatStore(),
    )
