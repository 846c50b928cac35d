"""``memory.traces``: get by any UUID spelling, list and count per namespace, feedback moves counters once."""

import uuid

import pytest

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig
from behavior_memory.errors import NotFoundError
from behavior_memory.store.in_memory import InMemoryStore
from behavior_memory.types import Outcome, ReflectionStatus


@pytest.fixture
def memory():
    cfg = BehaviorMemoryConfig.model_validate({"embeddings": {"provider": "hashing"}, "reflection": {"mode": "manual"}})
    with BehaviorMemory(cfg, store=InMemoryStore()) as m:
        m.handbook.add("behavior_angle_sum", "The interior angles of a triangle sum to 180 degrees.")
        yield m


def record(memory, task, *, namespace=None, output="no citation"):
    with memory.trace(task=task, namespace=namespace) as t:
        t.model_call(output=output)
    return t.id


def test_get_accepts_any_uuid_spelling(memory):
    trace_id = record(memory, "here")
    assert memory.traces.get(str(uuid.UUID(trace_id))).task == "here"
    assert [s.output for s in memory.traces.get(trace_id).steps] == ["no citation"]
    with pytest.raises(NotFoundError):
        memory.traces.get(uuid.uuid4().hex)


def test_list_and_count_are_scoped_to_the_namespace_unless_asked(memory):
    first = record(memory, "first")
    second = record(memory, "second")
    record(memory, "elsewhere", namespace="team-b")
    memory.store.update_trace_fields(first, reflection_status=ReflectionStatus.DONE)
    assert {t.id for t in memory.traces.list()} == {first, second}
    assert [t.task for t in memory.traces.list(namespace="team-b")] == ["elsewhere"]
    assert len(memory.traces.list(all_namespaces=True)) == 3
    assert [t.id for t in memory.traces.list(status="done")] == [first]
    assert (memory.traces.count(), memory.traces.count(all_namespaces=True)) == (2, 3)
    assert memory.traces.count(status=ReflectionStatus.PENDING, all_namespaces=True) == 2


def test_feedback_moves_counters_only_when_the_outcome_changes(memory):
    trace_id = record(memory, "angles", output="by behavior_angle_sum: 60")
    saved = memory.traces.feedback(trace_id, outcome="success", score=0.9, comment="right")
    assert (saved.outcome, saved.score, saved.feedback) == (Outcome.SUCCESS, 0.9, "right")
    memory.traces.feedback(trace_id, outcome=Outcome.SUCCESS)  # the same outcome again: nothing moves
    assert memory.handbook.get("behavior_angle_sum").helped == 1
    saved = memory.feedback(trace_id, outcome="failure")
    assert saved.outcome == Outcome.FAILURE and saved.feedback == "right" and saved.score == 0.9
    b = memory.handbook.get("behavior_angle_sum")
    assert (b.helped, b.hurt) == (1, 1)
