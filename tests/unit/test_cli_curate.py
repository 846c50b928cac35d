"""`bmem curate`, `bmem behaviors utility` and the scores of `bmem behaviors show`, over a real SQLite handbook."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from behavior_memory import BehaviorMemory
from behavior_memory.cli.main import cli
from behavior_memory.types import Behavior, BehaviorStatus, Outcome

CONFIG = """\
store: {path: handbook.db}
embeddings: {provider: hashing}
reflection: {mode: manual}
curation:
  lifecycle: {stale_after_tasks: 3, utility_min_samples: 5}
"""


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "behavior-memory.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def run(config: Path) -> Any:
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        return runner.invoke(cli, ["-c", str(config), *args], catch_exceptions=False)

    return invoke


def _put(m: BehaviorMemory, name: str, instruction: str, **fields: Any) -> None:
    behavior = Behavior(name=name, instruction=instruction, namespace=m.namespace, **fields)
    assert m.embedder is not None
    m.store.put_behavior(behavior, m.embedder.embed([behavior.text])[0])


def _task(m: BehaviorMemory, text: str, *, shown: tuple[str, ...] = (), **kwargs: Any) -> None:
    outcome = kwargs.pop("outcome", Outcome.UNKNOWN)
    with m.trace(text, hits=shown, **kwargs) as t:
        t.finish(answer="done", outcome=outcome)


@pytest.fixture
def handbook(config: Path) -> Path:
    """Twins to merge, one unused behavior, one with markup in its text, and some tasks."""
    with BehaviorMemory.from_yaml(config) as m:
        _put(m, "behavior_union_count", "Count a union by adding the set sizes and subtracting the overlaps.", helped=2)
        _put(m, "behavior_count_union", "Count a union by adding the set sizes and then subtracting the overlaps.")
        _put(m, "behavior_angle_sum", "The interior angles of a triangle sum to [bold]180[/bold] degrees.")
        for i in range(3):
            _task(m, f"task {i}", shown=("behavior_union_count",))
    return config


def test_curate_dry_run_prints_the_changes_and_writes_nothing(run: Any, handbook: Path) -> None:
    result = run("curate", "--dry-run")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "3 changes in 'default' (dry run: nothing written)" in out
    assert "merged into behavior_union_count" in out and "unused for 3 tasks (limit 3)" in out
    assert "active -> stale" in out and "active -> archived" in out
    listing = [json.loads(line) for line in run("behaviors", "list", "--json").output.splitlines()]
    assert {b["status"] for b in listing} == {"active"}


def test_curate_writes_and_then_has_nothing_left_to_do(run: Any, handbook: Path) -> None:
    assert run("curate").exit_code == 0
    shown = json.loads(run("behaviors", "show", "behavior_count_union").output)
    assert shown["status"] == "archived"
    assert shown["metadata"]["history"][-1]["merged_into"] == "behavior_union_count"
    assert json.loads(run("behaviors", "show", "behavior_angle_sum").output)["status"] == "stale"
    again = run("curate", "--all-namespaces")
    assert again.exit_code == 0 and "curation changed nothing in every namespace" in again.output


def test_stored_text_with_markup_prints_literally(run: Any, config: Path) -> None:
    with BehaviorMemory.from_yaml(config) as m:
        _put(m, "behavior_markup", "Say [link=http://x]this[/link] and [bold]that[/bold].", hurt=9)
    result = run("curate")
    assert result.exit_code == 0, result.output
    assert "behavior_markup" in result.output and "hurt 9 of 9" in result.output


def test_behaviors_show_has_the_lifecycle_scores(run: Any, handbook: Path) -> None:
    scores = json.loads(run("behaviors", "show", "behavior_union_count").output)["scores"]
    assert scores["helped"] == 2 and scores["evidence"] == 2 and scores["helped_rate"] == 1.0
    assert 0 < scores["helpfulness"] < 1 and scores["harm"] == 0.0
    assert scores["citation_rate"] == 0.0  # shown 3 times, never cited


def test_utility_table_and_json(run: Any, config: Path) -> None:
    with BehaviorMemory.from_yaml(config) as m:
        _put(m, "behavior_check_units", "Check the units of every quantity before you add them.")
        _put(m, "behavior_rarely_seen", "Draw a diagram first.")
        for i in range(6):
            _task(m, f"shown {i}", shown=("behavior_check_units",), metadata={"withheld": []}, outcome="success")
            _task(m, f"held {i}", metadata={"withheld": ["behavior_check_units"]}, outcome="failure")
        _task(m, "one", metadata={"withheld": ["behavior_rarely_seen"]}, outcome="success")
    table = run("behaviors", "utility")
    assert table.exit_code == 0, table.output
    assert "Measured utility in 'default' (13 traces of the experiment)" in table.output
    assert "+100.0 pts" in table.output and "raises success" in table.output
    assert "not enough data" in table.output
    lines = run("behaviors", "utility", "--json", "--min-samples", "7").output.splitlines()
    rows = [json.loads(line) for line in lines]
    first = rows[0]
    assert first["name"] == "behavior_check_units" and (first["n_shown"], first["n_withheld"]) == (6, 6)
    assert first["success_effect"]["estimate"] == 1.0 and first["token_effect"] is None
    assert first["verdict"] == "not enough data"  # 7 per arm asked for


def test_utility_without_the_experiment_says_how_to_start_it(run: Any, handbook: Path) -> None:
    result = run("behaviors", "utility")
    assert result.exit_code == 0
    assert "no measured behaviors" in result.output and "withhold_epsilon" in result.output


def test_curate_is_listed_in_the_help(run: Any) -> None:
    assert "curate" in run("--help").output
    assert "utility" in run("behaviors", "--help").output


def test_statuses_untouched_by_a_dry_run_in_every_namespace(run: Any, config: Path) -> None:
    with BehaviorMemory.from_yaml(config) as m:
        for ns in ("team-a", "team-b"):
            m.store.put_behavior(Behavior(name="behavior_gone", instruction="x", namespace=ns, hurt=9))
    result = run("curate", "--dry-run", "--all-namespaces")
    assert result.exit_code == 0 and "2 changes in every namespace" in result.output
    assert "team-a" in result.output and "team-b" in result.output
    with BehaviorMemory.from_yaml(config) as m:
        assert m.store.get_behavior("team-a", "behavior_gone").status == BehaviorStatus.ACTIVE
