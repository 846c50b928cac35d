"""Word splitting shared by the hashing embedder and the BM25 retriever.

Lower-case runs of letters and digits (so ``behavior_angle_sum`` gives ``angle``, ``sum``), minus a
small list of English function words that carry no meaning for matching procedures.
"""

from __future__ import annotations

import re

__all__ = ["STOP_WORDS", "split_words"]

_WORD = re.compile(r"[^\W_]+")

#: Words dropped before matching: articles, pronouns, auxiliaries, common prepositions.
STOP_WORDS = frozenset(
    (  # noqa: SIM905 -- a word list reads better as text
        "a an and are as at be been being but by can could did do does for from had has have how i if in "
        "into is it its me my of on or our so that the their then there these this those to was we were "
        "what when where which while who why will with would you your"
    ).split()
)


def split_words(text: str) -> list[str]:
    """Lower-case words of ``text`` without stop words, in order.

    >>> split_words("Check the residues BEFORE using behavior_angle_sum!")
    ['check', 'residues', 'before', 'using', 'behavior', 'angle', 'sum']
    """
    return [w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS]
