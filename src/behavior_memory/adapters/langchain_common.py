"""What the LangChain middleware, tracer and runnable wrapper share.

Reading messages (text, reasoning, tool calls, multimodal parts), turning them into JSON-safe
records for a ``Trace``, choosing a task's namespace, and fetching the behavior block within a
time budget: a retrieval that fails or runs late means no block for that task, never a broken agent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_core.messages import SystemMessage

from ..errors import InvalidInputError
from ..memory.injection import RenderedBlock
from ..memory.models import validate_namespace
from ..memory.tokens import count_tokens

if TYPE_CHECKING:
    from ..facade import BehaviorMemory

__all__ = [
    "MAX_RECORDED_CHARS",
    "BlockFetcher",
    "Fetched",
    "MessageLog",
    "clip",
    "content_text",
    "last_human_text",
    "message_record",
    "output_text",
    "reasoning_text",
    "resolve_namespace",
    "task_text",
    "tool_outcome",
    "with_block",
]

log = logging.getLogger("behavior_memory.adapters.langchain")

#: Longest text kept per recorded message, output or tool result; the rest is cut (and marked).
MAX_RECORDED_CHARS = 20_000
#: Longest query handed to retrieval: the last user message can be a pasted document.
MAX_QUERY_CHARS = 4_000


def clip(text: str, limit: int = MAX_RECORDED_CHARS) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[... {len(text) - limit} characters cut ...]"


def content_text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts: list[str] = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, Mapping) and block.get("type") == "text" and isinstance(block.get("text"), str):
                parts.append(block["text"])
        return "\n".join(parts)
    return "" if content is None else str(content)


def _safe_content(content: Any) -> Any:
    """Content fit for a trace: text clipped; images, audio and files kept as a type marker only."""
    if isinstance(content, str):
        return clip(content)
    if isinstance(content, Sequence):
        blocks: list[Any] = []
        for block in content:
            if isinstance(block, str):
                blocks.append(clip(block))
            elif isinstance(block, Mapping) and block.get("type") == "text":
                blocks.append({"type": "text", "text": clip(str(block.get("text", "")))})
            elif isinstance(block, Mapping):
                blocks.append({"type": str(block.get("type", "unknown")), "omitted": True})
        return blocks
    return "" if content is None else clip(str(content))


def last_human_text(messages: Sequence[Any]) -> str:
    """The text of the last user message (its text parts only), or ``""`` when there is none."""
    for message in reversed(messages):
        kind = getattr(message, "type", None)
        if kind is None and isinstance(message, Mapping):
            kind = message.get("role") or message.get("type")
            if kind in ("human", "user"):
                return content_text(message.get("content")).strip()
            continue
        if kind == "human":
            return content_text(getattr(message, "content", "")).strip()
    return ""


def tool_calls_of(message: Any) -> list[dict[str, Any]]:
    calls = getattr(message, "tool_calls", None) or []
    return [{"name": c.get("name"), "args": c.get("args") or {}, "id": c.get("id")} for c in calls]


def message_record(message: Any) -> dict[str, Any]:
    """A LangChain message as a JSON-safe dict: role, content, and tool calls or tool call id."""
    record: dict[str, Any] = {
        "role": str(getattr(message, "type", None) or "unknown"),
        "content": _safe_content(getattr(message, "content", "")),
    }
    calls = tool_calls_of(message)
    if calls:
        record["tool_calls"] = calls
    for key in ("tool_call_id", "name"):
        value = getattr(message, key, None)
        if isinstance(value, str) and value:
            record[key] = value
    return record


def output_text(message: Any) -> str:
    """What a model call produced: its text, then one ``tool_call: name({...})`` line per tool call."""
    lines = [content_text(getattr(message, "content", "")).strip()]
    for call in tool_calls_of(message):
        lines.append(f"tool_call: {call['name']}({json.dumps(call['args'], sort_keys=True, default=str)})")
    return clip("\n".join(line for line in lines if line))


def tool_outcome(out: Any) -> tuple[str | None, str | None]:
    """(result, error) of a tool's output: a ToolMessage (``status="error"`` is an error), a
    LangGraph ``Command`` carrying ToolMessages, or any value."""
    update = getattr(out, "update", None) if type(out).__name__ == "Command" else None
    if isinstance(update, Mapping):
        replies = [m for m in update.get("messages", []) if getattr(m, "type", None) == "tool"]
        if not replies:
            return clip(f"Command(goto={getattr(out, 'goto', None)!r})"), None
        out = replies[0]
    if getattr(out, "type", None) == "tool":
        text = clip(content_text(getattr(out, "content", "")))
        return (None, text) if getattr(out, "status", None) == "error" else (text, None)
    if isinstance(out, str):
        return clip(out), None
    return clip(json.dumps(out, default=str) if isinstance(out, dict | list) else str(out)), None


def reasoning_text(message: Any) -> str | None:
    """Reasoning the server returned, when the chat model kept it (kwargs or reasoning blocks)."""
    extra = getattr(message, "additional_kwargs", None) or {}
    for key in ("reasoning_content", "reasoning"):
        value = extra.get(key)
        if isinstance(value, str) and value.strip():
            return clip(value)
    content = getattr(message, "content", None)
    if isinstance(content, list):
        parts = [
            str(block.get("reasoning") or block.get("thinking") or "")
            for block in content
            if isinstance(block, Mapping) and block.get("type") in ("reasoning", "thinking")
        ]
        text = "\n".join(p for p in parts if p)
        if text:
            return clip(text)
    return None


def task_text(value: Any) -> str:
    """The task of a run's input: a string, the last user message, or a dict's question-like field."""
    if isinstance(value, str):
        return value.strip()
    if hasattr(value, "to_messages"):  # a PromptValue
        return last_human_text(value.to_messages())
    if isinstance(value, Mapping):
        for key in ("messages", "input", "question", "query", "task", "prompt"):
            if key in value:
                return task_text(value[key])
        return "\n".join(v.strip() for v in value.values() if isinstance(v, str)).strip()
    if isinstance(value, Sequence):
        items = [
            {"role": item[0], "content": item[1]} if isinstance(item, tuple) and len(item) == 2 else item
            for item in value
        ]
        return last_human_text(items)
    return content_text(getattr(value, "content", "")).strip()


def with_block(system: SystemMessage | None, block: str) -> SystemMessage:
    """``system`` with ``block`` appended as plain text (a new system message when there is none).

    A string prompt gets ``"\n\n" + block``, so the prompt's bytes stay a prefix of what is sent.
    """
    if system is None:
        return SystemMessage(block)
    content = system.content
    if isinstance(content, str):
        return system.model_copy(update={"content": f"{content}\n\n{block}" if content else block})
    return system.model_copy(update={"content": [*content, {"type": "text", "text": block}]})


class MessageLog:
    """Which messages a trace already holds, so each is recorded once however long the history gets.

    Messages are known by id; those without one (prompt templates) by role and content.
    ``full=True`` records every message of every call instead.
    """

    #: Most messages recorded for one call; older ones become one "omitted" marker.
    max_messages = 100

    def __init__(self, *, full: bool = False) -> None:
        self.full = full
        self._seen: set[str] = set()

    @staticmethod
    def _key(message: Any) -> str:
        ident = getattr(message, "id", None)
        return ident if ident else f"{getattr(message, 'type', '?')}:{hash(repr(getattr(message, 'content', '')))}"

    def saw(self, message: Any) -> None:
        self._seen.add(self._key(message))

    def new(self, messages: Sequence[Any]) -> list[dict[str, Any]]:
        """Records of the messages not seen before (all of them with ``full``); marks them seen.

        System messages are always kept; of the rest, only the last ``max_messages``.
        """
        system: list[Any] = []
        fresh: list[Any] = []
        for message in messages:
            key = self._key(message)
            if self.full or key not in self._seen:
                (system if getattr(message, "type", None) == "system" else fresh).append(message)
            self._seen.add(key)
        records = [message_record(m) for m in system]
        if len(fresh) > self.max_messages:  # a long thread: its tail is what this task is about
            records.append({"role": "omitted", "content": f"[{len(fresh) - self.max_messages} earlier messages]"})
            fresh = fresh[-self.max_messages :]
        records.extend(message_record(m) for m in fresh)
        return records


def _lookup(source: Any, key: str) -> Any:
    if source is None:
        return None
    if isinstance(source, Mapping):
        return source.get(key)
    return getattr(source, key, None)


def resolve_namespace(base: str, *, context: Any = None, metadata: Mapping[str, Any] | None = None) -> str:
    """The namespace of one task.

    ``namespace`` (in the runtime context, else in the config metadata) is used as given;
    ``user_id`` is appended to ``base`` (``acme/bot`` + ``alice`` -> ``acme/bot/alice``), so one
    deployment serves many users without sharing their behaviors; otherwise ``base``.
    """
    for source in (context, metadata):
        explicit = _lookup(source, "namespace")
        if explicit:
            return validate_namespace(str(explicit))
    for source in (context, metadata):
        user = _lookup(source, "user_id")
        if user is not None and str(user) != "":
            try:
                return validate_namespace(f"{base}/{user}")
            except InvalidInputError as exc:
                raise InvalidInputError(
                    f"user_id {user!r} cannot be a namespace segment: use letters, digits and _.:@+- only"
                ) from exc
    return base


@dataclass(frozen=True, slots=True)
class Fetched:
    """The block for one task and how getting it went (``status``: ok, empty, timeout, error)."""

    block: RenderedBlock
    status: str
    seconds: float


_EMPTY = RenderedBlock("")


class BlockFetcher:
    """Retrieve and render a task's behavior block within ``timeout_s`` (``None``: no limit).

    A retrieval that raises or runs past the budget gives an empty block and one WARNING log line;
    the agent goes on exactly as it would without behavior memory.
    """

    def __init__(
        self,
        memory: BehaviorMemory,
        *,
        k: int | None = None,
        topic: str | None = None,
        token_budget: int | None = None,
        timeout_s: float | None = 2.0,
    ) -> None:
        self.memory = memory
        self.k, self.topic, self.token_budget, self.timeout_s = k, topic, token_budget, timeout_s
        self._pool: ThreadPoolExecutor | None = None
        if timeout_s is not None:
            self._warm_up()

    @staticmethod
    def _warm_up() -> None:
        """Load the tokenizer now (a second or more, cold) so the first task's budget is not spent on it."""
        try:
            count_tokens("behavior")
        except Exception:  # the first render will report it
            log.debug("could not load the tokenizer ahead of the first task", exc_info=True)

    def _render(self, query: str, namespace: str) -> RenderedBlock:
        hits = self.memory.retrieve(query, k=self.k, namespace=namespace, topic=self.topic)
        return self.memory.render(hits, token_budget=self.token_budget)

    def fetch(self, query: str, namespace: str) -> Fetched:
        """Sync: retrieval runs in a small pool so that a hung store cannot hold the agent."""
        started = time.perf_counter()
        query = query[:MAX_QUERY_CHARS]
        if not query.strip():
            return Fetched(_EMPTY, "empty", 0.0)
        try:
            if self.timeout_s is None:
                block = self._render(query, namespace)
            else:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="bmem-retrieve")
                block = self._pool.submit(self._render, query, namespace).result(timeout=self.timeout_s)
        except FutureTimeout:
            return self._late(namespace, started)
        except Exception:
            return self._failed(namespace, started)
        return Fetched(block, "ok" if block else "empty", time.perf_counter() - started)

    async def afetch(self, query: str, namespace: str) -> Fetched:
        """Async twin of ``fetch``; a late retrieval is cancelled at the budget."""
        started = time.perf_counter()
        query = query[:MAX_QUERY_CHARS]
        if not query.strip():
            return Fetched(_EMPTY, "empty", 0.0)
        try:
            hits = await asyncio.wait_for(
                self.memory.aretrieve(query, k=self.k, namespace=namespace, topic=self.topic), self.timeout_s
            )
            block = self.memory.render(hits, token_budget=self.token_budget)
        except TimeoutError:
            return self._late(namespace, started)
        except Exception:
            return self._failed(namespace, started)
        return Fetched(block, "ok" if block else "empty", time.perf_counter() - started)

    def _late(self, namespace: str, started: float) -> Fetched:
        log.warning(
            "behavior retrieval in %r took longer than %.3f s: no behaviors for this task",
            namespace,
            self.timeout_s,
        )
        return Fetched(_EMPTY, "timeout", time.perf_counter() - started)

    def _failed(self, namespace: str, started: float) -> Fetched:
        log.warning("behavior retrieval in %r failed: no behaviors for this task", namespace, exc_info=True)
        return Fetched(_EMPTY, "error", time.perf_counter() - started)
