"""Answer checking for the benchmark sets (see shared/data/README.md for the rules).

GSM8K: the model's final number (after ``Answer:`` or ``####``, else the last ``\\boxed{}``, else the
last number), commas and ``$`` removed, compared numerically with the gold integer.
"""

from __future__ import annotations

import re

__all__ = ["check_gsm8k", "extract_final_number", "gsm8k_matches"]

_NUMBER = r"-?\$?\d[\d,]*(?:\.\d+)?"
_MARKED = re.compile(r"(?:answer\s*(?:is)?\s*[:=]?|####)\s*\**\s*(" + _NUMBER + ")", re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\{\s*(" + _NUMBER + r")\s*\}")
_ANY = re.compile(_NUMBER)


def _clean(raw: str) -> float | None:
    text = raw.replace(",", "").replace("$", "").rstrip(".")
    try:
        return float(text)
    except ValueError:
        return None


def extract_final_number(output: str | None) -> float | None:
    """The number the model gave as its final answer, or None."""
    if not output:
        return None
    for pattern in (_MARKED, _BOXED, _ANY):
        matches = pattern.findall(output)
        if matches:
            return _clean(matches[-1])
    return None


def gsm8k_matches(predicted: float | None, gold: str) -> bool:
    """True when an extracted final number equals the gold answer."""
    return predicted is not None and abs(predicted - float(gold.replace(",", ""))) < 1e-6


def check_gsm8k(output: str | None, gold: str) -> bool:
    """True when the model's final number equals the gold answer."""
    return gsm8k_matches(extract_final_number(output), gold)
