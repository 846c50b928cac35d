"""The CLI prints stored text literally and never writes an export over the handbook."""

import sqlite3

import pytest
from click.testing import CliRunner

from behavior_memory import BehaviorMemory
from behavior_memory.cli.render import plain, safe
from behavior_memory.store.sqlite import SQLiteStore

MARKUP = "[/bold] [link=https://evil.example]click[/link] [red]x"
CONTROLS = "\x1b[2J\x1b[H\x07\x9b31m\u202e"  # clear screen, home, bell, C1 CSI, right-to-left override
CONFIG = "store:\n  path: handbook.db\nembeddings:\n  provider: hashing\nreflection:\n  mode: manual\n"


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "behavior-memory.yaml").write_text(CONFIG)
    return tmp_path


@pytest.fixture
def run(folder):
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(cli_main(), list(args), catch_exceptions=False)

    return invoke


def cli_main():
    from behavior_memory.cli.main import cli

    return cli


def hostile_handbook(folder):
    """A real SQLite handbook whose stored text is markup and terminal control sequences."""
    with BehaviorMemory.from_yaml(folder / "behavior-memory.yaml") as memory:
        memory.handbook.add(  # forced past the guard: stored hostile text must still print literally
            "behavior_hostile", f"Say {MARKUP} {CONTROLS} loudly.", topic=f"t {MARKUP}\r{CONTROLS}", force=True
        )
        memory.handbook.add("behavior_other", "Keep the plain answer when it checks out.", namespace="team-b")
        with memory.trace(task=f"task {MARKUP}\r{CONTROLS}") as t:
            t.model_call(output=f"out {MARKUP} {CONTROLS}")
            t.tool_call(name=f"tool{MARKUP}", args={"a": MARKUP}, result=f"{MARKUP}{CONTROLS}")
            t.finish(answer=MARKUP, feedback=f"{MARKUP}{CONTROLS}")
        with memory.trace(task="another tenant's", namespace="team-b"):
            pass
    return t.id


def counts(folder):
    store = SQLiteStore(folder / "handbook.db")
    try:
        return store.count_behaviors(), store.count_traces(None)
    finally:
        store.close()


def assert_literal(output):
    assert "[/bold]" in output and "[link=https://evil.example]" in output
    for control in ("\x1b", "\r", "\x07", "\x9b", "\u202e"):
        assert control not in output, repr(control)


def test_plain_and_safe_show_controls_and_markup_literally():
    assert plain("a\x1b[2Jb\r\n\tc") == "a\\x1b[2Jb\\r\n\tc"
    assert plain("\u202eabc") == "\\u202eabc"
    assert safe("[/bold]\x07") == "\\[/bold]\\x07"


def test_stored_markup_and_controls_print_literally(folder, run):
    trace_id = hostile_handbook(folder)
    for args in (
        ("behaviors", "list"),
        ("behaviors", "search", f"say loudly {MARKUP}"),
        ("traces", "list"),
        ("traces", "show", trace_id),
    ):
        result = run(*args)
        assert result.exit_code == 0, (args, result.output)
        assert_literal(result.output)
        assert args[:2] == ("traces", "list") or "\\x1b" in result.output  # shown, not run (the list cuts tasks)
    block = run("behaviors", "search", "say loudly", "--render")
    assert block.exit_code == 0 and "\x1b" not in block.output and "\\x1b" not in block.output  # stripped
    removed = run("behaviors", "rm", "behavior_hostile")
    assert removed.exit_code == 0 and "behavior_hostile" in removed.output


def test_export_onto_the_handbook_is_refused_and_the_handbook_is_intact(folder, run):
    hostile_handbook(folder)
    before = counts(folder)
    assert before == (2, 2)
    for name in ("handbook.db", "./handbook.db", str(folder / "handbook.db"), "handbook.db-wal", "handbook.db-shm"):
        for extra in ((), ("--force",)):
            result = run("behaviors", "export", "-o", name, *extra)
            assert result.exit_code == 1, (name, result.output)
            assert "handbook's own database" in result.output and "nothing was written" in result.output
            assert "left untouched" not in result.output and "Traceback" not in result.output
    (folder / "link.db").symlink_to(folder / "handbook.db")
    assert run("behaviors", "export", "-o", "link.db").exit_code == 1
    assert counts(folder) == before
    assert run("behaviors", "list").output.count("behavior_hostile") == 1


def test_export_refuses_databases_and_existing_files_and_missing_folders(folder, run):
    hostile_handbook(folder)
    other = folder / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    before = other.read_bytes()
    refused = run("behaviors", "export", "-o", "other.db", "--force")
    assert refused.exit_code == 1 and "SQLite database" in refused.output and other.read_bytes() == before

    notes = folder / "notes.txt"
    notes.write_text("keep me")
    kept = run("behaviors", "export", "-o", "notes.txt")
    assert kept.exit_code == 1 and "--force" in kept.output and notes.read_text() == "keep me"
    assert run("behaviors", "export", "-o", "notes.txt", "--force").exit_code == 0
    assert '"behavior_hostile"' in notes.read_text()

    missing = run("behaviors", "export", "-o", "no/such/folder/out.jsonl")
    assert missing.exit_code == 1 and "Traceback" not in missing.output
    assert "folder" in missing.output and "does not exist" in missing.output
    assert len(missing.output.strip().splitlines()) == 1


def test_export_writes_whole_or_not_at_all(folder, run, monkeypatch):
    hostile_handbook(folder)
    written = run("behaviors", "export", "-o", "out.jsonl")
    assert written.exit_code == 0 and "exported 1 behaviors" in written.output
    assert (folder / "out.jsonl").read_text().count("\n") == 1

    from behavior_memory.handbook import Handbook

    def half(self, out, **kwargs):
        out.write('{"name": "behavior_half"')
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Handbook, "export_jsonl", half)
    (folder / "out.jsonl").write_text("previous export\n")
    failed = run("behaviors", "export", "-o", "out.jsonl", "--force")
    assert failed.exit_code == 1 and "No space left on device" in failed.output and "not changed" in failed.output
    assert (folder / "out.jsonl").read_text() == "previous export\n"
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".out")) == []  # no temporary file left
