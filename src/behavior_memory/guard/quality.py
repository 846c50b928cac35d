"""The rules against junk: placeholders, self-reference, repetition, length.

What a small model mints when it copies its prompt (``behavior_example``, ``behavior_name``,
"{{<insert description here}}}") or loops ("This is a behavior_name, which is a behavior_name...").
"""

from __future__ import annotations

import re
from collections import Counter
from itertools import pairwise

from .subject import Check, Gated, Subject, first_match

__all__ = ["length_rule", "placeholder", "repetition", "self_reference"]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Every word of a name like behavior_example_with_description or behavior_new_rule_1: a template's.
_PLACEHOLDER_WORDS = _words(
    "example examples sample name names placeholder dummy template untitled unnamed foo bar baz qux xxx tbd "
    "todo fixme test new your my behavior behaviors something description with instruction instructions here "
    "insert one two three x y z n generic default a an the of and some unknown tmp temp custom this that is "
    "thing stuff skill rule note"
)
_PLACEHOLDER_NAME = re.compile(r"^behavior_(?:example|name|behavior|your|placeholder|xxx|foo|dummy|template)(?:_|$)")
_PLACEHOLDER_TEXT = (
    Gated(("insert",), r"\binsert\b.{0,40}?\bhere\b"),
    Gated(
        ("{", "}"),
        r"\{\{|\}\}",
        r"\{(?:your[ _])?(?:description|instruction|name|behavior[ _]name|text|value|placeholder|example)\}",
    ),
    Gated(
        ("<",),
        r"<(?:your[ _-]?|insert[ _-]?|the[ _])?(?:description|instruction|name|behavior[ _]?name|text|value"
        r"|placeholder|example|content|rule|here)>",
    ),
    Gated(("[",), r"\[(?:insert|your|placeholder|description|todo)\b[^\]]{0,40}\]"),
    Gated(("lorem",), r"\blorem ipsum\b"),
    Gated(("todo", "tbd", "fixme"), r"\b(?:todo|tbd|fixme)\b(?!\s*(?:list|lists|items?)\b)"),
    Gated(("your",), r"\byour (?:description|instruction|behavior|text|rule|content)\b"),
    Gated(("here",), r"\b(?:description|instruction) (?:goes )?here\b"),
    Gated(("example",), r"\bexample (?:behavior|instruction|description)\b"),
    Gated(("behavior_",), r"\bbehavior_(?:example|name)\b"),
)
_EMPTY = re.compile(r"^\W*(?:n/?a|none|null|nil|undefined|instruction|description|\.\.\.|…)?\W*$")


def placeholder(subject: Subject) -> str | None:
    """Template text a small model copies: ``behavior_example``, ``behavior_name``, "insert ... here", ``{{...}}``."""
    name = subject.name_words.folded.replace(" ", "_")
    words = name.split("_")
    if _PLACEHOLDER_NAME.match(subject.name) or all(w in _PLACEHOLDER_WORDS or w.isdigit() for w in words):
        return subject.name
    text = subject.instruction.folded
    if len(text) < 16 and _EMPTY.match(text):
        return text or "(empty)"
    return first_match(_PLACEHOLDER_TEXT, subject.instruction.searchable)


_STOPWORDS = _words(
    "a an the of to in on at for by with from as is are be it its this that these those and or but if then "
    "when while so than which who what how use using it's into each any all one your you"
)
_WORD = re.compile(r"\w+")
_SELF_TEXT = Gated(
    ("this ", "behavior_"),
    r"\bthis is an? (?:behavior|instruction|rule|skill|note)\b",
    r"\bthis (?:behavior|instruction) (?:is|says|means|describes)\b",
    r"\b(?:is|as) an? behavior_\w+",
    r"\bbehavior_\w+,? (?:which|that) is\b",
)


def self_reference(subject: Subject) -> str | None:
    """A behavior about itself: its own name inside it, "this is a behavior", or nothing but its name's words."""
    text = subject.instruction.folded
    name = subject.name.casefold()
    if name in text:
        return name
    if found := _SELF_TEXT.search(text):
        return found
    name_words = [w for w in subject.name_words.folded.split() if w]
    phrase = " ".join(name_words)
    if len(name_words) >= 2 and text.replace("_", " ").count(phrase) >= 2:
        return phrase
    words = subject.instruction.words
    fresh = [w for w in words if w not in _STOPWORDS and w not in name_words]
    if words and not fresh and any(w in name_words for w in words):  # says nothing beyond its name
        return text
    return None


_LONG_TOKEN = re.compile(r"\S{10,}")
_CHAR_RUN = re.compile(r"([^\s\d])\1{9,}")
_PIECE_RUN = re.compile(r"([^\s\d]{2,8}?)\1{5,}")


def _word_run(words: list[str]) -> str | None:
    run = 1
    for before, word in pairwise(words):
        run = run + 1 if word == before else 1
        if run >= 4:
            return f"{word} " * 3 + word
    return None


def _looping_phrase(words: list[str]) -> str | None:
    """A 3-word phrase three times, or a 5-word phrase twice (its first three words then repeat too)."""
    threes = Counter(zip(words, words[1:], words[2:], strict=False))
    gram, count = threes.most_common(1)[0]
    if count >= 3:
        return " ".join(gram)
    if count == 2:
        fives = Counter(zip(words, words[1:], words[2:], words[3:], words[4:], strict=False))
        if fives and (top := fives.most_common(1)[0])[1] >= 2:
            return " ".join(top[0])
    return None


def repetition(subject: Subject) -> str | None:
    """Degenerate text: one word over 30% of the words, a phrase looping, a character or word run."""
    for token in _LONG_TOKEN.findall(subject.instruction.folded):  # a run of 10 lies inside one token
        if match := _CHAR_RUN.search(token) or (len(token) >= 12 and _PIECE_RUN.search(token)):
            return match.group()
    words = subject.instruction.words
    if len(words) < 4:
        return None
    if found := _word_run(words):
        return found
    counted = Counter(w for w in words if len(w) > 1 and not w.isdigit() and w not in _STOPWORDS)
    if counted:
        word, count = counted.most_common(1)[0]
        if len(words) >= 6 and count / len(words) > 0.3:
            return f"{word!r} is {count} of {len(words)} words"
    if len(words) - len(set(words)) >= 5:  # a 3-word phrase three times repeats 6 words, a 5-word one twice 5
        return _looping_phrase(words)
    return None


def length_rule(*, min_words: int, max_words: int, max_chars: int, max_name_chars: int) -> Check:
    """Instructions too short or too long to be a behavior, names too long."""

    def length(subject: Subject) -> str | None:
        text = subject.instruction.clean
        words = len(_WORD.findall(text))
        if words < min_words:
            return f"instruction of {words} words (at least {min_words})"
        if words > max_words:
            return f"instruction of {words} words (at most {max_words})"
        if len(text) > max_chars:
            return f"instruction of {len(text)} characters (at most {max_chars})"
        if len(subject.name) > max_name_chars:
            return f"name of {len(subject.name)} characters (at most {max_name_chars})"
        return None

    return length
