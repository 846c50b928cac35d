"""How recorded text looks, the same for every integration: one clip, one tool-call line, one error text.

Reflection reads traces from LangChain, LlamaIndex and hand-written code side by side; if each
wrote tool calls or cut long texts its own way, the model would see several conventions.

Every recorded text is also made encodable: a lone surrogate (``"\\udcff"``, what
``os.fsdecode`` or ``errors="surrogateescape"`` leave for a stray byte) cannot be written as
UTF-8, so SQLite would refuse the whole trace. It is stored as U+FFFD instead; text is never dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

__all__ = [
    "MAX_ERROR_CHARS",
    "MAX_RECORDED_CHARS",
    "clip",
    "encodable",
    "encodable_data",
    "error_text",
    "json_safe",
    "tool_call_line",
]

#: Longest text kept per recorded message, output or tool result; the rest is cut and marked.
MAX_RECORDED_CHARS = 20_000
#: Longest error text kept per step.
MAX_ERROR_CHARS = 2_000

_SURROGATE = re.compile("[\ud800-\udfff]")


def encodable(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD, so it can be written as UTF-8.

    A surrogate pair left in a ``str`` (a JSON decoder's or a Windows API's) becomes the one
    character it stands for. Text without surrogates is returned as it is (the same object).
    """
    if _SURROGATE.search(text) is None:
        return text
    # UTF-16 is where surrogates mean something: pairs join there, and lone ones decode as U+FFFD.
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def encodable_data(value: Any) -> Any:
    """``value`` with every string in it (keys too, models included) made ``encodable``.

    Containers are rebuilt only where something changed, and pydantic models are fixed in place,
    so the common case (nothing to fix) costs one scan and no copies.
    """
    if isinstance(value, str):
        return encodable(value)
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            old = getattr(value, name)
            new = encodable_data(old)
            if new is not old:
                setattr(value, name, new)
        return value
    if isinstance(value, Mapping):
        pairs = [(encodable_data(k), encodable_data(v)) for k, v in value.items()]
        if all(nk is k and nv is v for (nk, nv), (k, v) in zip(pairs, value.items(), strict=True)):
            return value
        return dict(pairs)
    if isinstance(value, list | tuple):
        items = [encodable_data(v) for v in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return items if isinstance(value, list) else tuple(items)
    return value


def clip(text: str, limit: int = MAX_RECORDED_CHARS) -> str:
    """``text`` made ``encodable`` and cut to ``limit`` characters, with a marker saying how much was cut."""
    text = encodable(text)
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
            return encodable(f"tool_call: {name}({args})")
    return encodable(f"tool_call: {name}({json.dumps(args, sort_keys=True, default=str)})")


def json_safe(value: Any, *, limit: int = MAX_ERROR_CHARS) -> Any:
    """``value`` as plain JSON data: containers kept, strings ``encodable``, anything else as its (clipped) ``str``."""
    if isinstance(value, str):
        return encodable(value)
    if value is None or isinstance(value, int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {encodable(str(k)): json_safe(v, limit=limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v, limit=limit) for v in value]
    return clip(str(value), limit)
