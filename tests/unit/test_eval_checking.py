"""Answer checking: every gold answer of every shipped dataset verifies against itself; perturbed ones do not."""

import json
import random
from pathlib import Path

import pytest

from behavior_memory.eval.checking import (
    check_aime,
    check_answer,
    check_hotpotqa,
    check_math,
    hotpot_f1,
    last_boxed,
    normalize_hotpot,
)

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"

# dataset file, checker, how a model would write the answer
SETS = [
    ("gsm8k/test.jsonl", "gsm8k", "So we get that.\nAnswer: {}"),
    ("math500/test.jsonl", "math", "The final answer is $\\boxed{{{}}}$."),
    ("aime24/test.jsonl", "aime", "Thus the answer is \\boxed{{{}}}."),
    ("hotpotqa/dev_react500.jsonl", "hotpotqa", "Thought: done.\nAnswer: {}"),
    ("hotpotqa/dev_distractor100.jsonl", "hotpotqa", "Answer: {}"),
]


def _items(rel: str) -> list[dict]:
    path = DATA / rel
    if not path.exists():
        pytest.skip(f"{path} is not beside the checkout")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _perturb(checker: str, gold: str, other: str) -> str:
    if checker == "gsm8k":
        return str(int(gold) + 1)
    if checker == "aime":
        return str((int(gold) + 1) % 1000)
    if checker == "math":
        return gold + "+1"
    return other  # hotpotqa: another question's answer


@pytest.mark.parametrize(("rel", "checker", "template"), SETS)
def test_every_gold_answer_verifies_against_itself(rel, checker, template):
    items = _items(rel)
    wrong = [i["id"] for i in items if not check_answer(checker, template.format(i["answer"]), i["answer"]).correct]
    assert wrong == []


@pytest.mark.parametrize(("rel", "checker", "template"), SETS)
def test_perturbed_gold_answers_are_wrong(rel, checker, template):
    items = _items(rel)
    rng = random.Random(7)
    sample = rng.sample(items, min(60, len(items)))
    accepted = []
    for item in sample:
        other = rng.choice(items)["answer"]
        if checker == "hotpotqa" and normalize_hotpot(other) == normalize_hotpot(item["answer"]):
            continue
        output = template.format(_perturb(checker, item["answer"], other))
        if check_answer(checker, output, item["answer"]).correct:
            accepted.append((item["id"], item["answer"]))
    assert accepted == []


def test_math_equivalence_and_fallback():
    assert check_math("so \\boxed{0.25}", "\\frac{1}{4}").correct
    assert check_math("angle \\boxed{76}", "76^\\circ").correct
    assert check_math("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)").correct
    assert check_math("\\boxed{\\text{(C)}}", "\\text{(C)}").correct
    assert not check_math("\\boxed{\\text{(D)}}", "\\text{(C)}").correct
    assert not check_math("", "1").correct
    assert not check_math(None, "1").correct


def test_last_boxed_balances_braces():
    assert last_boxed("\\boxed{1} then \\boxed{\\frac{a}{b}}") == "\\frac{a}{b}"
    assert last_boxed("no box") is None
    assert last_boxed("\\boxed{unclosed") is None


def test_aime_reads_boxed_or_last_integer_and_ignores_leading_zeros():
    assert check_aime("\\boxed{025}", "25").correct
    assert check_aime("it is 73", "73").correct
    assert not check_aime("\\boxed{74}", "73").correct
    assert not check_aime("no number", "73").correct


def test_hotpot_em_and_f1():
    checked = check_hotpotqa("Answer: The Beatles", "Beatles")
    assert checked.correct and checked.score == 1.0
    partial = check_hotpotqa("Answer: John Lennon", "Lennon")
    assert not partial.correct and 0 < partial.score < 1
    assert hotpot_f1("yes", "no") == 0.0


def test_unknown_checker_is_an_error():
    with pytest.raises(ValueError, match="unknown checker"):
        check_answer("nope", "x", "y")
