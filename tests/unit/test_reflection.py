"""Reflection parsing, curation and failure handling, with a scripted client (no server)."""

import pytest

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig, ReflectionStatus, Step, Trace
from behavior_memory.errors import (
    LLMBadResponseError,
    LLMConnectionError,
    LLMOutputError,
    LLMStatusError,
    LLMTimeoutError,
    LLMTruncatedError,
)
from behavior_memory.llm.client import ChatResult
from behavior_memory.llm.config import LLMConfig
from behavior_memory.reflection.reflector import ExtractedBehavior, Extraction, Reflector, render_solution
from behavior_memory.reflection.worker import ReflectionWorker, TraceResult


class ScriptedClient:
    """Plays the model: a fixed reflection text, then a fixed extraction (or an error)."""

    def __init__(self, behaviors=(), error=None):
        self.config = LLMConfig(model="scripted")
        self.behaviors = list(behaviors)
        self.error = error
        self.calls = 0

    def close(self):
        pass

    def _result(self, content):
        return ChatResult(content=content, model="scripted", latency_s=0.0)

    def chat(self, messages, **kw):
        self.calls += 1
        if self.error:
            raise self.error
        return self._result("(a) fine (b) none (c) " + "; ".join(f"{n}: {i}" for n, i in self.behaviors))

    def chat_json(self, messages, schema, **kw):
        self.calls += 1
        extraction = Extraction.model_construct(
            behaviors=[ExtractedBehavior.model_construct(name=n, instruction=i) for n, i in self.behaviors]
        )
        return extraction, self._result("{}")


@pytest.fixture
def memory(tmp_path):
    cfg = BehaviorMemoryConfig.model_validate(
        {
            "store": {"path": str(tmp_path / "h.db")},
            "embeddings": {"provider": "hashing"},
            "reflection": {"mode": "manual", "max_attempts": 2},
        }
    )
    m = BehaviorMemory(cfg)
    yield m
    m.close()


def _use(memory, client):
    memory._llm = client
    memory._reflection = None


