"""The `bmem` command, as a user types it (click's CliRunner, real files in a temp folder)."""

import json

import pytest
from click.testing import CliRunner

from behavior_memory.cli.main import cli


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    runner = CliRunner()

    def invoke(*args, input=None):
        return runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def initialised(run, tmp_path):
    result = run("init")
    assert result.exit_code == 0, result.output
    # keep the unit tests free of torch: the hashing embedder needs nothing
    cfg = tmp_path / "behavior-memory.yaml"
    cfg.write_text(cfg.read_text().replace("provider: sentence-transformers", "provider: hashing"))
    return run


def test_init_writes_a_valid_commented_config_with_the_store_beside_it(run, tmp_path):
    result = run("init")
    assert result.exit_code == 0
    text = (tmp_path / "behavior-memory.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=./behavior-memory.schema.json")
    assert "path: handbook.db" in text
    assert json.loads((tmp_path / "behavior-memory.schema.json").read_text())["type"] == "object"
    assert run("init").exit_code != 0  # never overwrites without --force
    check = run("config", "check")
    assert check.exit_code == 0 and str(tmp_path / "handbook.db") in check.output.replace("\n", "")


def test_behaviors_lifecycle(initialised, tmp_path):
    run = initialised
    assert (
        run(
            "behaviors",
            "add",
            "behavior_inclusion_exclusion",
            "Count a union by adding set sizes and subtracting overlaps.",
            "--topic",
            "counting",
        ).exit_code
        == 0
    )
    assert run("behaviors", "add", "behavior_angle_sum", "Triangle angles sum to 180 degrees.").exit_code == 0
    listing = run("behaviors", "list", "--json")
    assert [json.loads(line)["name"] for line in listing.output.splitlines()] == [
        "behavior_angle_sum",
        "behavior_inclusion_exclusion",
    ]
    shown = json.loads(run("behaviors", "show", "behavior_angle_sum").output)
    assert shown["instruction"] == "Triangle angles sum to 180 degrees."
    search = run("behaviors", "search", "count the union of sets with overlaps", "--render")
    assert "Here is a list of behaviors:" in search.output and "behavior_inclusion_exclusion:" in search.output
    export = run("behaviors", "export", "-o", "out.jsonl")
    assert export.exit_code == 0 and len((tmp_path / "out.jsonl").read_text().splitlines()) == 2
    assert run("behaviors", "rm", "behavior_angle_sum").exit_code == 0
    assert run("-n", "team-b", "behaviors", "import", "out.jsonl").exit_code == 0
    assert len(run("-n", "team-b", "behaviors", "list", "--json").output.splitlines()) == 2
    assert len(run("behaviors", "list", "--json").output.splitlines()) == 1


def test_import_with_broken_lines_reports_them_and_keeps_the_rest(initialised, tmp_path):
    (tmp_path / "in.jsonl").write_bytes(b'{"name": "behavior_good", "instruction": "ok"}\n{broken\n\xff\xfe\n')
    result = initialised("behaviors", "import", "in.jsonl")
    assert result.exit_code == 2
    assert "line 2" in result.output and "line 3" in result.output and "UTF-8" in result.output
    assert "imported 1" in result.output


def test_errors_are_one_clean_line_without_traceback(initialised, tmp_path):
    result = initialised("behaviors", "add", "bad_name", "x")
    assert result.exit_code == 1
    assert "error:" in result.output and "must start with 'behavior_'" in result.output
    assert "Traceback" not in result.output
    result = initialised("behaviors", "rm", "behavior_missing")
    assert result.exit_code == 1 and "no behavior 'behavior_missing'" in result.output


def test_config_check_names_key_and_line(run, tmp_path):
    (tmp_path / "bad.yaml").write_text("llm:\n  base_url: http://x/v1\n  modle: typo\n")
    result = run("config", "check", "bad.yaml")
    assert result.exit_code == 1
    assert "modle" in result.output and ":3" in result.output
    (tmp_path / "broken.yaml").write_text("llm: [unclosed\n")
    assert run("config", "check", "broken.yaml").exit_code == 1


def test_missing_config_given_explicitly_is_an_error(run):
    result = run("--config", "nope.yaml", "behaviors", "list")
    assert result.exit_code == 1 and "does not exist" in result.output


def test_config_schema_is_json_schema(run):
    schema = json.loads(run("config", "schema").output)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert {"llm", "store", "retrieval", "reflection", "embeddings"} <= set(schema["properties"])


def test_traces_list_and_show(initialised, tmp_path):
    from behavior_memory import BehaviorMemory

    with BehaviorMemory.from_yaml(tmp_path / "behavior-memory.yaml") as memory, memory.trace(task="What is 6*7?") as t:
        t.model_call(
            messages=[{"role": "user", "content": "6*7"}],
            output="42",
            usage={"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
        )
        t.finish(answer="42", outcome="success")
    listing = initialised("traces", "list", "--json")
    assert [json.loads(line)["id"] for line in listing.output.splitlines()] == [t.id]
    assert initialised("traces", "list").exit_code == 0
    shown = initialised("traces", "show", t.id)
    assert "What is 6*7?" in shown.output and "prompt 5" in shown.output
    as_json = json.loads(initialised("traces", "show", t.id, "--json").output)
    assert as_json["answer"] == "42"
