"""Acceptance: traces saved while the model server is unwell are all reflected once it recovers.

Real SQLite files in tmp_path, a real BehaviorMemory configured against the fake server, and
the ``bmem reflect`` command as a user types it. The outages are seconds long, the timeouts and
backoffs scaled down to match; ``bench/bench_faults.py`` runs the full-size scenarios.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from fake_openai import FakeOpenAI, Fault
from scenario import memory_config, run_outage, save_traces, statuses

from behavior_memory import ReflectionStatus
from behavior_memory.cli.main import cli


@pytest.mark.parametrize(
    ("fault", "outage_s"),
    [(Fault("status", status=500), 4.0), (Fault("html", status=200), 3.0)],
    ids=["500s", "html"],
)
def test_fifty_traces_ride_out_an_outage(fake: FakeOpenAI, make_memory: Any, fault: Fault, outage_s: float) -> None:
    memory = make_memory(reflection={"mode": "background"})
    memory.worker.base_backoff_s, memory.worker.max_backoff_s = 0.1, 0.5  # scaled down like the timeouts
    report = run_outage(fake, memory, name="test", traces=50, fault=fault, outage_s=outage_s, deadline_s=20.0)
    assert not report.timed_out, report
    assert report.statuses["done"] == 50 and report.statuses["failed"] == 0, report.statuses
    assert report.behaviors == 50
    faulted = sum(count for answered, count in report.answered.items() if answered != "ok")
    assert faulted >= 5, report.answered  # the outage was met, not missed
    for trace in memory.traces.list(all_namespaces=True, limit=100):
        assert len(trace.minted) == 1 and trace.reflection_attempts <= 1, trace


def test_reflect_pending_stops_at_an_outage_and_uses_no_attempt(fake: FakeOpenAI, make_memory: Any) -> None:
    memory = make_memory()
    save_traces(memory, 10)
    fake.fail(Fault("status", status=503))
    outcomes = memory.reflect_pending()
    assert set(outcomes) == {"server_down"} and outcomes["server_down"] <= 4  # stopped after one batch
    assert statuses(memory)["pending"] == 10
    waiting = memory.traces.list(all_namespaces=True)
    assert all(t.reflection_attempts == 0 for t in waiting)
    assert any("HTTP 503" in (t.reflection_error or "") for t in waiting)  # the reason is kept
    fake.heal()
    time.sleep(memory.llm.config.breaker_cooldown_s + 0.05)  # the circuit opened: its probe may pass now
    outcomes = memory.reflect_pending()
    assert outcomes["minted"] == 10 and statuses(memory)["done"] == 10
    # The probe's answer reopened the road: the batch's fail-fast traces were retried in the same call.
    assert outcomes["server_down"] <= 3


def _bmem(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["-c", str(config), *args], catch_exceptions=False)


def _write_config(path: Path, fake: FakeOpenAI, tmp_path: Path, **sections: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(memory_config(fake.url, tmp_path, **sections)))
    return path


def test_retry_failed_requeues_what_was_chosen_and_reflects_it(
    fake: FakeOpenAI, make_memory: Any, tmp_path: Path
) -> None:
    memory = make_memory(reflection={"max_attempts": 1})
    ids = save_traces(memory, 5)
    fake.fail(Fault("invalid"))  # the model's fault: these attempts count
    assert memory.reflect_pending() == {"failed": 5}
    memory.close()
    fake.heal()
    config = _write_config(tmp_path / "bm.yaml", fake, tmp_path, reflection={"max_attempts": 1})

    result = _bmem(config, "reflect")
    assert result.exit_code == 0 and "no traces to reflect" in result.output
    result = _bmem(config, "reflect", "--retry-failed", "--older-than", "1h")
    assert "re-queued 0 failed trace(s)" in result.output and "created more than 1:00:00 ago" in result.output
    result = _bmem(config, "reflect", "--retry-failed", "--reason", "no such reason")
    assert "re-queued 0 failed trace(s)" in result.output
    result = _bmem(config, "reflect", "--retry-failed", "--reason", "does not match the schema")
    assert result.exit_code == 0, result.output
    assert "re-queued 5 failed trace(s)" in result.output and "reflected 5 traces: 5 minted" in result.output

    again = make_memory(reflection={"max_attempts": 1})
    assert statuses(again)["done"] == 5
    assert all(len(again.traces.get(trace_id).minted) == 1 for trace_id in ids)


def test_reason_and_age_need_retry_failed(fake: FakeOpenAI, tmp_path: Path) -> None:
    config = _write_config(tmp_path / "bm.yaml", fake, tmp_path)
    result = CliRunner().invoke(cli, ["-c", str(config), "reflect", "--reason", "x"])
    assert result.exit_code == 2 and "--retry-failed" in result.output
    result = CliRunner().invoke(cli, ["-c", str(config), "reflect", "--retry-failed", "--older-than", "soon"])
    assert result.exit_code == 2 and "not an age" in result.output


def test_the_cli_says_traces_stay_pending_while_the_server_is_down(
    fake: FakeOpenAI, make_memory: Any, tmp_path: Path
) -> None:
    memory = make_memory()
    save_traces(memory, 3)
    memory.close()
    fake.fail(Fault("drop"))
    config = _write_config(tmp_path / "bm.yaml", fake, tmp_path)
    result = CliRunner().invoke(cli, ["-c", str(config), "reflect"])
    assert result.exit_code == 1
    assert "is unavailable (" in result.output and "cannot reach the model server" in result.output
    assert "the remaining 3 trace(s) stay pending with their attempts intact" in result.output
    assert statuses(make_memory())[str(ReflectionStatus.PENDING)] == 3
