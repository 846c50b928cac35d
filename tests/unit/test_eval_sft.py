"""`bmem eval sft` without a server: contender specs, the comparison's order and token change, CLI errors."""

import json

import pytest
from click.testing import CliRunner

from behavior_memory.cli.main import cli
from behavior_memory.errors import InvalidInputError
from behavior_memory.eval.bci import SolveSettings
from behavior_memory.eval.datasets import Item
from behavior_memory.eval.sft_compare import compare_summaries, jobs_for_contender, parse_contender, pending


def _row(condition: str, item: str, correct: bool, tokens: int) -> dict:
    return {
        "key": f"gsm8k|{condition}|-|64|0|{item}", "dataset": "gsm8k", "item_id": item, "condition": condition,
        "retrieval": "-", "budget": 64, "seed": 0, "correct": correct, "score": float(correct),
        "output_tokens": tokens, "prompt_tokens": 30, "latency_s": 0.5, "shown": [], "cited": [], "error": None,
    }  # fmt: skip


def test_contender_specs(tmp_path):
    folder = tmp_path / "bc"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert parse_contender(f"bc-sft={folder}").target == str(folder)
    assert parse_contender("base=http://127.0.0.1:8000/v1#smollm2").is_url
    for bad in ("no-equals", "=http://x", "bc=", f"x={tmp_path / 'missing'}", "behaviors=http://x"):
        with pytest.raises(InvalidInputError):
            parse_contender(bad)


def test_comparison_keeps_contender_order_and_measures_tokens_against_the_first():
    rows = [
        _row("bc-sft", "a", True, 50), _row("bc-sft", "b", False, 70),
        _row("base", "a", False, 100), _row("base", "b", False, 100),
        _row("plain-sft", "a", True, 100), _row("other", "a", True, 1),
    ]  # fmt: skip
    summaries = compare_summaries(rows, ["base", "plain-sft", "bc-sft"])
    assert [s.condition for s in summaries] == ["base", "plain-sft", "bc-sft"]
    base, plain, bc = summaries
    assert base.token_change is None and plain.token_change == 0.0 and bc.token_change == pytest.approx(-0.4)
    assert (bc.correct, bc.n) == (1, 2) and bc.interval[0] < 0.5 < bc.interval[1]


def test_answered_rows_are_not_asked_again(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_text(
        json.dumps(_row("base", "a", True, 10))
        + "\n"
        + json.dumps({**_row("base", "b", False, 0), "error": "x"})
        + "\n"
    )
    items = [Item(id=i, question=f"q{i}", answer="1", topic="gsm8k") for i in ("a", "b")]
    settings = SolveSettings(dataset="gsm8k", checker="gsm8k", retrieval="-", k=0)
    todo = pending(settings, jobs_for_contender(items, "base", 64, [0]), out)
    assert [j.item.id for j in todo] == ["b"]


def test_cli_refuses_a_bad_contender_before_answering(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.jsonl").write_text(json.dumps({"id": "a", "question": "1+1?", "answer": "2"}) + "\n")
    result = CliRunner().invoke(cli, ["eval", "sft", "-d", "t.jsonl", "--contender", "bc-sft=nowhere"])
    assert result.exit_code != 0 and "neither a URL nor a model folder" in result.output
    assert not (tmp_path / "sft_eval.jsonl").exists()


def test_docstring_examples_run():
    import doctest

    from behavior_memory.eval import sft_compare
    from behavior_memory.sft import records

    for module in (sft_compare, records):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