def _saved_trace(memory, task="What is 17 * 3?", topic=None):
    with memory.trace(task=task, topic=topic) as t:
        t.model_call(output="17 * 3 = 51", usage={"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9})
        t.finish(answer="51", outcome="success")
    return t.id


def test_minted_behaviors_carry_provenance_and_reflection_is_idempotent(memory):
    _use(
        memory,
        ScriptedClient(
            [
                ("behavior_distribute_products", "Split a product into easy parts and add."),
                ("Behavior Check Units", "Check units at the end."),
            ]
        ),
    )
    trace_id = _saved_trace(memory, topic="arithmetic")
    assert memory.reflect_pending() == {"minted": 1}
    b = memory.handbook.get("behavior_check_units")  # normalised from the model's spelling
    assert b.sources == [trace_id] and b.model == "scripted" and b.topic == "arithmetic"
    trace = memory.traces.get(trace_id)
    assert trace.reflection_status == ReflectionStatus.DONE
    assert sorted(trace.minted) == ["behavior_check_units", "behavior_distribute_products"]
    assert memory.reflect_trace(trace_id) == TraceResult.ALREADY
    assert memory.handbook.count() == 2


def test_near_duplicate_merges_into_existing_behavior(memory):
    existing = memory.handbook.add("behavior_split_products", "Split a product into easy parts and add them.")
    _use(memory, ScriptedClient([("behavior_split_products_again", "Split a product into easy parts and add them.")]))
    trace_id = _saved_trace(memory)
    memory.reflect_pending()
    assert memory.handbook.count() == 1
    merged = memory.handbook.get(existing.id)
    assert merged.sources == [trace_id] and merged.version == 2
    assert memory.traces.get(trace_id).minted == ["behavior_split_products"]


def test_invalid_names_are_dropped_with_a_reason(memory):
    _use(memory, ScriptedClient([("!!!", "Nothing."), ("behavior_ok_one", "Keep every step short and clear.")]))
    trace_id = _saved_trace(memory)
    memory.reflect_pending()
    trace = memory.traces.get(trace_id)
    assert trace.minted == ["behavior_ok_one"] and "dropped '!!!'" in trace.reflection_error


def test_empty_reflection_is_done_with_a_note(memory):
    _use(memory, ScriptedClient([]))
    trace_id = _saved_trace(memory)
    assert memory.reflect_pending() == {"empty": 1}
    trace = memory.traces.get(trace_id)
    assert trace.reflection_status == ReflectionStatus.DONE and "no valid behavior" in trace.reflection_error


def test_server_down_keeps_trace_pending_without_using_attempts(memory):
    _use(memory, ScriptedClient(error=LLMConnectionError("connection refused", base_url="http://127.0.0.1:9/v1")))
    trace_id = _saved_trace(memory)
    assert memory.reflect_pending() == {"server_down": 1}
    trace = memory.traces.get(trace_id)
    assert trace.reflection_status == ReflectionStatus.PENDING
    assert trace.reflection_attempts == 0 and "127.0.0.1:9" in trace.reflection_error
    _use(memory, ScriptedClient([("behavior_back_online", "Retry when the server returns.")]))
    assert memory.reflect_pending() == {"minted": 1}


def test_bad_output_is_retried_then_failed_with_the_reason(memory):
    _use(memory, ScriptedClient(error=LLMOutputError("output did not match the schema")))
    trace_id = _saved_trace(memory)
    assert memory.reflect_pending() == {"retry": 1, "failed": 1}
    trace = memory.traces.get(trace_id)
    assert trace.reflection_status == ReflectionStatus.FAILED and "schema" in trace.reflection_error


def test_long_traces_lose_their_middle_not_their_end():
    steps = [Step(kind="model", output=f"line {i} " + "word " * 50) for i in range(200)]
    trace = Trace(task="long", steps=steps, answer="THE-END")
    text = render_solution(trace, max_tokens=500)
    assert "omitted" in text and "line 0" in text and "Final answer: THE-END" in text
    assert len(text) < len("".join(s.output for s in steps)) / 5


def test_outcome_and_feedback_reach_the_prompt():
    client = ScriptedClient()
    trace = Trace(task="t", outcome="failure", feedback="the answer was 12, not 13")
    messages = Reflector(client).reflection_messages(trace)
    assert "failure" in messages[-1]["content"] and "not 13" in messages[-1]["content"]


def test_implausible_candidates_are_dropped_with_a_reason(memory):
    _use(
        memory,
        ScriptedClient(
            [
                ("behavior_120", "A number name is not a behavior."),
                ("behavior_symbols", '{"";"* |^$%@*-~+={}()<>?::'),
                ("behavior_keep_units", "Write the unit next to every number you compute."),
            ]
        ),
    )
    trace_id = _saved_trace(memory)
    memory.reflect_pending()
    trace = memory.traces.get(trace_id)
    assert trace.minted == ["behavior_keep_units"]
    assert "no word" in trace.reflection_error and "not a sentence" in trace.reflection_error


def test_extraction_schema_stays_within_what_xgrammar_compiles():
    """vLLM sends a string with both a pattern and length bounds to its "guidance" backend, and that
    choice sticks for the whole engine (tool_choice="required" then fails); keep them apart."""
    from behavior_memory.reflection.reflector import extraction_schema

    schema = extraction_schema(1, 5).model_json_schema()
    strings = [p for d in schema["$defs"].values() for p in d["properties"].values() if p.get("type") == "string"]
    assert strings
    for prop in strings:
        assert not ("pattern" in prop and ({"minLength", "maxLength"} & set(prop)))
    assert all(d.get("additionalProperties") is False for d in schema["$defs"].values())


@pytest.mark.parametrize(
    "error",
    [
        LLMStatusError("engine restarting", base_url="http://x/v1", status=503),
        LLMStatusError("model not loaded yet", base_url="http://x/v1", status=404),
        LLMStatusError("slow down", base_url="http://x/v1", status=429),
        LLMBadResponseError("an HTML page instead of a chat completion", base_url="http://x/v1"),
        LLMTimeoutError("no answer within 60s", base_url="http://x/v1"),
    ],
    ids=["503", "404", "429", "html", "timeout"],
)
def test_a_transient_fault_never_uses_an_attempt(memory, error):
    _use(memory, ScriptedClient(error=error))
    trace_id = _saved_trace(memory)
    for _ in range(4):  # more rounds than max_attempts (2): the trace still waits
        assert memory.reflect_pending() == {"server_down": 1}
    trace = memory.traces.get(trace_id)
    assert trace.reflection_status == ReflectionStatus.PENDING and trace.reflection_attempts == 0
    assert str(error) == trace.reflection_error


@pytest.mark.parametrize(
    "error",
    [
        LLMTruncatedError("cut off at max_tokens=400", base_url="http://x/v1"),
        LLMStatusError("max_tokens is too large", base_url="http://x/v1", status=400),
    ],
    ids=["truncated", "400"],
)
def test_the_models_answers_and_bad_requests_use_up_attempts(memory, error):
    _use(memory, ScriptedClient(error=error))
    trace_id = _saved_trace(memory)
    assert memory.reflect_pending() == {"retry": 1, "failed": 1}
    trace = memory.traces.get(trace_id)
    assert trace.reflection_status == ReflectionStatus.FAILED and trace.reflection_attempts == 2


def test_process_never_raises_and_keeps_the_reason(memory):
    _use(memory, ScriptedClient(error=RuntimeError("a bug in a prompt template")))
    trace_id = _saved_trace(memory)
    assert memory.reflect_pending() == {"retry": 1, "failed": 1}
    assert "RuntimeError: a bug" in memory.traces.get(trace_id).reflection_error


def test_reflect_trace_counts_an_attempt_a_server_fault_gives_back(memory):
    trace_id = _saved_trace(memory)
    _use(memory, ScriptedClient(error=LLMConnectionError("refused", base_url="http://x/v1")))
    assert memory.reflect_trace(trace_id) == TraceResult.SERVER_DOWN
    assert memory.traces.get(trace_id).reflection_attempts == 0
    _use(memory, ScriptedClient(error=LLMOutputError("no JSON object found")))
    assert memory.reflect_trace(trace_id) == TraceResult.RETRY
    assert memory.traces.get(trace_id).reflection_attempts == 1


def test_worker_backoff_doubles_within_its_cap_with_jitter(memory):
    worker = ReflectionWorker(memory.reflection, base_backoff_s=1.0, max_backoff_s=8.0)
    waits = {rounds: [worker.backoff_s(rounds) for _ in range(200)] for rounds in (1, 2, 3, 4, 10)}
    for rounds, cap in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 8.0)):
        assert all(cap / 2 <= w <= cap for w in waits[rounds])
        assert len({round(w, 6) for w in waits[rounds]}) > 100  # jittered, not one value
