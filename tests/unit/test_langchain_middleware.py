"""BehaviorMiddleware in a real ``create_agent`` graph with a scripted model (no network)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass

import pytest
import pytest_socket
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from test_langchain_fakes import ScriptedChatModel

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig, Outcome
from behavior_memory.adapters.langchain import BehaviorMiddleware
from behavior_memory.errors import InvalidInputError, LLMConnectionError
from behavior_memory.recording.text import MAX_RECORDED_CHARS

BASE = "You are a careful calculator agent."


@pytest.fixture(autouse=True)
def _no_network():
    pytest_socket.disable_socket(allow_unix_socket=True)  # asyncio's self-pipe is a unix socketpair
    yield
    pytest_socket.enable_socket()


@pytest.fixture
def memory(tmp_path):
    cfg = BehaviorMemoryConfig.model_validate(
        {
            "store": {"path": str(tmp_path / "h.db")},
            "embeddings": {"provider": "hashing"},
            "retrieval": {"strategy": "lexical"},
            "reflection": {"mode": "manual"},
        }
    )
    m = BehaviorMemory(cfg)
    m.handbook.add("behavior_add_in_parts", "Add two numbers by adding tens and units separately.")
    m.handbook.add("behavior_check_sum", "Check a sum by subtracting one addend from the result.")
    yield m
    m.close()


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def broken(a: int) -> int:
    """A tool that always fails."""
    raise ValueError("tool exploded")


def agent_for(memory, model=None, tools=(add,), **options):
    model = model or ScriptedChatModel(
        tool_name="add", tool_args={"a": 1, "b": 2}, answer="By behavior_add_in_parts: 3"
    )
    middleware = BehaviorMiddleware(memory, **options)
    return create_agent(model, list(tools), system_prompt=BASE, middleware=[middleware]), model, middleware


def system_texts(model):
    return [m[0].content for m in model.seen if m and m[0].type == "system"]


def invoke(memory, agent, *args, **kwargs):
    """``agent.invoke`` inside ``memory.capture()``: the result and its trace, whatever namespace it went to."""
    with memory.capture() as run:
        result = agent.invoke(*args, **kwargs)
    return result, memory.traces.get(run.trace_id, all_namespaces=True)


def test_block_reaches_every_model_call_byte_identical_and_trace_is_complete(memory):
    agent, model, _ = agent_for(memory)
    result, trace = invoke(memory, agent, {"messages": [("user", "Add 1 and 2, adding numbers in parts")]})
    assert result["messages"][-1].content == "By behavior_add_in_parts: 3"
    systems = system_texts(model)
    assert len(systems) == 2 and systems[0] == systems[1]
    assert systems[0].startswith(BASE + "\n\n") and "behavior_add_in_parts: Add two numbers" in systems[0]

    assert [s.kind for s in trace.steps] == ["model", "tool", "model"]
    first, tool_step, last = trace.steps
    assert first.messages[0] == {"role": "system", "content": systems[0]}  # what the model got
    assert first.messages[1]["content"] == "Add 1 and 2, adding numbers in parts"
    assert (
        first.output == 'tool_call: add({"a": 1, "b": 2})'
        and first.usage.total_tokens > 0
        and first.model == "scripted"
    )
    assert tool_step.name == "add" and tool_step.args == {"a": 1, "b": 2} and tool_step.result == "3"
    assert [m["role"] for m in last.messages] == ["tool"]  # each message recorded once per trace
    assert last.output == "By behavior_add_in_parts: 3" and all(s.latency_s is not None for s in trace.steps)
    assert trace.task == "Add 1 and 2, adding numbers in parts" and trace.answer == last.output
    assert "behavior_add_in_parts" in trace.shown and trace.cited == ["behavior_add_in_parts"]
    assert trace.metadata["retrieval"] == "ok" and trace.metadata["adapter"] == "langchain"
    assert trace.usage.total_tokens == sum(s.usage.total_tokens for s in trace.steps if s.usage)
    assert memory.handbook.get("behavior_add_in_parts").cited == 1


async def test_async_twin_records_the_same(memory):
    agent, model, _ = agent_for(memory)
    with memory.capture() as run:
        await agent.ainvoke({"messages": [("user", "Add 1 and 2, adding numbers in parts")]})
    trace = memory.traces.get(run.trace_id)
    assert [s.kind for s in trace.steps] == ["model", "tool", "model"]
    systems = system_texts(model)
    assert systems[0] == systems[1] and "behavior_add_in_parts" in systems[0]


def test_no_behaviors_leaves_the_prompt_untouched(memory):
    agent, model, _ = agent_for(memory, namespace="empty-team")
    _, trace = invoke(memory, agent, {"messages": [("user", "Add 1 and 2")]})
    assert system_texts(model) == [BASE, BASE]
    assert trace.namespace == "empty-team" and trace.shown == [] and trace.metadata["retrieval"] == "empty"


def test_retrieval_failure_means_no_block_and_a_warning(memory, monkeypatch, caplog):
    def boom(*args, **kwargs):
        raise RuntimeError("store is gone")

    monkeypatch.setattr(memory, "retrieve", boom)
    agent, model, _ = agent_for(memory)
    with caplog.at_level(logging.WARNING, logger="behavior_memory.adapters.langchain"):
        result, trace = invoke(memory, agent, {"messages": [("user", "Add 1 and 2 in parts")]})
    assert system_texts(model) == [BASE, BASE] and result["messages"][-1].content.endswith("3")
    assert trace.metadata["retrieval"] == "error"
    assert "retrieval" in caplog.text and "failed" in caplog.text


@pytest.mark.parametrize("use_async", [False, True])
def test_retrieval_slower_than_the_budget_is_skipped(memory, monkeypatch, caplog, use_async):
    real, areal = memory.retrieve, memory.aretrieve

    def slow(*args, **kwargs):
        time.sleep(0.5)
        return real(*args, **kwargs)

    async def aslow(*args, **kwargs):
        await asyncio.sleep(0.5)
        return await areal(*args, **kwargs)

    monkeypatch.setattr(memory, "retrieve", slow)
    monkeypatch.setattr(memory, "aretrieve", aslow)
    agent, model, _ = agent_for(memory, retrieval_timeout_s=0.05)
    payload = {"messages": [("user", "Add 1 and 2 in parts")]}
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="behavior_memory.adapters.langchain"), memory.capture() as run:
        asyncio.run(agent.ainvoke(payload)) if use_async else agent.invoke(payload)
    assert time.perf_counter() - started < 0.45
    assert system_texts(model) == [BASE, BASE]
    assert memory.traces.get(run.trace_id).metadata["retrieval"] == "timeout"
    assert "longer than 0.050 s" in caplog.text


def test_a_dead_model_server_keeps_the_agents_own_error(memory):
    error = LLMConnectionError("connection refused")
    plain = create_agent(ScriptedChatModel(error=error), [add], system_prompt=BASE)
    with pytest.raises(LLMConnectionError) as without:
        plain.invoke({"messages": [("user", "Add 1 and 2")]})
    agent, _, middleware = agent_for(memory, model=ScriptedChatModel(error=error))
    with pytest.raises(LLMConnectionError) as with_memory, memory.capture() as run:
        agent.invoke({"messages": [("user", "Add 1 and 2")]})
    assert with_memory.value is error and without.value is error
    assert middleware.flush() == [run.trace_id]  # the run that raised is known before it is saved
    trace = memory.traces.get(run.trace_id)
    assert trace.outcome == Outcome.FAILURE and trace.metadata["ended"] == "abandoned"
    assert "connection refused" in trace.steps[0].error and middleware.open_traces == []


def test_a_failing_tool_is_recorded_and_its_error_propagates(memory):
    model = ScriptedChatModel(tool_name="broken", tool_args={"a": 1})
    agent, _, middleware = agent_for(memory, model=model, tools=(broken,))
    with pytest.raises(ValueError, match="tool exploded"):
        agent.invoke({"messages": [("user", "break it")]})
    [trace_id] = middleware.flush()
    steps = memory.traces.get(trace_id).steps
    assert [s.kind for s in steps] == ["model", "tool"] and "tool exploded" in steps[1].error


@dataclass
class Ctx:
    user_id: str


def test_namespaces_come_from_the_runtime_context_or_metadata(memory):
    memory.handbook.add("behavior_alice_only", "Add numbers in parts the way alice likes.", namespace="acme/alice")
    model = ScriptedChatModel(answer="done")
    middleware = BehaviorMiddleware(memory, namespace="acme")
    agent = create_agent(model, [], system_prompt=BASE, middleware=[middleware], context_schema=Ctx)
    _, alice = invoke(memory, agent, {"messages": [("user", "add numbers in parts")]}, context=Ctx(user_id="alice"))
    _, bob = invoke(memory, agent, {"messages": [("user", "add numbers in parts")]}, context=Ctx(user_id="bob"))
    assert "behavior_alice_only" in model.seen[0][0].content
    assert model.seen[1][0].content == BASE  # bob's namespace is empty: nothing leaks
    assert alice.namespace == "acme/alice" and bob.namespace == "acme/bob"

    plain = create_agent(model, [], system_prompt=BASE, middleware=[BehaviorMiddleware(memory)])
    _, via_meta = invoke(
        memory,
        plain,
        {"messages": [("user", "add numbers in parts")]},
        config={"metadata": {"namespace": "acme/alice"}},
    )
    assert via_meta.shown == ["behavior_alice_only"]
    with pytest.raises(InvalidInputError, match="user_id"):
        agent.invoke({"messages": [("user", "x")]}, context=Ctx(user_id="bad id with spaces"))


async def test_sixteen_concurrent_ainvokes_never_mix_traces(memory):
    model = ScriptedChatModel(tool_name="add", tool_args={"a": 1, "b": 2}, delay_s=0.01)
    agent, _, middleware = agent_for(memory, model=model)
    questions = [f"question number {i}: add numbers in parts" for i in range(16)]

    async def ask(question):
        with memory.capture() as run:
            await agent.ainvoke({"messages": [("user", question)]})
        return run

    runs = await asyncio.gather(*(ask(q) for q in questions))
    assert all(len(run.trace_ids) == 1 for run in runs)  # each capture block sees its own task only
    assert len({run.trace_id for run in runs}) == 16 and middleware.open_traces == []
    for question, run in zip(questions, runs, strict=True):
        trace = memory.traces.get(run.trace_id)
        assert trace.task == question and [s.kind for s in trace.steps] == ["model", "tool", "model"]
        humans = [m["content"] for s in trace.steps for m in s.messages if m["role"] == "user"]
        assert humans == [question]


def test_multimodal_no_text_and_long_histories(memory):
    agent, model, _ = agent_for(memory, model=ScriptedChatModel(answer="ok"))
    picture = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 5000}}
    _, trace = invoke(memory, agent, {"messages": [HumanMessage([{"type": "text", "text": "add in parts"}, picture])]})
    assert trace.task == "add in parts" and "behavior_add_in_parts" in model.seen[0][0].content
    assert trace.steps[0].messages[1]["content"][1] == {"type": "image_url", "omitted": True}

    _, trace = invoke(memory, agent, {"messages": [HumanMessage([picture])]})
    assert trace.task == "" and trace.shown == [] and trace.metadata["retrieval"] == "empty"

    history = [HumanMessage(f"turn {i}") if i % 2 == 0 else AIMessage(f"reply {i}") for i in range(400)]
    _, trace = invoke(memory, agent, {"messages": [*history, HumanMessage("now add in parts")]})
    recorded = trace.steps[0].messages
    assert recorded[1] == {"role": "omitted", "content": "[301 earlier messages]"}
    assert len(recorded) == 102 and recorded[-1]["content"] == "now add in parts"


def test_each_turn_of_a_checkpointed_thread_is_its_own_trace(memory):
    model = ScriptedChatModel(answer="ok")
    agent = create_agent(
        model, [], system_prompt=BASE, middleware=[BehaviorMiddleware(memory)], checkpointer=InMemorySaver()
    )
    config = {"configurable": {"thread_id": "t1"}}
    _, first = invoke(memory, agent, {"messages": [("user", "add in parts")]}, config)
    _, trace = invoke(memory, agent, {"messages": [("user", "something unrelated")]}, config)
    assert first.id != trace.id
    assert trace.task == "something unrelated"
    assert [m["content"] for m in trace.steps[0].messages if m["role"] != "system"] == [
        "add in parts",
        "ok",
        "something unrelated",
    ]


def test_streams_are_captured_and_the_private_state_stays_out_of_the_result(memory):
    agent, _, _ = agent_for(memory, model=ScriptedChatModel(answer="ok"))
    with memory.capture() as run:
        states = list(agent.stream({"messages": [("user", "add in parts")]}, stream_mode="values"))
    assert memory.traces.get(run.trace_id).answer == states[-1]["messages"][-1].content == "ok"
    result = agent.invoke({"messages": [("user", "add in parts")]})
    assert set(result) == {"messages"}
    for schema in (agent.get_output_jsonschema(), agent.get_input_jsonschema()):
        assert "bm_block" not in schema["properties"] and "bm_trace_id" not in schema["properties"]


def test_a_sync_invoke_gives_one_32_hex_trace_id(memory):
    agent, _, _ = agent_for(memory, model=ScriptedChatModel(answer="ok"))
    with memory.capture() as run:
        agent.invoke({"messages": [("user", "add in parts")]})
    assert len(run.trace_ids) == 1 and re.fullmatch(r"[0-9a-f]{32}", run.trace_id)
    assert memory.traces.get(run.trace_id).task == "add in parts"


async def test_two_concurrent_ainvokes_in_two_capture_blocks_each_get_their_own_id(memory):
    agent, _, _ = agent_for(memory, model=ScriptedChatModel(answer="ok", delay_s=0.02))

    async def ask(question):
        with memory.capture() as run:
            await agent.ainvoke({"messages": [("user", question)]})
        return run

    first, second = await asyncio.gather(ask("first question"), ask("second question"))
    assert len(first.trace_ids) == 1 and len(second.trace_ids) == 1 and first.trace_id != second.trace_id
    assert memory.traces.get(first.trace_id).task == "first question"
    assert memory.traces.get(second.trace_id).task == "second question"


def test_traces_of_runs_that_never_finished_are_saved_after_abandon_after_s(memory):
    agent, _, middleware = agent_for(memory, model=ScriptedChatModel(error=RuntimeError("down")), abandon_after_s=0.0)
    with pytest.raises(RuntimeError):
        agent.invoke({"messages": [("user", "first")]})
    stuck = middleware.open_traces
    assert len(stuck) == 1
    with pytest.raises(RuntimeError):
        agent.invoke({"messages": [("user", "second")]})  # its before_agent sweeps the first one
    swept = memory.traces.get(stuck[0])
    assert swept.outcome == Outcome.FAILURE and swept.metadata["ended"] == "abandoned"
    assert middleware.open_traces != stuck


def test_long_outputs_are_clipped_once_by_the_core(memory):
    agent, _, _ = agent_for(memory, model=ScriptedChatModel(answer="x" * (MAX_RECORDED_CHARS + 5000)))
    _, trace = invoke(memory, agent, {"messages": [("user", "say a lot")]})
    assert trace.steps[0].output == trace.answer
    assert trace.answer.endswith("\n[... 5000 characters cut ...]") and trace.answer.count("characters cut") == 1
