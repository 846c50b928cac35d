"""Acceptance: ``bmem reflect`` killed with SIGKILL mid-batch; the next run reflects every trace, once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from fake_openai import FakeOpenAI
from scenario import memory_config, save_traces, statuses

from behavior_memory.cli.main import cli

LEASE_S = 1.0


def _bmem_command() -> list[str]:
    """``bmem`` as installed beside this Python (the console script), else the same entry point."""
    script = Path(sys.executable).with_name("bmem")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from behavior_memory.cli.main import main; main()"]


def _wait_until(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.mark.parametrize(
    ("traces", "answers_before_kill"),
    [(12, 5), (2, 0)],
    ids=["mid-batch", "every-trace-claimed"],  # the second: nothing pending, only expired claims
)
def test_killed_reflect_is_resumed_after_the_lease_and_mints_once(
    fake: FakeOpenAI, make_memory: Any, tmp_path: Path, traces: int, answers_before_kill: int
) -> None:
    memory = make_memory()
    ids = save_traces(memory, traces)
    memory.close()
    config = tmp_path / "behavior-memory.yaml"
    sections = {"reflection": {"lease_s": LEASE_S, "concurrency": 2}}
    config.write_text(yaml.safe_dump(memory_config(fake.url, tmp_path, **sections)))
    command = [*_bmem_command(), "-c", str(config), "reflect"]

    fake.answer_delay_s = 0.2  # slow answers: the kill lands while traces are claimed
    doomed = subprocess.Popen([*command, "-j", "2"], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_until(
            lambda: fake.count("ok") >= answers_before_kill and fake.in_flight > 0, 60, "the first run to be mid-batch"
        )
        os.kill(doomed.pid, signal.SIGKILL)
    finally:
        doomed.wait(10)
    assert doomed.returncode == -signal.SIGKILL

    memory = make_memory()
    left = statuses(memory)
    assert left["running"] >= 1 and left["failed"] == 0, left  # claims orphaned mid-batch
    assert left["done"] >= (1 if answers_before_kill else 0), left
    if not answers_before_kill:  # nothing pending: a claim within its lease is left alone, and said so
        assert left["pending"] == 0, left
        patient = tmp_path / "patient.yaml"
        patient.write_text(yaml.safe_dump(memory_config(fake.url, tmp_path, reflection={"lease_s": 600})))
        early = CliRunner().invoke(cli, ["-c", str(patient), "reflect"], catch_exceptions=False)
        assert f"no traces to reflect now; {left['running']} trace(s) are claimed" in early.output, early.output
    time.sleep(LEASE_S + 0.1)
    assert memory.store.count_claimable(lease_s=LEASE_S) == traces - left["done"]

    fake.answer_delay_s = 0.0
    second = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert second.returncode == 0, second.stderr
    assert f"reflected {traces - left['done']} traces" in second.stdout, second.stdout

    assert statuses(memory)["done"] == traces
    behaviors = memory.handbook.list()
    assert len(behaviors) == traces
    minted = {trace_id: memory.traces.get(trace_id).minted for trace_id in ids}
    assert all(len(names) == 1 for names in minted.values()), minted
    sources = sorted(source for b in behaviors for source in b.sources)
    assert sources == sorted(ids)  # every trace is the source of exactly one behavior, once
