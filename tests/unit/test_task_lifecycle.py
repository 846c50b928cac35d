"""The task lifecycle every adapter shares: registry, abandon sweep, quiet saves, capture, text rules."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig, Outcome
from behavior_memory.errors import InvalidInputError, NotFoundError
from behavior_memory.recording.namespaces import task_namespace
from behavior_memory.recording.tasks import TaskRegistry
from behavior_memory.recording.text import MAX_RECORDED_CHARS, clip, error_text, tool_call_line
from behavior_memory.types import normalize_trace_id


@pytest.fixture
def memory(tmp_path):
    cfg = BehaviorMemoryConfig.model_validate(
        {
            "store": {"path": str(tmp_path / "h.db")},
            "embeddings": {"provider": "hashing"},
            "reflection": {"mode": "manual"},
        }
    )
    with BehaviorMemory(cfg) as m:
        m.handbook.add("behavior_check_units", "Check that both sides of an equation have the same units.")
        yield m


def test_open_record_close_saves_one_trace_with_the_adapter_named(memory):
    seen = []
    registry = TaskRegistry(memory, adapter="test", on_trace=seen.append)
    task = registry.open("What is 6 * 7?", shown=["behavior_check_units"], state={"step": 0})
    assert registry.get(task.trace_id) is task and task.state == {"step": 0}
    task.recorder.model_call(output="By behavior_check_units, 42.")
    saved = registry.close(task.trace_id, answer="42")
    assert saved is not None and seen == [saved]
    stored = memory.store.get_trace(task.trace_id)
    assert stored.answer == "42" and stored.metadata["adapter"] == "test"
    assert stored.shown == ["behavior_check_units"] and stored.cited == ["behavior_check_units"]
    assert registry.open_ids == [] and registry.close(task.trace_id) is None  # closing twice saves nothing


def test_a_task_closed_with_an_error_is_a_failure_with_its_error_text(memory):
    registry = TaskRegistry(memory, adapter="test")
    task = registry.open("divide")
    registry.close(task.trace_id, error=ZeroDivisionError("division by zero"))
    stored = memory.store.get_trace(task.trace_id)
    assert stored.outcome == Outcome.FAILURE and stored.metadata["error"] == "ZeroDivisionError: division by zero"


def test_abandoned_tasks_are_saved_by_the_sweep_and_forgotten(memory):
    registry = TaskRegistry(memory, adapter="test", abandon_after_s=0.05)
    stale = registry.open("a run whose end never came")
    stale.recorder.tool_call(name="search", error="TimeoutError: slow")
    time.sleep(0.1)
    registry._next_sweep = 0.0  # the sweep runs at most once a minute; make this open() run it
    fresh = registry.open("a new task")
    assert registry.open_ids == [fresh.trace_id]
    stored = memory.store.get_trace(stale.trace_id)
    assert stored.metadata["ended"] == "abandoned" and stored.outcome == Outcome.FAILURE


def test_a_store_that_fails_to_save_never_raises_into_the_agent(memory, monkeypatch, caplog):
    registry = TaskRegistry(memory, adapter="test")
    task = registry.open("q")

    def broken(trace, **options):
        raise OSError("disk full")

    monkeypatch.setattr(memory.store, "save_trace", broken)
    assert registry.close(task.trace_id, answer="a") is None
    assert "could not save trace" in caplog.text


def test_capture_sees_traces_opened_in_threads_and_tasks_of_its_block(memory):
    with memory.capture() as outer:
        with memory.capture() as inner, memory.trace(task="direct"):
            pass
        thread = threading.Thread(target=lambda: memory.trace(task="in a thread").save())
        thread.start()
        thread.join()

    async def two_runs():
        async def run(task):
            with memory.capture() as mine:
                await asyncio.sleep(0)
                with memory.trace(task=task):
                    await asyncio.sleep(0)
            return mine.trace_id

        return await asyncio.gather(run("a"), run("b"))

    first, second = asyncio.run(two_runs())
    assert len(inner.trace_ids) == 1 and len(outer.trace_ids) == 1  # contextvars don't flow into a bare Thread
    assert first != second and memory.store.get_trace(first).task == "a"
    with memory.capture() as empty:
        pass
    with pytest.raises(NotFoundError, match="no trace was opened"):
        _ = empty.trace_id


def test_trace_ids_have_one_format(memory):
    dashed = uuid.uuid4()
    with memory.trace(task="q", trace_id=str(dashed)) as t:
        pass
    assert t.id == dashed.hex and len(t.id) == 32
    assert normalize_trace_id(dashed.hex.upper()) == dashed.hex
    with pytest.raises(InvalidInputError, match="not 32 hex digits"):
        normalize_trace_id("run-7")


def test_text_rules_are_the_same_for_everyone():
    long = "x" * (MAX_RECORDED_CHARS + 5)
    assert clip(long).endswith("[... 5 characters cut ...]") and clip("short") == "short"
    assert error_text(ValueError("bad\nsecond line")) == "ValueError: bad\nsecond line"
    assert error_text("Traceback...\n  File x") == "Traceback..." and error_text(None) is None
    assert tool_call_line("calc", {"b": 2, "a": 1}) == 'tool_call: calc({"a": 1, "b": 2})'
    assert tool_call_line("calc", '{"b": 2, "a": 1}') == 'tool_call: calc({"a": 1, "b": 2})'


def test_task_namespace_explicit_then_user_then_base():
    assert task_namespace("acme/bot", {"namespace": "other"}, {"user_id": "u"}) == "other"
    assert task_namespace("acme/bot", None, {"user_id": "alice"}) == "acme/bot/alice"
    assert task_namespace("acme/bot", {}, {}) == "acme/bot"
    with pytest.raises(InvalidInputError, match="cannot be a namespace segment"):
        task_namespace("acme/bot", {"user_id": "a b"})
