"""The facade users hold: retrieve, render, trace, citations, feedback, namespaces."""

import threading

import pytest

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig, Outcome, ReflectionStatus


@pytest.fixture
def memory(tmp_path):
    cfg = BehaviorMemoryConfig.model_validate(
        {
            "store": {"path": str(tmp_path / "h.db")},
            "embeddings": {"provider": "hashing"},
            "reflection": {"mode": "manual"},
        }
    )
    m = BehaviorMemory(cfg)
    m.handbook.add(
        "behavior_inclusion_exclusion", "Count a union by adding set sizes and subtracting overlaps.", topic="counting"
    )
    m.handbook.add("behavior_angle_sum", "The interior angles of a triangle sum to 180 degrees.", topic="geometry")
    yield m
    m.close()


def test_retrieve_and_render_for_a_query(memory):
    hits = memory.retrieve("How many integers below 100 are divisible by 3 or 5? count union overlaps", k=5)
    assert hits and hits[0].behavior.name == "behavior_inclusion_exclusion"
    block = memory.render(hits)
    assert "behavior_inclusion_exclusion: Count a union" in block


def test_trace_is_saved_with_steps_usage_and_counters(memory):
    hits = memory.retrieve("count the union of two sets with overlaps", k=5)
    with memory.trace(task="count things", namespace="default", hits=hits) as t:
        t.model_call(
            messages=[{"role": "user", "content": "q"}],
            output="By behavior_inclusion_exclusion we get 47. behavior_invented says hi",
            usage={"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
            reasoning="hmm",
        )
        t.tool_call(name="calculator", args={"expr": "33+20-6"}, result=47)
        t.finish(answer="47", outcome="success")
    saved = memory.traces.get(t.id)
    assert [s.kind for s in saved.steps] == ["model", "tool"]
    assert saved.steps[1].result == "47" and saved.usage.total_tokens == 21
    assert saved.cited == ["behavior_inclusion_exclusion"]  # invented names do not count
    assert saved.reflection_status == ReflectionStatus.PENDING
    b = memory.handbook.get("behavior_inclusion_exclusion")
    assert b.cited == 1 and b.shown == 1


def test_a_task_that_raises_is_still_saved_as_failure(memory):
    with pytest.raises(RuntimeError), memory.trace(task="boom") as t:
        t.model_call(output="partial")
        raise RuntimeError("tool exploded")
    saved = memory.traces.get(t.id)
    assert saved.outcome == Outcome.FAILURE and "tool exploded" in saved.metadata["error"]


def test_citations_only_know_the_namespace(memory):
    assert memory.citations("behavior_angle_sum and behavior_nope") == ["behavior_angle_sum"]
    assert memory.citations("behavior_angle_sum", namespace="other") == []


def test_feedback_moves_helped_or_hurt(memory):
    with memory.trace(task="t") as t:
        t.model_call(output="behavior_angle_sum gives 60")
    memory.feedback(t.id, outcome="success", score=1.0, comment="right")
    assert memory.handbook.get("behavior_angle_sum").helped == 1
    saved = memory.feedback(t.id, outcome="failure")
    assert saved.outcome == Outcome.FAILURE and saved.feedback == "right"
    assert memory.handbook.get("behavior_angle_sum").hurt == 1


def test_namespaces_isolate_retrieval(memory):
    memory.handbook.add("behavior_private", "Only for team b: count a union carefully.", namespace="team-b")
    assert all(h.behavior.namespace == "default" for h in memory.retrieve("count a union", k=10))
    assert [h.behavior.name for h in memory.retrieve("count a union", k=10, namespace="team-b")] == ["behavior_private"]


def test_reflection_off_marks_traces_skipped(tmp_path):
    cfg = BehaviorMemoryConfig.model_validate(
        {
            "store": {"path": str(tmp_path / "h.db")},
            "embeddings": {"provider": "hashing"},
            "reflection": {"mode": "off"},
        }
    )
    with BehaviorMemory(cfg) as m, m.trace(task="t") as t:
        pass
    with BehaviorMemory(cfg) as m:
        assert m.traces.get(t.id).reflection_status == ReflectionStatus.SKIPPED


def test_concurrent_traces_never_mix(memory):
    def run(i):
        with memory.trace(task=f"task {i}") as t:
            for j in range(5):
                t.model_call(output=f"{i}:{j}")
        ids[i] = t.id

    ids = {}
    threads = [threading.Thread(target=run, args=(i,)) for i in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for i, trace_id in ids.items():
        outputs = [s.output for s in memory.traces.get(trace_id).steps]
        assert outputs == [f"{i}:{j}" for j in range(5)]
