"""`bmem sft train` without torch: records, block stripping, splits, twins, checks, atomic save, CLI errors."""

import errno
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from behavior_memory.cli.main import cli
from behavior_memory.config.sft import SFTConfig
from behavior_memory.errors import BehaviorMemoryError, InvalidInputError
from behavior_memory.sft import checks
from behavior_memory.sft.records import load_records, paired, plain_twin_path, split_records, strip_behavior_block
from behavior_memory.sft.train import _prepare_work, _save, checkpoint_dir
from behavior_memory.sft.twin import twin_out

BLOCK = (
    "A behavior is a short, reusable note on how to think.\n\nHere is a list of behaviors:\n"
    "behavior_check_units: check the units\n\nSolve the task efficiently and clearly."
)


def _chat(question: str, answer: str, system: str | None = None) -> dict:
    messages = [{"role": "system", "content": system}] if system is not None else []
    return {"messages": [*messages, {"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _base(tmp_path: Path, architectures: list[str] | None = None, weights: bool = True) -> Path:
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text(json.dumps({"architectures": architectures or ["LlamaForCausalLM"]}))
    (base / "tokenizer.json").write_text("{}")
    if weights:
        (base / "model.safetensors").write_bytes(b"\0" * 1024)
    return base


def test_exported_records_load_as_prompt_completion(tmp_path):
    path = _write(tmp_path / "bc.jsonl", [_chat("1+1?", "2"), "", _chat("2+2?", "4")])
    records = load_records(path)
    assert [r.question for r in records] == ["1+1?", "2+2?"]
    assert records[0].as_trl() == {
        "prompt": [{"role": "user", "content": "1+1?"}],
        "completion": [{"role": "assistant", "content": "2"}],
    }


def test_the_behavior_block_is_stripped_and_an_emptied_system_prompt_dropped(tmp_path):
    path = _write(
        tmp_path / "r.jsonl",
        [
            _chat("q1", "a1", system="Solve it.\n\n" + BLOCK),
            _chat("q2", "a2", system=BLOCK),
            _chat("q3\n\n" + BLOCK, "a3"),
        ],
    )
    first, second, third = load_records(path)
    assert first.prompt[0] == {"role": "system", "content": "Solve it."}
    assert [m["role"] for m in second.prompt] == ["user"]
    assert third.question == "q3"
    assert "behavior_check_units" not in json.dumps([r.as_trl()["prompt"] for r in (first, second, third)])
    assert strip_behavior_block("no block here") == "no block here"


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("not json", "not JSON"),
        (json.dumps({"text": "hello"}), '"messages" list'),
        (json.dumps({"messages": [{"role": "user", "content": "q"}]}), "assistant answer"),
        (json.dumps(_chat("q", "   ")), "assistant answer"),
        (json.dumps({"messages": [{"role": "bot", "content": "q"}, {"role": "assistant", "content": "a"}]}), "role"),
        (
            json.dumps({"messages": [{"role": "system", "content": BLOCK}, {"role": "assistant", "content": "a"}]}),
            "no user",
        ),
    ],
)
def test_records_not_in_the_exported_format_are_refused_with_file_and_line(tmp_path, line, why):
    path = _write(tmp_path / "bad.jsonl", [_chat("ok", "fine"), line])
    with pytest.raises(InvalidInputError) as info:
        load_records(path)
    assert f"{path}:2" in str(info.value) and why in str(info.value)


def test_empty_and_missing_record_files_are_refused(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(InvalidInputError, match="empty"):
        load_records(empty)
    with pytest.raises(InvalidInputError, match="no such records file"):
        load_records(tmp_path / "missing.jsonl")


def test_split_is_seeded_holds_one_out_at_least_and_never_empties_training():
    records = load_records_inline(10)
    train, held = split_records(records, 0.2, seed=0)
    assert len(train) == 8 and len(held) == 2
    assert split_records(records, 0.2, seed=0) == (train, held)
    assert set(r.question for r in train).isdisjoint(r.question for r in held)
    assert [len(p) for p in split_records(records[:2], 0.1, 0)] == [1, 1]
    assert [len(p) for p in split_records(records[:1], 0.5, 0)] == [1, 0]
    assert [len(p) for p in split_records(records, 0.0, 0)] == [10, 0]


def load_records_inline(n: int):
    from behavior_memory.sft.records import Record

    return [Record(prompt=({"role": "user", "content": f"q{i}"},), answer=f"a{i}") for i in range(n)]


def test_twin_pairs_only_shared_questions_in_bc_order():
    bc = load_records_inline(4)
    plain = list(reversed(load_records_inline(3)))
    kept_bc, kept_plain = paired(bc, plain)
    assert [r.question for r in kept_bc] == [r.question for r in kept_plain] == ["q0", "q1", "q2"]
    assert plain_twin_path(Path("x/bc_sft.jsonl")) == Path("x/bc_sft.plain.jsonl")
    assert twin_out(Path("models/bc")) == Path("models/bc-plain")


def test_base_folder_checks(tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        checks.check_base(tmp_path / "nope")
    assert checks.check_base(_base(tmp_path)) == "LlamaForCausalLM"
    (tmp_path / "enc").mkdir()
    (tmp_path / "enc" / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    with pytest.raises(InvalidInputError, match="not a causal language model"):
        checks.check_base(tmp_path / "enc")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match=r"no config\.json"):
        checks.check_base(tmp_path / "empty")


def test_base_without_weights_is_refused(tmp_path):
    with pytest.raises(InvalidInputError, match="no weights"):
        checks.check_base(_base(tmp_path, weights=False))


def test_output_and_disk_checks(tmp_path, monkeypatch):
    out = tmp_path / "model"
    checks.check_output(out, overwrite=False)
    out.mkdir()
    with pytest.raises(InvalidInputError, match="--overwrite"):
        checks.check_output(out, overwrite=False)
    checks.check_output(out, overwrite=True)
    base = _base(tmp_path)
    assert checks.disk_needed(base, method="full") > checks.disk_needed(base, method="lora")
    monkeypatch.setattr(checks.shutil, "disk_usage", lambda _: SimpleNamespace(free=1 << 20))
    with pytest.raises(BehaviorMemoryError, match="not enough disk space"):
        checks.check_disk(tmp_path / "new", base, method="lora")


class _FakeModel:
    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.config = SimpleNamespace(use_cache=False)

    def merge_and_unload(self) -> "_FakeModel":
        return self

    def to(self, _dtype: object) -> "_FakeModel":
        return self

    def save_pretrained(self, path: str, **_: object) -> None:
        Path(path).mkdir(parents=True)
        (Path(path) / "model.safetensors").write_bytes(b"new")
        if self.fail:
            raise self.fail


class _FakeTokenizer:
    def save_pretrained(self, path: str) -> None:
        (Path(path) / "tokenizer.json").write_text("{}")


def test_a_full_disk_while_saving_leaves_no_folder_and_no_temporary(tmp_path):
    out = tmp_path / "model"
    trainer = SimpleNamespace(model=_FakeModel(OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(BehaviorMemoryError, match="No space left"):
        _save(trainer, _FakeTokenizer(), None, out, {}, overwrite=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_serializer_error_while_saving_also_leaves_nothing_behind(tmp_path):
    trainer = SimpleNamespace(model=_FakeModel(RuntimeError("Error while serializing: IoError(No space left)")))
    with pytest.raises(BehaviorMemoryError, match="No space left"):
        _save(trainer, _FakeTokenizer(), None, tmp_path / "model", {}, overwrite=False)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_overwrite_keeps_the_old_model_and_a_good_one_replaces_it(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"old")
    bad = SimpleNamespace(model=_FakeModel(OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(BehaviorMemoryError):
        _save(bad, _FakeTokenizer(), None, out, {}, overwrite=True)
    assert (out / "model.safetensors").read_bytes() == b"old"
    good = SimpleNamespace(model=_FakeModel())
    _save(good, _FakeTokenizer(), None, out, {"steps": 2}, overwrite=True)
    assert (out / "model.safetensors").read_bytes() == b"new"
    assert json.loads((out / "bmem-sft.json").read_text()) == {"steps": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert good.model.config.use_cache is True


def test_checkpoints_of_another_run_are_not_resumed(tmp_path):
    work = checkpoint_dir(tmp_path / "model")
    assert work == tmp_path / "model.checkpoints"
    assert _prepare_work(work, "run-a", resume=True) is None
    (work / "checkpoint-2").mkdir()
    (work / "checkpoint-2" / "trainer_state.json").write_text("{}")
    assert _prepare_work(work, "run-a", resume=True) == str(work / "checkpoint-2")
    with pytest.raises(InvalidInputError, match="--fresh"):
        _prepare_work(work, "run-b", resume=True)
    assert _prepare_work(work, "run-b", resume=False) is None and not (work / "checkpoint-2").exists()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("empty", "empty"),
        ("bad", "expected the format"),
        ("no-base", "does not exist"),
        ("not-causal", "not a causal language model"),
    ],
)
def test_cli_refuses_bad_input_before_training_and_writes_nothing(tmp_path, monkeypatch, setup, message):
    monkeypatch.chdir(tmp_path)
    records = _write(tmp_path / "bc.jsonl", [_chat("q", "a")] * 3)
    base = _base(tmp_path)
    if setup == "empty":
        records.write_text("")
    elif setup == "bad":
        _write(records, [{"prompt": "q", "completion": "a"}])
    elif setup == "no-base":
        base = tmp_path / "missing"
    else:
        (base / "config.json").write_text(json.dumps({"architectures": ["T5EncoderModel"]}))
    result = CliRunner().invoke(cli, ["sft", "train", str(records), "--base", str(base), "--out", "model"])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "model").exists() and not list(tmp_path.glob("model.*"))


def test_cli_flags_are_validated_like_the_yaml_section(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    records = _write(tmp_path / "bc.jsonl", [_chat("q", "a")])
    args = ["sft", "train", str(records), "--base", str(_base(tmp_path)), "--out", "m", "--eval-fraction", "1.5"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "eval_fraction" in result.output


def test_twin_needs_the_plain_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    records = _write(tmp_path / "bc.jsonl", [_chat("q", "a")])
    result = CliRunner().invoke(
        cli, ["sft", "train", str(records), "--base", str(_base(tmp_path)), "-o", "m", "--twin"]
    )
    assert result.exit_code != 0 and "bc.plain.jsonl: no such records file" in result.output


def test_sft_yaml_section_is_in_the_schema_and_rejects_unknown_keys():
    from behavior_memory.config import config_schema, load_config_text
    from behavior_memory.errors import ConfigError

    assert "sft" in json.dumps(config_schema())
    assert load_config_text("sft:\n  method: full\n  max_steps: 3\n").sft == SFTConfig(method="full", max_steps=3)
    with pytest.raises(ConfigError, match="lora_rank"):
        load_config_text("sft:\n  lora_rank: 8\n")


def test_the_sft_modules_and_cli_load_no_torch_trl_or_peft():
    code = (
        "import sys, behavior_memory.sft.records, behavior_memory.sft.checks, behavior_memory.sft.twin, "
        "behavior_memory.sft.train, behavior_memory.cli.sft_cmd\n"
        "print(' '.join(m for m in sys.modules if m.split('.')[0] in ('torch', 'trl', 'peft', 'transformers', "
        "'datasets', 'accelerate')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_final_eval_loss_is_read_from_the_log_when_the_last_step_evaluated():
    from behavior_memory.sft.train import _final_eval_loss

    calls = []

    def evaluate():
        calls.append(1)
        return {"eval_loss": 9.0}

    logged = SimpleNamespace(global_step=6, log_history=[{"eval_loss": 2.0, "step": 3}, {"eval_loss": 1.5, "step": 6}])
    assert _final_eval_loss(SimpleNamespace(state=logged, evaluate=evaluate)) == 1.5 and calls == []
    stale = SimpleNamespace(global_step=7, log_history=logged.log_history)
    assert _final_eval_loss(SimpleNamespace(state=stale, evaluate=evaluate)) == 9.0 and calls == [1]


def test_serve_print_names_the_trained_folder_and_its_served_name(tmp_path, monkeypatch):
    from behavior_memory.serving import server

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(server, "has_nvidia_gpu", lambda: False)
    (tmp_path / "models" / "bc").mkdir(parents=True)
    args = ["serve", "--print", "--model", "models/bc", "--served-model-name", "bc-sft", "--port", "8123"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    # absolute: the server's working directory is the cache folder, where models/bc means nothing
    assert f"--model {(tmp_path / 'models' / 'bc').resolve()} " in result.output
    assert "--served-model-name bc-sft" in result.output
    assert "--chat-template" not in result.output  # the folder's own template (saved by `bmem sft train`)


def test_chat_template_choice(tmp_path, monkeypatch):
    from behavior_memory.cli.sft_cmd import _chat_template
    from behavior_memory.serving import embedded

    monkeypatch.setenv("BMEM_CACHE_DIR", str(tmp_path / "cache"))
    smol = embedded.model_dir(embedded.cache_dir())
    smol.mkdir(parents=True)
    assert _chat_template(None, smol) == embedded.chat_template_path().read_text()
    assert _chat_template(None, _base(tmp_path)) is None
    own = tmp_path / "t.jinja"
    own.write_text("{{ messages }}")
    assert _chat_template(str(own), smol) == "{{ messages }}"
