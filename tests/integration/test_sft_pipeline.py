"""BC-SFT end to end on the CPU: exported records in, two servable folders out, vLLM answers with one,
and `bmem eval sft` compares base, plain-SFT and BC-SFT. Plumbing only: a 135M model trained for one
step proves nothing about the paper's accuracy, and nothing here asserts that it got smarter."""

import json
import socket
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from behavior_memory.cli.main import cli
from behavior_memory.serving import embedded, server

QUESTIONS = [
    ("Tom has 3 apples and buys 4 more. How many apples does he have?", "7"),
    ("A box holds 6 pens. How many pens are in 2 boxes?", "12"),
    ("Sara had 10 dollars and spent 4. How many dollars are left?", "6"),
    ("Ann reads 5 pages a day. How many pages does she read in 3 days?", "15"),
    ("There are 9 birds and 2 fly away. How many birds remain?", "7"),
]


def _chat(question: str, answer: str) -> str:
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return json.dumps({"messages": messages})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    """Both halves of a `bmem sft export`, as it writes them."""
    bc = tmp_path / "bc_sft.jsonl"
    bc.write_text(
        "".join(
            _chat(q, f"behavior_one_operation_per_line: the result is {a}.\nAnswer: {a}") + "\n" for q, a in QUESTIONS
        )
    )
    (tmp_path / "bc_sft.plain.jsonl").write_text("".join(_chat(q, f"Answer: {a}") + "\n" for q, a in QUESTIONS))
    test = tmp_path / "gsm8k_test.jsonl"
    test.write_text(
        "".join(
            json.dumps({"id": f"t{n}", "question": q, "answer": a}) + "\n" for n, (q, a) in enumerate(QUESTIONS[:2])
        )
    )
    return bc


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_train_twin_serve_answer_and_compare(vllm_server, exported, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BMEM_LLM__OUTPUT_RETRIES", "0")
    base = embedded.ensure_model()
    runner = CliRunner()
    args = [
        "sft", "train", str(exported), "--base", str(base), "--out", "models/bc", "--twin",
        "--max-steps", "1", "--batch-size", "2", "--max-length", "64", "--lora-r", "2",
        "--save-steps", "1", "--eval-fraction", "0.2", "--no-progress",
    ]  # fmt: skip
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "BC-SFT" in result.output and "plain SFT" in result.output

    models = tmp_path / "models"
    assert sorted(p.name for p in models.iterdir()) == ["bc", "bc-plain"]  # no .tmp-*, no .checkpoints left
    for folder in (models / "bc", models / "bc-plain"):
        names = {p.name for p in folder.iterdir()}
        assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja", "bmem-sft.json"} <= names
        assert not any(n.startswith("adapter_") for n in names)  # merged: vLLM needs no PEFT
        meta = json.loads((folder / "bmem-sft.json").read_text())
        assert meta["steps"] == 1 and meta["train_records"] == 4 and meta["eval_records"] == 1
        assert meta["eval_loss"] > 0
        # trained and saved with the tool-aware template the base is served with
        assert (folder / "chat_template.jinja").read_text() == embedded.chat_template_path().read_text()
        config = json.loads((folder / "config.json").read_text())
        assert config["architectures"] == ["LlamaForCausalLM"] and config["dtype"] == "bfloat16"
    assert json.loads((models / "bc-plain" / "bmem-sft.json").read_text())["records"].endswith("bc_sft.plain.jsonl")

    again = runner.invoke(cli, args)  # the folders are there: refused before any training
    assert again.exit_code != 0 and "--overwrite" in again.output

    cfg = server.ServeConfig(
        model=str(models / "bc"), served_model_name="bc-sft", port=_free_port(), max_model_len=2048
    )
    info = server.start(cfg)
    try:
        assert server.list_models(info.base_url) == ["bc-sft"]
        body = json.dumps(
            {"model": "bc-sft", "messages": [{"role": "user", "content": QUESTIONS[0][0]}], "max_tokens": 24}
        ).encode()
        request = urllib.request.Request(
            info.base_url + "/chat/completions", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.loads(response.read())
        assert answer["model"] == "bc-sft"
        assert answer["choices"][0]["message"]["content"].strip()
        assert 0 < answer["usage"]["completion_tokens"] <= 24

        compare = [
            "eval", "sft", "-d", "gsm8k_test.jsonl", "--max-tokens", "32", "--temperature", "0",
            "--contender", f"base={vllm_server.base_url}#{vllm_server.model}",
            "--contender", "plain-sft=models/bc-plain",  # served by the command itself
            "--contender", f"bc-sft={info.base_url}",
            "--out", "sft_eval.jsonl", "--plot", "sft_eval.png", "-j", "2",
        ]  # fmt: skip
        result = runner.invoke(cli, compare)
    finally:
        server.stop(cfg)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "sft_eval.jsonl").read_text().splitlines()]
    assert sorted((r["condition"], r["item_id"]) for r in rows) == [
        (c, i) for c in ("base", "bc-sft", "plain-sft") for i in ("t0", "t1")
    ]
    assert not [r for r in rows if r["error"]]
    assert {r["model"] for r in rows} == {vllm_server.model, "plain-sft", "bc-sft"}
    for row in rows:
        assert 0 < row["output_tokens"] <= 32 and isinstance(row["correct"], bool) and row["shown"] == []
    for word in ("base", "plain-sft", "bc-sft", "accuracy", "output"):  # headers wrap at the width
        assert word in result.output
    assert (tmp_path / "sft_eval.png").stat().st_size > 0
    assert server.list_models(vllm_server.base_url)  # the shared base server is left running


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_rerun_resumes_from_the_checkpoint_and_refuses_another_runs(exported, tmp_path):
    from behavior_memory.config.sft import SFTConfig
    from behavior_memory.errors import InvalidInputError
    from behavior_memory.sft.records import load_records
    from behavior_memory.sft.train import checkpoint_dir, train_records

    base = embedded.ensure_model()
    records = load_records(exported)
    settings = SFTConfig(max_steps=1, batch_size=1, max_length=48, lora_r=2, save_steps=1, eval_fraction=0)
    out = tmp_path / "m"
    first = train_records(records, base=base, out=out, settings=settings, keep_checkpoints=True, progress=False)
    assert first.resumed_from is None and first.steps == 1 and first.seconds_per_step > 0
    assert (checkpoint_dir(out) / "checkpoint-1").is_dir()
    other = settings.model_copy(update={"learning_rate": 1e-5})
    with pytest.raises(InvalidInputError, match="--fresh"):  # another run's checkpoints are not mixed in
        train_records(records, base=base, out=out, settings=other, overwrite=True, progress=False)
    # As if the run had died after its checkpoint: the same command picks it up instead of starting over.
    again = train_records(records, base=base, out=out, settings=settings, overwrite=True, progress=False)
    assert again.resumed_from is not None and again.resumed_from.endswith("checkpoint-1")
    assert not checkpoint_dir(out).exists() and (out / "model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("m")) == ["m"]
