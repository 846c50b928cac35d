"""`bmem review` and `bmem behaviors approve|reject|quarantine|edit|set-status`, as a person types them."""

from __future__ import annotations

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

    assert invoke("init").exit_code == 0
    cfg = tmp_path / "behavior-memory.yaml"
    cfg.write_text(cfg.read_text().replace("provider: sentence-transformers", "provider: hashing"))
    return invoke


def show(run, name):
    return json.loads(run("behaviors", "show", name).output)


def add(run, name, instruction, *extra):
    result = run("behaviors", "add", name, instruction, *extra)
    assert result.exit_code == 0, result.output
    return result


def test_review_walks_the_queue_and_records_each_decision(run):
    add(
        run,
        "behavior_check_units",
        "Check that both sides of an equation carry the same units.",
        "--status",
        "candidate",
    )
    add(run, "behavior_draw_a_figure", "Draw the figure before computing any angle.", "--status", "candidate")
    add(run, "behavior_count_overlaps", "Count overlaps once when adding the sizes of sets.", "--status", "candidate")
    result = run("review", input="a\nr\nnot useful here\ns\n")
    assert result.exit_code == 0, result.output
    assert "1 approve, 1 reject, 1 skipped" in result.output
    assert show(run, "behavior_check_units")["status"] == "active"
    rejected = show(run, "behavior_count_overlaps")  # the queue goes by name
    assert rejected["status"] == "archived"
    assert rejected["metadata"]["history"][-1]["reason"] == "not useful here"
    assert rejected["metadata"]["history"][-1]["by"].startswith("user:")
    assert show(run, "behavior_draw_a_figure")["status"] == "candidate"
    assert "nothing to review" not in result.output
    assert "nothing to review" in run("review", "--status", "quarantined").output


def test_markup_in_a_waiting_behavior_is_printed_as_text(run):
    add(
        run,
        "behavior_style_text",
        "Keep [bold]markup[/bold] and [link=x]links[/link] as typed text.",
        "--status",
        "candidate",
    )
    result = run("review", input="x\n")
    assert result.exit_code == 0, result.output
    assert "[bold]markup[/bold]" in result.output and "[link=x]links[/link]" in result.output


def test_approve_reject_quarantine_edit_and_set_status_commands(run):
    add(
        run,
        "behavior_check_units",
        "Check that both sides of an equation carry the same units.",
        "--status",
        "candidate",
    )
    assert "active" in run("behaviors", "approve", "behavior_check_units").output
    out = run("behaviors", "quarantine", "behavior_check_units", "--reason", "looks odd").output
    assert "quarantined" in out
    refused = CliRunner().invoke(cli, ["behaviors", "approve", "behavior_check_units"])
    assert refused.exit_code == 1 and "--force" in refused.output
    assert "active" in run("behaviors", "approve", "behavior_check_units", "--force").output
    assert (
        run("behaviors", "edit", "behavior_check_units", "--instruction", "Compare units on both sides.").exit_code == 0
    )
    assert show(run, "behavior_check_units")["instruction"] == "Compare units on both sides."
    assert "archived" in run("behaviors", "set-status", "behavior_check_units", "--status", "archived").output
    history = show(run, "behavior_check_units")["metadata"]["history"]
    assert [h.get("to") for h in history if h.get("to")] == ["active", "quarantined", "active", "archived"]
