"""``bmem eval bci`` / ``summary`` / ``plot`` end to end against the real vLLM server (plumbing, not accuracy)."""

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from behavior_memory.cli.main import cli

GSM8K = [
    ("t0", "Tom has 3 apples and buys 4 more. How many apples does he have?", "7"),
    ("t1", "A box holds 6 pens. How many pens are in 2 boxes?", "12"),
    ("t2", "Sara had 10 dollars and spent 4. How many dollars are left?", "6"),
    ("p0", "Ann reads 5 pages a day. How many pages does she read in 3 days?", "15"),
    ("p1", "There are 9 birds and 2 fly away. How many birds remain?", "7"),
    ("p2", "A class has 4 rows of 5 desks. How many desks are there?", "20"),
]


def _jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"id": i, "question": q, "answer": a}) + "\n" for i, q, a in rows))
    return path


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no behavior-memory.yaml here: defaults plus the options below
    monkeypatch.setenv("BMEM_LLM__OUTPUT_RETRIES", "0")
    monkeypatch.setenv("BMEM_LLM__TIMEOUT_S", "120")
    # One short reflection attempt per trace keeps curation within the CPU server's means.
    monkeypatch.setenv("BMEM_REFLECTION__MAX_ATTEMPTS", "1")
    monkeypatch.setenv("BMEM_REFLECTION__REFLECTION_MAX_TOKENS", "128")
    monkeypatch.setenv("BMEM_REFLECTION__EXTRACTION_MAX_TOKENS", "192")
    _jsonl(tmp_path / "data" / "gsm8k" / "test.jsonl", GSM8K[:3])
    _jsonl(tmp_path / "train.jsonl", GSM8K[3:])
    return tmp_path


@pytest.mark.timeout(300)
def test_bci_curates_answers_resumes_and_plots(vllm_server, workdir):
    server = ["--base-url", vllm_server.base_url, "--model", vllm_server.model]
    args = [
        "eval", "bci", "--dataset", "gsm8k", "--data-dir", "data", "--limit", "3", "--budgets", "48,64",
        "--handbook-from", "train.jsonl", "--train-max-tokens", "64", "--retrieval", "topic", "-k", "40",
        "--seeds", "0", "--out", "results.jsonl", "--concurrency", "4", *server,
    ]  # fmt: skip
    runner = CliRunner()
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "training pool" in result.output and "train.jsonl" in result.output
    assert "12 answers now, 0 already" in result.output
    for word in ("accuracy", "output", "input", "latency", "cited", "baseline", "behaviors", "(topic)"):
        assert word in result.output  # the summary table (headers wrap at the console's width)
    assert "requests failed" not in result.output

    rows = [json.loads(line) for line in (workdir / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and not [r for r in rows if r["error"]]
    assert {(r["condition"], r["budget"]) for r in rows} == {
        (c, b) for c in ("baseline", "behaviors") for b in (48, 64)
    }
    for row in rows:
        assert 0 < row["output_tokens"] <= row["budget"] and row["prompt_tokens"] > 0
        assert row["latency_s"] > 0 and isinstance(row["correct"], bool) and row["model"]
        assert row["condition"] == "behaviors" or row["shown"] == []

    handbook = workdir / "results.handbook.db"
    with sqlite3.connect(handbook) as conn:
        traces = conn.execute("select count(*) from traces").fetchone()[0]
    assert traces == 3  # the training answers only: test answers are not recorded

    again = runner.invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert "0 answers now, 12 already" in again.output
    assert len((workdir / "results.jsonl").read_text().splitlines()) == 12

    plot = runner.invoke(cli, ["eval", "plot", "results.jsonl", "--out", "plot.png"])
    assert plot.exit_code == 0, plot.output
    assert (workdir / "plot.png").stat().st_size > 1000


@pytest.mark.timeout(300)
def test_bci_uses_an_existing_handbook_and_a_holdout_slice_is_named(vllm_server, workdir):
    runner = CliRunner()
    args = [
        "eval", "bci", "--dataset", "gsm8k", "--data-dir", "data", "--budgets", "32",
        "--handbook-from", "holdout:1", "--train-max-tokens", "32", "--out", "h.jsonl",
        "--base-url", vllm_server.base_url, "--model", vllm_server.model,
    ]  # fmt: skip
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "held-out slice: the last 1 items of gsm8k" in result.output
    ids = {json.loads(line)["item_id"] for line in (workdir / "h.jsonl").read_text().splitlines()}
    assert ids == {"t0", "t1"}  # t2 went to the training pool


@pytest.mark.timeout(300)
def test_sft_export_writes_both_corpora(vllm_server, workdir):
    runner = CliRunner()
    server = ["--base-url", vllm_server.base_url, "--model", vllm_server.model]
    curate = runner.invoke(
        cli,
        ["eval", "bci", "--dataset", "train.jsonl", "--budgets", "32", "--limit", "1", "--handbook-from",
         "holdout:2", "--train-max-tokens", "64", "--out", "cur.jsonl", *server],
    )  # fmt: skip
    assert curate.exit_code == 0, curate.output
    result = runner.invoke(
        cli,
        ["sft", "export", "--dataset", "gsm8k", "--data-dir", "data", "--handbook", "cur.handbook.db",
         "--max-tokens", "64", "--out", "bc_sft.jsonl", *server],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "BC-SFT" in result.output and "plain SFT" in result.output
    for name in ("bc_sft.jsonl", "bc_sft.plain.jsonl"):
        records = [json.loads(line) for line in (workdir / name).read_text().splitlines()]
        assert len(records) == 3
        for record in records:
            user, assistant = record["messages"]
            assert user["role"] == "user" and assistant["role"] == "assistant" and assistant["content"]
            assert user["content"] in {q for _, q, _ in GSM8K}  # the question alone: no behavior block


@pytest.mark.timeout(300)
def test_self_improve_writes_three_conditions(vllm_server, workdir):
    args = [
        "eval", "self-improve", "--dataset", "gsm8k", "--data-dir", "data", "--limit", "2", "--traces", "2",
        "--max-tokens", "48", "--out", "si.jsonl", "--base-url", vllm_server.base_url, "--model", vllm_server.model,
    ]  # fmt: skip
    runner = CliRunner()
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "critique" in result.output and "self_beh" in result.output  # the table (names may wrap)
    rows = [json.loads(line) for line in (workdir / "si.jsonl").read_text().splitlines()]
    assert sorted((r["item_id"], r["condition"]) for r in rows) == sorted(
        (i, c) for i in ("t0", "t1") for c in ("baseline", "critique_revise", "self_behaviors")
    )
    assert not [r for r in rows if r["error"]]
    again = runner.invoke(cli, args)
    assert again.exit_code == 0 and "0 questions now, 2 already" in again.output
