"""Split a model's reasoning from its answer.

Servers report thoughts in three ways, and we read them in this order:

1. ``message.reasoning``: vLLM 0.33 with ``--reasoning-parser`` (an extra field of the openai model);
2. ``message.reasoning_content``: older vLLM releases and some other servers;
3. ``<think>...</think>`` blocks left in the content when no parser runs. An unclosed
   ``<think>`` means the output was cut off while thinking; a ``</think>`` with no opening tag
   means the chat template opened the block in the prompt (Qwen3, DeepSeek-R1).

>>> split_think_tags("<think>2+2 is 4</think>\\n\\nThe answer is 4.")
('The answer is 4.', '2+2 is 4')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REASONING_FIELDS", "extract_reasoning", "message_field", "reasoning_field", "split_think_tags"]

#: Where servers and frameworks put a model's thoughts, in the order we trust them.
REASONING_FIELDS = ("reasoning", "reasoning_content", "thinking")

_OPEN = "<think>"
_CLOSE = "</think>"
_BLOCK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


def message_field(message: Any, name: str) -> Any:
    """Return field ``name`` of a chat message (dict or openai model, extra fields included), or None."""
    if message is None:
        return None
    if isinstance(message, Mapping):
        return message.get(name)
    value = getattr(message, name, None)
    if value is None:
        # pydantic keeps unknown fields in model_extra; getattr finds them too, but not on every version.
        extra = getattr(message, "model_extra", None)
        if isinstance(extra, Mapping):
            value = extra.get(name)
    return value


def reasoning_field(*sources: Any) -> str | None:
    """The first non-empty reasoning text among the ``REASONING_FIELDS`` of ``sources`` (dicts or messages).

    The one place every integration reads reasoning from: our client, LangChain's
    ``additional_kwargs`` and LlamaIndex's ``additional_kwargs`` all go through it.
    """
    for name in REASONING_FIELDS:
        for source in sources:
            value = message_field(source, name)
            if isinstance(value, str) and value.strip():
                return value
    return None


def split_think_tags(content: str | None) -> tuple[str, str | None]:
    """Return ``(answer, reasoning)`` from text that may hold ``<think>`` blocks.

    Several blocks are joined with a blank line. The answer is stripped of surrounding whitespace
    when blocks were removed; text without tags comes back unchanged with ``None``.
    """
    if not content:
        return content or "", None
    thoughts: list[str] = []
    text = content
    head, sep, tail = text.partition(_CLOSE)
    if sep and _OPEN not in head:
        # The chat template opened the block in the prompt, so the output starts inside it.
        thoughts.append(head.strip())
        text = tail
    text = _BLOCK.sub(lambda m: _keep(thoughts, m.group(1)), text)
    text, sep, tail = text.partition(_OPEN)
    if sep:  # cut off while thinking: the closing tag never came
        thoughts.append(tail.strip())
    if not thoughts:
        return content, None
    reasoning = "\n\n".join(t for t in thoughts if t)
    return text.strip(), reasoning or None


def _keep(thoughts: list[str], block: str) -> str:
    thoughts.append(block.strip())
    return ""


def extract_reasoning(message: Any) -> tuple[str, str | None]:
    """Return ``(content, reasoning)`` of a chat message, preferring the server's own fields.

    ``message`` is an openai ``ChatCompletionMessage`` or a dict of the same shape. When the server
    filled ``reasoning`` or ``reasoning_content`` the content is returned as is; otherwise
    ``<think>`` blocks are taken out of it.

    >>> extract_reasoning({"content": "4", "reasoning": "2+2"})
    ('4', '2+2')
    """
    content = message_field(message, "content")
    text = content if isinstance(content, str) else ""
    reasoning = reasoning_field(message)
    if reasoning is not None:
        return text, reasoning
    return split_think_tags(text)
