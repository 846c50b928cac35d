"""Read LlamaIndex chat objects into the plain data a trace keeps.

Text, reasoning, tool calls and token usage are spread over ``ChatMessage.blocks``,
``ChatResponse.raw`` and ``ChatResponse.additional_kwargs`` depending on the LLM class and on
streaming; these helpers look in each place so the rest of the adapter never has to. How the
result is written (clipping, the ``tool_call: name({...})`` line, which reasoning field wins) is
the core's rule (``recording.text``, ``llm.reasoning``), the same as for every integration.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)

from ...llm.reasoning import reasoning_field
from ...recording.text import clip, json_safe, tool_call_line
from ...types import TokenUsage

__all__ = [
    "last_user_text",
    "message_dict",
    "message_text",
    "response_output",
    "response_reasoning",
    "response_usage",
    "user_input_text",
]


def message_text(message: Any) -> str:
    """The text of a message: its text blocks joined (images, audio and documents are skipped)."""
    if message is None:
        return ""
    if isinstance(message, str):
        return message
    blocks = getattr(message, "blocks", None)
    if blocks is None:
        content = getattr(message, "content", None)
        return content if isinstance(content, str) else ""
    return "\n".join(block.text for block in blocks if isinstance(block, TextBlock) and block.text)


def _role(message: Any) -> str:
    role = getattr(message, "role", "")
    return str(getattr(role, "value", role))


def last_user_text(messages: Sequence[Any] | None) -> str:
    """The text of the last user message (empty when there is none or it holds no text)."""
    for message in reversed(list(messages or ())):
        if _role(message) == "user":
            return message_text(message).strip()
    return ""


def user_input_text(user_msg: Any = None, chat_history: Iterable[Any] | None = None) -> str:
    """What a run is asked: the user message, else the last user message of the history.

    A message with blocks but no text (an image alone) reads as ``[image]`` and the like, so the
    trace still says what came in.
    """
    if user_msg is None and chat_history:
        users = [m for m in chat_history if _role(m) == "user"]
        user_msg = users[-1] if users else None
    text = message_text(user_msg).strip()
    if text or user_msg is None or isinstance(user_msg, str):
        return text
    kinds = [str(getattr(b, "block_type", "block")) for b in getattr(user_msg, "blocks", [])]
    return " ".join(f"[{kind}]" for kind in kinds)


def _arguments(args: Any) -> Any:
    """Tool arguments as data: a JSON string (OpenAI's wire form) is parsed, anything else kept safe."""
    if isinstance(args, str):
        try:
            return json.loads(args) if args.strip() else {}
        except ValueError:
            return args
    return json_safe(args)


def _tool_calls(message: ChatMessage) -> list[dict[str, Any]]:
    """The message's tool calls as ``{"name", "args", "id"}`` (the keys LangChain's records use)."""
    calls: list[dict[str, Any]] = []
    for block in message.blocks:
        if isinstance(block, ToolCallBlock):
            calls.append({"name": block.tool_name, "args": _arguments(block.tool_kwargs), "id": block.tool_call_id})
    if calls:
        return calls
    for call in message.additional_kwargs.get("tool_calls") or []:  # OpenAI objects or dicts
        function = _get(call, "function")
        if function is not None:
            calls.append(
                {
                    "name": _get(function, "name"),
                    "args": _arguments(_get(function, "arguments")),
                    "id": _get(call, "id"),
                }
            )
    return calls


def _get(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def message_dict(message: Any) -> dict[str, Any]:
    """A JSON-safe ``{"role", "content", ...}`` dict; non-text blocks become ``[image]`` markers."""
    if not isinstance(message, ChatMessage):
        return {"role": _role(message) or "unknown", "content": clip(message_text(message))}
    parts: list[str] = []
    for block in message.blocks:
        if isinstance(block, TextBlock):
            parts.append(block.text)
        elif not isinstance(block, ToolCallBlock | ThinkingBlock):
            parts.append(f"[{getattr(block, 'block_type', 'block')}]")
    data: dict[str, Any] = {"role": _role(message), "content": clip("\n".join(parts))}
    calls = _tool_calls(message)
    if calls:
        data["tool_calls"] = calls
    call_id = message.additional_kwargs.get("tool_call_id")
    if call_id:
        data["tool_call_id"] = str(call_id)
    return data


def response_output(response: ChatResponse | None) -> str:
    """The text a model call returned; a pure tool call reads as one ``tool_call:`` line per call."""
    if response is None:
        return ""
    text = message_text(response.message)
    if text.strip():
        return text
    return "\n".join(tool_call_line(call["name"], call["args"]) for call in _tool_calls(response.message))


def response_reasoning(response: ChatResponse | None) -> str | None:
    """Reasoning text: ``ThinkingBlock``s, else the core's reasoning fields of the message or response."""
    if response is None:
        return None
    thoughts = [b.content for b in response.message.blocks if isinstance(b, ThinkingBlock) and b.content]
    if thoughts:
        return "\n".join(thoughts)
    return reasoning_field(response.message.additional_kwargs, response.additional_kwargs)


def response_usage(response: ChatResponse | None) -> TokenUsage | None:
    """Token usage: ``raw.usage`` (keeps cached and reasoning counts), else the counts LlamaIndex copied."""
    if response is None:
        return None
    raw = response.raw
    usage = raw.get("usage") if isinstance(raw, dict) else getattr(raw, "usage", None)
    if usage:
        try:
            return TokenUsage.from_any(usage)
        except (TypeError, ValueError):
            pass
    extra = response.additional_kwargs
    if any(key in extra for key in ("prompt_tokens", "completion_tokens", "total_tokens")):
        return TokenUsage.from_any({k: extra.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")})
    return None


def response_model(response: ChatResponse | None) -> str | None:
    """The model name the server reported, when it did."""
    raw = getattr(response, "raw", None)
    model = raw.get("model") if isinstance(raw, dict) else getattr(raw, "model", None)
    return model if isinstance(model, str) else None
