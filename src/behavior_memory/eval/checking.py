"""Answer checking for every shipped benchmark (the rules of shared/data/README.md).

- ``gsm8k``: the final number, compared numerically (see :mod:`.answers`).
- ``math``: the last ``\\boxed{}`` compared by mathematical equivalence with ``math-verify``
  (the ``eval`` extra); without it, or when it cannot parse, a normalised string comparison.
- ``aime``: the last ``\\boxed{}`` (else the last integer) as an integer.
- ``hotpotqa``: SQuAD-style normalised exact match, with token F1 reported beside it.

``math-verify`` arms ``signal.alarm`` for its timeouts, which only works in the main thread; in
other threads it runs without a timeout.
"""

from __future__ import annotations

import logging
import re
import string
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from .answers import extract_final_number, gsm8k_matches

__all__ = [
    "CHECKERS",
    "Checked",
    "CheckerName",
    "check_aime",
    "check_answer",
    "check_hotpotqa",
    "check_math",
    "hotpot_f1",
    "last_boxed",
    "normalize_hotpot",
]

CheckerName = Literal["gsm8k", "math", "aime", "hotpotqa"]
CHECKERS: tuple[str, ...] = ("gsm8k", "math", "aime", "hotpotqa")


@dataclass(frozen=True)
class Checked:
    """The verdict on one answer: what was extracted, whether it is right, and a graded score."""

    predicted: str | None
    correct: bool
    score: float  # 1.0/0.0, or token F1 for HotpotQA


def last_boxed(text: str | None) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces balanced, or None."""
    if not text:
        return None
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    brace = text.find("{", start)
    if brace < 0:
        return None
    depth = 0
    for i in range(brace, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[brace + 1 : i]
    return None


_STRIP = re.compile(r"\\left|\\right|\\!|\\,|\\;|\\:|\\ |\$|\s|\\displaystyle|\^\{?\\circ\}?|\\%|%|\.$")
_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")


def _normalize_latex(answer: str) -> str:
    out = _TEXT.sub(r"\1", answer)
    out = out.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    out = _STRIP.sub("", out)
    return out.rstrip(".").lower()


class _NoTimeoutNotice(logging.Filter):
    """math-verify warns on every call made without its signal timeout (our worker threads)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Timeout is disabled" not in record.getMessage()


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_NoTimeoutNotice())


def _math_verify(gold: str, output: str) -> bool | None:
    try:
        from math_verify import parse, verify
    except ImportError:
        return None
    main = threading.current_thread() is threading.main_thread()
    try:
        gold_parsed = parse("\\boxed{" + gold + "}", parsing_timeout=5 if main else None)
        pred_parsed = parse(output, parsing_timeout=5 if main else None)
        if not gold_parsed or not pred_parsed:
            return None
        return bool(verify(gold_parsed, pred_parsed, timeout_seconds=5 if main else None))
    except Exception:  # math-verify raises many kinds on odd LaTeX; the fallback decides then
        return None


def check_math(output: str | None, gold: str) -> Checked:
    """MATH-style: the last boxed answer, equal to the gold answer by math-verify, else by normalised text."""
    boxed = last_boxed(output)
    if not output:
        return Checked(None, False, 0.0)
    verdict = _math_verify(gold, output if boxed is None else "\\boxed{" + boxed + "}")
    if not verdict and boxed is not None:
        verdict = _normalize_latex(boxed) == _normalize_latex(gold)
    correct = bool(verdict)
    return Checked(boxed, correct, float(correct))


_INTEGER = re.compile(r"-?\d[\d,]*")


def check_aime(output: str | None, gold: str) -> Checked:
    """AIME: the last boxed integer (else the last integer in the text) equals the gold integer."""
    if not output:
        return Checked(None, False, 0.0)
    boxed = last_boxed(output)
    source = boxed if boxed is not None else output
    found = _INTEGER.findall(source)
    if not found:
        return Checked(boxed, False, 0.0)
    predicted = found[-1].replace(",", "")
    correct = int(predicted) == int(gold)
    return Checked(predicted, correct, float(correct))


def normalize_hotpot(text: str) -> str:
    """SQuAD/HotpotQA ``normalize_answer``: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def hotpot_f1(prediction: str, gold: str) -> float:
    """Token F1 of the official HotpotQA evaluation (yes/no/noanswer must match exactly)."""
    pred, ref = normalize_hotpot(prediction), normalize_hotpot(gold)
    special = {"yes", "no", "noanswer"}
    if (pred in special or ref in special) and pred != ref:
        return 0.0
    pred_tokens, ref_tokens = pred.split(), ref.split()
    common = Counter(pred_tokens) & Counter(ref_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


_HOTPOT_MARK = re.compile(r"(?:final\s+)?answer\s*(?:is)?\s*[:=]\s*(.+)", re.IGNORECASE)


def _hotpot_prediction(output: str) -> str:
    marked = _HOTPOT_MARK.findall(output)
    if marked:
        return str(marked[-1]).strip().strip("*").strip()
    boxed = last_boxed(output)
    if boxed is not None:
        return boxed
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def check_hotpotqa(output: str | None, gold: str) -> Checked:
    """HotpotQA: normalised exact match of the final answer; the score is token F1."""
    if not output:
        return Checked(None, False, 0.0)
    predicted = _hotpot_prediction(output)
    em = normalize_hotpot(predicted) == normalize_hotpot(gold)
    return Checked(predicted, em, hotpot_f1(predicted, gold))


def _check_gsm8k(output: str | None, gold: str) -> Checked:
    number = extract_final_number(output)
    correct = gsm8k_matches(number, gold)
    return Checked(None if number is None else f"{number:g}", correct, float(correct))


def check_answer(checker: str, output: str | None, gold: str) -> Checked:
    """Check ``output`` against ``gold`` with the named checker (one of :data:`CHECKERS`)."""
    if checker == "gsm8k":
        return _check_gsm8k(output, gold)
    if checker == "math":
        return check_math(output, gold)
    if checker == "aime":
        return check_aime(output, gold)
    if checker == "hotpotqa":
        return check_hotpotqa(output, gold)
    raise ValueError(f"unknown checker {checker!r}; one of {', '.join(CHECKERS)}")
