"""Real LlamaIndex agents (FunctionAgent, ReActAgent, AgentWorkflow) against the real vLLM server.

Plumbing only, never the 135M model's wit: the behavior block reaches the model, traces hold every
model and tool call with usage, behaviors minted after one run are shown in the next, and
concurrent runs never mix. Where a test needs a tool call, vLLM's structured outputs constrain the
text to a call (the model still picks the numbers); this server cannot do ``tool_choice="required"``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("llama_index.core")
pytest.importorskip("llama_index.llms.openai_like")

from llama_index.core.agent.workflow import AgentWorkflow, FunctionAgent, ReActAgent, ToolCallResult
from llama_index.core.memory import Memory
from llama_index.llms.openai_like import OpenAILike

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig, BehaviorStatus, ReflectionStatus
from behavior_memory.adapters.llamaindex import (
    BehaviorMemoryBlock,
    instrument,
    instrumentation_for,
    uninstrument,
    wrap,
)

TOPIC = "arithmetic"
SEED_LINE = "behavior_multiply_with_tool: Use the multiply tool for every product of two numbers."
HERMES_CALL = r'<tool_call>\n\{"name": "multiply", "arguments": \{"a": [0-9]{1,2}, "b": [0-9]{1,2}\}\}\n</tool_call>'
REACT_CALL = r'Thought: [A-Za-z ]{1,30}\.\nAction: multiply\nAction Input: \{"a": [0-9]{1,2}, "b": [0-9]{1,2}\}'


def multiply(a: float, b: float) -> float:
    """Multiply two numbers."""
    return a * b


@pytest.fixture
def memory(tmp_path, vllm_server):
    cfg = BehaviorMemoryConfig.model_validate(
        {
            "namespace": "li",
            "llm": {
                "base_url": vllm_server.base_url,
                "model": vllm_server.model,
                "timeout_s": 120,
                "max_retries": 0,
                "output_retries": 1,
            },
            "embeddings": {"provider": "hashing"},
            "store": {"path": str(tmp_path / "handbook.db")},
            "retrieval": {"strategy": "topic"},
            "curation": {"approval": "auto"},  # minted behaviors the guard passes go active at once
            "reflection": {
                "mode": "manual",
                "max_behaviors_per_trace": 2,
                "reflection_max_tokens": 160,
                "extraction_max_tokens": 200,
                "extra_body": {"repetition_penalty": 1.15},
            },
        }
    )
    m = BehaviorMemory(cfg)
    yield m
    uninstrument(m)
    m.close()


def _llm(server: Any, *, max_tokens: int, regex: str | None = None) -> OpenAILike:
    extra: dict[str, Any] = {"stream_options": {"include_usage": True}}
    if regex:
        extra["extra_body"] = {"structured_outputs": {"regex": regex}}
    return OpenAILike(
        model=server.model,
        api_base=server.base_url,
        api_key="EMPTY",
        is_chat_model=True,
        is_function_calling_model=True,
        context_window=8192,
        max_tokens=max_tokens,
        temperature=0.0,
        timeout=300,
        max_retries=0,
        additional_kwargs=extra,
    )


def _seed(memory: BehaviorMemory) -> None:
    memory.handbook.add(
        "behavior_multiply_with_tool", "Use the multiply tool for every product of two numbers.", topic=TOPIC
    )


def _text(step: Any, role: str) -> str:
    return "\n".join(str(m["content"]) for m in step.messages if m["role"] == role)


def _assert_usage(trace: Any) -> None:
    for step in trace.steps:
        if step.kind == "model":
            assert step.error is None, step.error
            assert step.usage is not None and step.usage.prompt_tokens > 0 and step.usage.completion_tokens > 0


async def test_function_agent_trace_holds_every_model_and_tool_call(memory, vllm_server):
    _seed(memory)
    agent = wrap(
        FunctionAgent(
            tools=[multiply],
            llm=_llm(vllm_server, max_tokens=48, regex=HERMES_CALL),
            system_prompt="You are a calculator.",
        ),
        memory,
        topic=TOPIC,
    )
    with memory.capture() as run:
        handler = agent.run("What is 3 times 4?", max_iterations=2, early_stopping_method="generate")
    results = [ev async for ev in handler.stream_events() if isinstance(ev, ToolCallResult)]
    await handler
    trace = memory.traces.get(run.trace_id)
    # step 1: a call; the tool runs; step 2: a call again (max iterations); the forced final answer
    assert [s.kind for s in trace.steps] == ["model", "tool", "model", "model"]
    (tool,) = [s for s in trace.steps if s.kind == "tool"]
    (result,) = results
    assert tool.name == "multiply" and tool.args == result.tool_kwargs
    assert tool.result == str(result.tool_output.content) and tool.error is None
    _assert_usage(trace)
    first, second = trace.steps[0], trace.steps[2]
    assert first.output.startswith("tool_call: multiply({")  # the one tool-call convention
    # FunctionAgent sends two system messages: its prompt, then the block; the server takes both
    assert [m["role"] for m in first.messages][:2] == ["system", "system"]
    assert SEED_LINE in first.messages[1]["content"]
    assert first.messages[1]["content"] == second.messages[1]["content"]  # same bytes on every step
    assert second.usage.cached_tokens and second.usage.cached_tokens > 0  # ...so vLLM reuses the prefix
    assert trace.shown == ["behavior_multiply_with_tool"] and trace.topic == TOPIC


async def test_react_agent_gets_the_block_with_or_without_a_system_prompt(memory, vllm_server):
    _seed(memory)
    bare = wrap(
        ReActAgent(tools=[multiply], llm=_llm(vllm_server, max_tokens=48, regex=REACT_CALL)), memory, topic=TOPIC
    )
    prompted = wrap(
        ReActAgent(tools=[multiply], llm=_llm(vllm_server, max_tokens=8), system_prompt="You are a calculator."),
        memory,
        topic=TOPIC,
    )
    with memory.capture() as run:
        handlers = [
            bare.run("What is 6 times 7?", max_iterations=2, early_stopping_method="generate"),
            prompted.run("What is 2 times 5?", max_iterations=1, early_stopping_method="generate"),
        ]
    await asyncio.gather(*handlers)
    bare_trace, prompted_trace = (memory.traces.get(trace_id) for trace_id in run.trace_ids)

    # without a system prompt the block rides in front of the user message (a system one is dropped)
    assert [s.kind for s in bare_trace.steps] == ["model", "tool", "model", "model"]
    assert bare_trace.steps[1].name == "multiply" and bare_trace.steps[1].error is None
    user = _text(bare_trace.steps[0], "user")
    assert SEED_LINE in user and user.rstrip().endswith("What is 6 times 7?")
    assert SEED_LINE not in _text(bare_trace.steps[0], "system")
    _assert_usage(bare_trace)

    # with one, it stays a system message after the ReAct header
    first = prompted_trace.steps[0]
    systems = [m["content"] for m in first.messages if m["role"] == "system"]
    assert len(systems) == 2 and "You are a calculator." in systems[0] and SEED_LINE in systems[1]
    assert SEED_LINE not in _text(first, "user")
    _assert_usage(prompted_trace)


async def test_agent_workflow_with_two_agents_through_instrument_and_a_memory_block(memory, vllm_server):
    _seed(memory)
    instrument(memory)  # the way: instrumentation plus a Memory block, no wrap
    llm = _llm(vllm_server, max_tokens=12)
    calculator = FunctionAgent(
        name="calculator",
        description="Does arithmetic.",
        tools=[multiply],
        llm=llm,
        system_prompt="You are a calculator.",
        can_handoff_to=["reviewer"],
    )
    reviewer = FunctionAgent(
        name="reviewer", description="Reviews answers.", llm=llm, tools=[], system_prompt="You review answers."
    )
    workflow = AgentWorkflow(agents=[calculator, reviewer], root_agent="calculator")
    chat = Memory.from_defaults(session_id="s1", memory_blocks=[BehaviorMemoryBlock(memory, topic=TOPIC)])
    with memory.capture() as run:
        result = await workflow.run(
            user_msg="What is 5 times 5?", memory=chat, max_iterations=3, early_stopping_method="generate"
        )
    (summary,) = memory.store.list_traces("li")
    assert run.trace_ids == [summary.id]
    trace = memory.traces.get(run.trace_id)
    assert trace.task == "What is 5 times 5?" and trace.metadata["workflow"] == "AgentWorkflow"
    assert trace.answer == str(result) and trace.shown == ["behavior_multiply_with_tool"]
    models = [s for s in trace.steps if s.kind == "model"]
    assert models and all(SEED_LINE in _text(s, "system") for s in models)
    _assert_usage(trace)


async def test_behaviors_minted_after_one_run_are_shown_in_the_next(memory, vllm_server):
    agent = wrap(
        FunctionAgent(tools=[multiply], llm=_llm(vllm_server, max_tokens=40), system_prompt="Answer briefly."),
        memory,
        topic=TOPIC,
    )
    question = "Tom has 3 boxes with 4 apples each. How many apples does he have?"
    with memory.capture() as first:
        await agent.run(question)
    run1 = memory.traces.get(first.trace_id)
    assert run1.shown == [] and run1.reflection_status == ReflectionStatus.PENDING
    assert not any("behavior_" in _text(s, "system") for s in run1.steps)

    memory.reflect_pending()
    run1 = memory.traces.get(run1.id)
    assert run1.reflection_status == ReflectionStatus.DONE, run1.reflection_error
    minted = {b.name for b in memory.handbook.list() if run1.id in b.sources}
    assert minted, f"the extraction schema asks for at least one behavior: {run1.reflection_error} {run1.metadata}"
    assert minted == set(run1.minted)

    statuses = {name: memory.handbook.get(name).status for name in minted}
    assert set(statuses.values()) <= {BehaviorStatus.ACTIVE, BehaviorStatus.QUARANTINED}  # auto approval
    active = {name for name, status in statuses.items() if status == BehaviorStatus.ACTIVE}

    with memory.capture() as second:
        await agent.run(question)
    run2 = memory.traces.get(second.trace_id)
    assert active <= set(run2.shown) and not (minted - active) & set(run2.shown)  # quarantined: never shown
    system = _text(run2.steps[0], "system")
    assert all(f"{name}: " in system for name in active)
    assert all(memory.handbook.get(name).shown >= 1 for name in active)


async def test_sixteen_concurrent_runs_give_sixteen_clean_traces(memory, vllm_server):
    _seed(memory)
    agent = wrap(
        FunctionAgent(tools=[multiply], llm=_llm(vllm_server, max_tokens=6), system_prompt="Answer with a number."),
        memory,
        topic=TOPIC,
    )
    questions = [f"Question {i}: what is {i} plus {i}?" for i in range(16)]
    with memory.capture() as run:
        handlers = [agent.run(q) for q in questions]
    results = await asyncio.gather(*handlers)
    assert instrumentation_for(memory).open_runs == 0
    traces = [memory.traces.get(trace_id) for trace_id in run.trace_ids]
    assert len({t.id for t in traces}) == 16 and len(memory.store.list_traces("li")) == 16
    for question, result, trace in zip(questions, results, traces, strict=True):
        assert trace.task == question and trace.answer == str(result)
        (step,) = trace.steps
        assert _text(step, "user") == question  # no other run's message leaked in
        assert SEED_LINE in _text(step, "system")
        assert trace.shown == ["behavior_multiply_with_tool"]
        _assert_usage(trace)
    assert memory.handbook.get("behavior_multiply_with_tool").shown == 16
