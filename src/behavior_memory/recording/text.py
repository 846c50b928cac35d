"""How recorded text looks, the same for every integration: one clip, one tool-call line, one error text.

Reflection reads traces from LangChain, LlamaIndex and hand-written code side by side; if each
wrote tool calls or cut long texts its own way, the model would see several conventions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_ERROR_CHARS", "MAX_RECORDED_CHARS", "clip", "error_text", "json_safe", "tool_call_line"]

#: Longest text kept per recorded message, output or tool result; the rest is cut and marked.
MAX_RECORDED_CHARS = 20_000
#: Longest error text kept per step.
MAX_ERROR_CHARS = 2_000


def clip(text: str, limit: int = MAX_RECORDED_CHARS) -> str:
    """``text`` cut to ``limit`` characters, with a marker saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[... {len(text) - limit} characters cut ...]"


def error_text(error: BaseException | str | None, limit: int = MAX_ERROR_CHARS) -> str | None:
    """``"TypeName: message"`` for an exception (the first line for a text), clipped; None for None."""
    if error is None:
        return None
    if isinstance(error, BaseException):
        text = f"{type(error).__name__}: {error}"
    else:
        lines = error.strip().splitlines()
        text = lines[0] if lines else ""
    return clip(text, limit) if text else None


def tool_call_line(name: Any, args: Any) -> str:
    """One tool call as the model asked for it: ``tool_call: name({"arg": 1})``.

    Arguments given as a JSON string are re-serialised so every trace shows them the same way.
    """
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            return f"tool_call: {name}({args})"
    return f"tool_call: {name}({json.dumps(args, sort_keys=True, default=str)})"


def json_safe(value: Any, *, limit: int = MAX_ERROR_CHARS) -> Any:
    """``value`` as plain JSON data: containers kept, anything else as its (clipped) ``str``."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, limit=limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v, limit=limit) for v in value]
    return clip(str(value), limit)
