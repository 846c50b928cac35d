"""What the guard's rules read (``Subject``) and how a pattern is tried cheaply (``Gated``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .normalize import TextViews, views

__all__ = ["Check", "Gated", "NamedRule", "Subject", "first_match"]


@dataclass(frozen=True)
class Subject:
    """A behavior as the rules see it: its name, the name's words, and the instruction's views."""

    name: str
    name_words: TextViews
    instruction: TextViews
    topic: str | None = None

    @classmethod
    def of(cls, name: str, instruction: str, topic: str | None = None) -> Subject:
        words = name.removeprefix("behavior_").replace("_", " ")
        return cls(name, views(words), views(instruction), topic)

    @property
    def texts(self) -> tuple[str, ...]:
        """What content patterns search: the name's words, the folded instruction, its decoded form."""
        return (self.name_words.folded, *self.instruction.searchable)


Check = Callable[[Subject], str | None]


@dataclass(frozen=True)
class NamedRule:
    """A rule: ``check(subject)`` returns the evidence (the offending text) or None."""

    name: str
    check: Check


class Gated:
    """A pattern tried only when one of its trigger substrings is in the text (a substring test is
    ~50 ns; a regex search over a few hundred characters is a microsecond or more)."""

    __slots__ = ("pattern", "triggers")

    def __init__(self, triggers: Sequence[str], *parts: str) -> None:
        self.triggers = tuple(triggers)
        self.pattern = re.compile("|".join(f"(?:{p})" for p in parts))

    def search(self, text: str) -> str | None:
        if any(t in text for t in self.triggers) and (match := self.pattern.search(text)):
            return match.group()
        return None


def first_match(patterns: Sequence[Gated], texts: Iterable[str]) -> str | None:
    """The first text any of ``patterns`` matches in ``texts`` (searched in order), or None."""
    for text in texts:
        for gated in patterns:
            if (found := gated.search(text)) is not None:
                return found
    return None
