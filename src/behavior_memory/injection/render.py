"""Render the paper's behavior-conditioned block and parse behavior citations from outputs.

The block goes into the system message, so it must be byte-identical for the same behaviors:
no timestamps, counters or ids in it, one ``name: instruction`` line per behavior in the given
order. vLLM's prefix cache then reuses it across every model call of a task, and across tasks that
get the same behaviors.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from ..prompts import load_prompt
from ..types import Behavior
from .tokens import count_tokens

__all__ = ["CITATION_PATTERN", "RenderedBlock", "append_block", "parse_citations", "render_block"]

CITATION_PATTERN = re.compile(r"\bbehavior_[a-z0-9_]{2,80}\b")


class RenderedBlock(str):
    """The rendered block (a ``str``) plus what went into it.

    ``names`` are the behaviors included, ``dropped`` those left out by the token budget, and
    ``tokens`` the block's size as counted by tiktoken.
    """

    names: tuple[str, ...]
    dropped: tuple[str, ...]
    tokens: int

    def __new__(
        cls, text: str, names: Sequence[str] = (), dropped: Sequence[str] = (), tokens: int = 0
    ) -> RenderedBlock:
        block = super().__new__(cls, text)
        block.names, block.dropped, block.tokens = tuple(names), tuple(dropped), tokens
        return block

    def __reduce__(self) -> tuple[Any, ...]:  # keep pickling (multiprocessing, caches) working
        return (RenderedBlock, (str(self), self.names, self.dropped, self.tokens))


def _as_behavior(item: Any) -> Behavior:
    behavior = getattr(item, "behavior", item)  # ScoredBehavior or Behavior
    if not isinstance(behavior, Behavior):
        raise TypeError(f"expected Behavior or ScoredBehavior, got {type(item).__name__}")
    return behavior


def render_block(
    hits: Iterable[Any],
    *,
    token_budget: int | None = None,
    template: str | None = None,
) -> RenderedBlock:
    """Render behaviors (``Behavior`` or ``ScoredBehavior``) into the behavior-conditioned block.

    Behaviors are kept in the order given (retrievers return a deterministic order) and added
    whole while the block stays within ``token_budget``; a behavior is never cut in half. With no
    behaviors the block is empty, so the caller's prompt is left exactly as it was.
    """
    behaviors: list[Behavior] = []
    seen: set[str] = set()
    for item in hits:
        behavior = _as_behavior(item)
        if behavior.name not in seen:
            seen.add(behavior.name)
            behaviors.append(behavior)
    if not behaviors:
        return RenderedBlock("")
    frame = load_prompt("bci_block", template, required=("behaviors",))
    used = count_tokens(frame.replace("{behaviors}", ""))
    kept: list[Behavior] = []
    dropped: list[str] = []
    for behavior in behaviors:
        cost = count_tokens(behavior.line + "\n")
        if token_budget is not None and used + cost > token_budget:
            dropped.append(behavior.name)
            continue
        kept.append(behavior)
        used += cost
    if not kept:
        return RenderedBlock("", dropped=dropped)
    text = frame.replace("{behaviors}", "\n".join(b.line for b in kept)).strip()
    return RenderedBlock(text, [b.name for b in kept], dropped, count_tokens(text))


def append_block(prompt: str, block: str) -> str:
    """``prompt`` with the behavior block after it, so the prompt's bytes stay a prefix of what is sent.

    An empty block leaves the prompt exactly as it was; an empty prompt becomes the block alone.
    """
    if not block:
        return prompt
    return f"{prompt}\n\n{block}" if prompt else str(block)


def parse_citations(text: str | None, known: Iterable[str] | None = None) -> list[str]:
    """Behavior names cited in ``text``, in order of first mention, without repeats.

    With ``known`` given, only those names count: a model inventing ``behavior_foo`` cites nothing.
    """
    if not text:
        return []
    allowed = set(known) if known is not None else None
    found: list[str] = []
    for match in CITATION_PATTERN.finditer(text):
        name = match.group(0).rstrip("_")
        if name not in found and (allowed is None or name in allowed):
            found.append(name)
    return found
