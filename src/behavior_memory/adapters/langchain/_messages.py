"""Reading LangChain messages for behavior memory: text, reasoning, tool calls, multimodal parts.

Only translation lives here: LangChain objects in, the core's shapes out. Messages become JSON-safe
records for a ``Trace`` (images and files kept as a type marker only); the text rules themselves
(the clip, the ``tool_call:`` line, which fields hold reasoning) are the core's, in
``recording.text`` and ``llm.reasoning``. It also finds a task's text in any Runnable input and
appends the behavior block to a system message as plain text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import SystemMessage

from ...injection.render import append_block
from ...llm.reasoning import reasoning_field
from ...recording.text import clip, tool_call_line

__all__ = [
    "MessageLog",
    "content_text",
    "last_human_text",
    "message_record",
    "output_text",
    "reasoning_text",
    "task_text",
    "tool_outcome",
    "with_block",
]


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
    """What a model call produced: its text, then the core's ``tool_call_line`` per tool call.

    Not clipped: the recorder clips what it stores (clipping twice would cut the first marker).
    """
    lines = [content_text(getattr(message, "content", "")).strip()]
    lines.extend(tool_call_line(call["name"], call["args"]) for call in tool_calls_of(message))
    return "\n".join(line for line in lines if line)


def tool_outcome(out: Any) -> tuple[str | None, str | None]:
    """(result, error) of a tool's output: a ToolMessage (``status="error"`` is an error), a
    LangGraph ``Command`` carrying ToolMessages, or any value. The recorder clips both."""
    update = getattr(out, "update", None) if type(out).__name__ == "Command" else None
    if isinstance(update, Mapping):
        replies = [m for m in update.get("messages", []) if getattr(m, "type", None) == "tool"]
        if not replies:
            return f"Command(goto={getattr(out, 'goto', None)!r})", None
        out = replies[0]
    if getattr(out, "type", None) == "tool":
        text = content_text(getattr(out, "content", ""))
        return (None, text) if getattr(out, "status", None) == "error" else (text, None)
    if isinstance(out, str):
        return out, None
    return json.dumps(out, default=str) if isinstance(out, dict | list) else str(out), None


def reasoning_text(message: Any) -> str | None:
    """Reasoning the server returned, when the chat model kept it.

    The core's ``reasoning_field`` reads ``additional_kwargs``; LangChain's own content blocks of
    type ``reasoning`` or ``thinking`` come next.
    """
    found = reasoning_field(getattr(message, "additional_kwargs", None) or {})
    if found is not None:
        return found
    content = getattr(message, "content", None)
    if not isinstance(content, list):
        return None
    parts = [
        str(block.get("reasoning") or block.get("thinking") or "")
        for block in content
        if isinstance(block, Mapping) and block.get("type") in ("reasoning", "thinking")
    ]
    return "\n".join(p for p in parts if p) or None


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
        return system.model_copy(update={"content": append_block(content, block)})
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
