"""Datasets, results summaries, plots and the CLI's offline paths of ``bmem eval``."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from behavior_memory.cli.main import cli
from behavior_memory.eval.bci import SolveSettings, jobs_for, load_rows, row_key
from behavior_memory.eval.datasets import DatasetError, disjoint_or_raise, load_dataset, resolve_data_dir
from behavior_memory.eval.results import summarize_rows, summary_table, wilson_interval


def _write(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _row(condition: str, budget: int, item: str, correct: bool, out: int, prompt: int, cited=()) -> dict:
    return {
        "key": f"toy|{condition}|{budget}|0|{item}",
        "dataset": "toy",
        "condition": condition,
        "retrieval": "topic" if condition == "behaviors" else "-",
        "budget": budget,
        "item_id": item,
        "correct": correct,
        "score": float(correct),
        "output_tokens": out,
        "prompt_tokens": prompt,
        "reasoning_tokens": None,
        "cached_tokens": 0,
        "latency_s": 1.0,
        "shown": ["a", "b"] if condition == "behaviors" else [],
        "cited": list(cited),
        "model": "m",
        "error": None,
    }


def test_wilson_interval_edges():
    assert wilson_interval(0, 0) == (0.0, 0.0)
    low, high = wilson_interval(10, 10)
    assert high == 1.0 and 0.6 < low < 0.8
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and 0.2 < high < 0.35


def test_named_dataset_resolves_under_data_dir(tmp_path, monkeypatch):
    _write(tmp_path / "gsm8k" / "test.jsonl", [{"id": "a", "question": "1+1?", "answer": "2"}])
    ds = load_dataset("gsm8k", data_dir=tmp_path)
    assert ds.checker == "gsm8k" and ds.items[0].topic == "gsm8k"
    monkeypatch.setenv("BMEM_DATA_DIR", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path


def test_missing_data_dir_names_the_option(tmp_path, monkeypatch):
    monkeypatch.delenv("BMEM_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetError, match="--data-dir"):
        load_dataset("math500")


def test_path_dataset_guesses_checker_and_keeps_subject(tmp_path):
    path = _write(tmp_path / "pool.jsonl", [{"id": "x", "question": "q", "answer": "1", "subject": "Algebra"}])
    ds = load_dataset(str(path))
    assert ds.checker == "math" and ds.items[0].topic == "Algebra"
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset("nope")
    with pytest.raises(DatasetError, match="needs JSON"):
        load_dataset(str(_write(tmp_path / "bad.jsonl", [{"id": "x"}])))


def test_overlapping_training_pool_is_refused(tmp_path):
    test = load_dataset(str(_write(tmp_path / "t.jsonl", [{"id": "1", "question": "q1", "answer": "1"}])))
    same_question = load_dataset(str(_write(tmp_path / "p.jsonl", [{"id": "9", "question": "q1", "answer": "1"}])))
    with pytest.raises(DatasetError, match="overlaps"):
        disjoint_or_raise(same_question.items, test.items)


def test_row_keys_separate_configurations(tmp_path):
    ds = load_dataset(str(_write(tmp_path / "t.jsonl", [{"id": "1", "question": "q", "answer": "1"}])))
    jobs = list(jobs_for(ds.items, [64, 128], [0, 1]))
    settings = SolveSettings(dataset="t", checker="math", retrieval="topic", k=40)
    assert len(jobs) == 8 and len({row_key(settings, j) for j in jobs}) == 8


def test_summary_compares_with_the_baseline_and_counts_citations():
    rows = [
        _row("baseline", 64, "1", True, 100, 50),
        _row("baseline", 64, "2", False, 100, 50),
        _row("behaviors", 64, "1", True, 60, 150, cited=["a"]),
        _row("behaviors", 64, "2", False, 80, 150, cited=["b", "a"]),
        {**_row("behaviors", 64, "3", False, 0, 0), "error": "boom"},
    ]
    base, with_b = summarize_rows(rows)
    assert base.condition == "baseline" and base.accuracy == 0.5
    assert with_b.token_change == pytest.approx(-0.3)
    assert with_b.input_overhead == 100
    assert with_b.errors == 1 and with_b.n == 2
    assert with_b.cited_correct == [("a", 1)] and dict(with_b.cited_wrong) == {"b": 1, "a": 1}
    assert summary_table([base, with_b]).row_count == 2


def test_load_rows_ignores_a_torn_last_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(_row("baseline", 64, "1", True, 1, 1)) + '\n{"key": ', encoding="utf-8")
    assert len(load_rows(path)) == 1


def test_cli_summary_and_plot(tmp_path):
    rows = [
        _row(c, b, str(i), i % 2 == 0, b // 2, 40)
        for c in ("baseline", "behaviors")
        for b in (64, 128)
        for i in range(4)
    ]
    results = _write(tmp_path / "r.jsonl", rows)
    runner = CliRunner()
    out = runner.invoke(cli, ["eval", "summary", str(results)])
    assert out.exit_code == 0, out.output
    assert "baseline" in out.output and "behaviors" in out.output
    png = tmp_path / "plot.png"
    out = runner.invoke(cli, ["eval", "plot", str(results), "--out", str(png)])
    assert out.exit_code == 0, out.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_bci_refuses_an_overlapping_pool_before_calling_a_server(tmp_path):
    item = {"id": "1", "question": "q", "answer": "1"}
    _write(tmp_path / "gsm8k" / "test.jsonl", [item])
    pool = _write(tmp_path / "pool.jsonl", [item])
    out = CliRunner().invoke(
        cli,
        ["eval", "bci", "--dataset", "gsm8k", "--data-dir", str(tmp_path), "--handbook-from", str(pool)],
    )
    assert out.exit_code == 1 and "overlaps" in out.output


def test_sft_corpora_strip_the_block_and_keep_the_last_answer(tmp_path):
    from behavior_memory.eval.sft_export import write_corpora

    ds = load_dataset(str(_write(tmp_path / "t.jsonl", [{"id": "1", "question": "q1", "answer": "1"}])))
    rows = [
        {**_row("behaviors", 64, "1", False, 5, 5), "seed": 0, "output": "", "error": "timeout"},
        {**_row("behaviors", 64, "1", True, 5, 5), "seed": 0, "output": "uses behavior_x. Answer: 1"},
        {**_row("baseline", 64, "1", False, 5, 5), "seed": 0, "output": "Answer: 2"},
    ]
    bc, plain = write_corpora(
        rows, ds.items, bc_out=tmp_path / "bc.jsonl", plain_out=tmp_path / "p.jsonl", budget=64, seed=0
    )
    assert (bc.records, bc.correct, plain.records, plain.correct) == (1, 1, 1, 0)
    record = json.loads((tmp_path / "bc.jsonl").read_text())
    assert record == {
        "messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "uses behavior_x. Answer: 1"}]
    }
    bc, _ = write_corpora(
        rows,
        ds.items,
        bc_out=tmp_path / "bc.jsonl",
        plain_out=tmp_path / "p.jsonl",
        budget=64,
        seed=0,
        only_correct=True,
    )
    assert bc.records == 1
