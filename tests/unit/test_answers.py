import json
from pathlib import Path

import pytest

from behavior_memory.eval.answers import check_gsm8k, extract_final_number

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "gsm8k" / "test.jsonl"


@pytest.mark.parametrize(
    ("output", "number"),
    [
        ("3 + 4 = 7. Answer: 7", 7.0),
        ("so the total is $1,250.\n#### 1,250", 1250.0),
        ("We get \\boxed{42}", 42.0),
        ("first 3, then 5, finally 18", 18.0),
        ("Answer: -4.5", -4.5),
        ("no digits here", None),
        (None, None),
    ],
)
def test_extract_final_number(output, number):
    assert extract_final_number(output) == number


def test_gold_solutions_check_as_correct_and_perturbed_as_wrong():
    if not SHARED.exists():
        pytest.skip("shared/data is not beside the checkout")
    items = [json.loads(line) for line in SHARED.read_text().splitlines()]
    assert len(items) == 1319
    for item in items:
        assert check_gsm8k(item["solution"], item["answer"]), item["id"]
        assert not check_gsm8k(f"Answer: {int(item['answer']) + 1}", item["answer"])


def test_shipped_sample_matches_the_dataset():
    from importlib.resources import files

    sample = [
        json.loads(x) for x in files("behavior_memory.data").joinpath("gsm8k_sample.jsonl").read_text().splitlines()
    ]
    assert len(sample) >= 12 and all(check_gsm8k(f"Answer: {s['answer']}", s["answer"]) for s in sample)
