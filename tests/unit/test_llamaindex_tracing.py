"""LlamaIndex trace capture and ``wrap`` with real agents and LlamaIndex's mock LLMs (offline)."""

from __future__ import annotations

import asyncio
import socket
import sqlite3

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core.agent.workflow import AgentWorkflow, FunctionAgent, ReActAgent
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, ImageBlock, TextBlock, ThinkingBlock
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.llms.mock import MockFunctionCallingLLM, MockFunctionCallingLLMWithChatMemoryOfLastCall
from llama_index.core.memory import InsertMethod, Memory
from llama_index.core.workflow import StartEvent, StopEvent, Workflow, step
from llama_index_instrumentation.dispatcher import instrument_tags

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig, Outcome
from behavior_memory.adapters.llamaindex import (
    USER_TAG,
    BehaviorMemoryBlock,
    choose_insert_method,
    instrument,
    instrumentation_for,
    uninstrument,
    wrap,
)
from behavior_memory.adapters.llamaindex._messages import response_reasoning, response_usage
from behavior_memory.errors import InvalidInputError

BLOCK_LINE = "behavior_add_then_check: Add with the tool, then check the sum."


@pytest.fixture
def memory(tmp_path):
    cfg = BehaviorMemoryConfig.model_validate(
        {
            "store": {"path": str(tmp_path / "h.db")},
            "embeddings": {"provider": "hashing"},
            "reflection": {"mode": "manual"},
            "retrieval": {"strategy": "lexical"},
        }
    )
    m = BehaviorMemory(cfg)
    m.handbook.add("behavior_add_then_check", "Add with the tool, then check the sum.")
    yield m
    uninstrument(m)
    m.close()


def add(a: int = 1, b: int = 2) -> int:
    """Add two integers."""
    return a + b


def boom(x: int = 0) -> int:
    """A tool that always fails."""
    raise RuntimeError("kaboom")


def _contents(step) -> str:
    return "\n".join(str(m.get("content")) for m in step.messages)


async def test_wrapped_function_agent_run_is_one_trace_with_every_call(memory):
    agent = wrap(FunctionAgent(tools=[add, boom], llm=MockFunctionCallingLLM(), system_prompt="You add."), memory)
    with memory.capture() as run:
        handler = agent.run("add two numbers")
    result = await handler
    assert str(result) == "Tool calls complete."
    assert len(run.trace_id) == 32 and int(run.trace_id, 16) >= 0  # the one id format
    trace = memory.store.get_trace(run.trace_id)
    assert trace.task == "add two numbers" and trace.answer == "Tool calls complete."
    assert [s.kind for s in trace.steps] == ["model", "tool", "tool", "model"]
    tools = {s.name: s for s in trace.steps if s.kind == "tool"}
    assert tools["add"].args == {"a": 1, "b": 2} and tools["add"].result == "3" and tools["add"].error is None
    assert "kaboom" in tools["boom"].error and tools["boom"].result is None
    first = trace.steps[0]
    assert first.output.startswith('tool_call: add({"a": 1, "b": 2})') and first.latency_s is not None
    # FunctionAgent: its own system prompt, then the memory block as a second system message
    roles = [m["role"] for m in first.messages]
    assert roles[:3] == ["system", "system", "user"] and first.messages[0]["content"] == "You add."
    assert BLOCK_LINE in first.messages[1]["content"]
    assert all(BLOCK_LINE in _contents(s) for s in trace.steps if s.kind == "model")
    assert trace.shown == ["behavior_add_then_check"]
    assert memory.handbook.get("behavior_add_then_check").shown == 1
    assert trace.metadata["adapter"] == "llamaindex" and trace.metadata["llamaindex_run_id"]
    assert first.messages[-1] == {"role": "user", "content": "add two numbers"}
    calls = trace.steps[-1].messages[-3]["tool_calls"]  # the assistant message asking for the tools
    assert calls[0]["name"] == "add" and calls[0]["args"] == {"a": 1, "b": 2} and "id" in calls[0]


async def test_react_agent_without_system_prompt_gets_the_block_in_the_user_message(memory):
    llm = MockFunctionCallingLLMWithChatMemoryOfLastCall()
    react = ReActAgent(tools=[add], llm=llm)
    agent = wrap(react, memory)
    assert agent.insert_method == InsertMethod.USER  # a system message would be dropped by ReActAgent
    with memory.capture() as run:
        handler = agent.run("add two numbers", max_iterations=2, early_stopping_method="generate")
    await handler
    sent = next(m for m in llm.last_chat_messages if m.role == "user").content
    assert BLOCK_LINE in sent and sent.rstrip().endswith("add two numbers")
    trace = memory.store.get_trace(run.trace_id)
    assert trace.steps and all(s.kind == "model" for s in trace.steps)
    assert BLOCK_LINE in _contents(trace.steps[0])


async def test_react_agent_with_system_prompt_keeps_the_block_as_a_system_message(memory):
    llm = MockFunctionCallingLLMWithChatMemoryOfLastCall()
    agent = wrap(ReActAgent(tools=[add], llm=llm, system_prompt="You add carefully."), memory)
    assert agent.insert_method == InsertMethod.SYSTEM
    await agent.run("add two numbers", max_iterations=2, early_stopping_method="generate")
    systems = [m.content for m in llm.last_chat_messages if m.role == "system"]
    assert len(systems) == 2 and "You add carefully." in systems[0] and BLOCK_LINE in systems[1]


async def test_agent_workflow_with_two_agents_records_one_trace(memory):
    llm = MockFunctionCallingLLM()
    adder = FunctionAgent(
        name="adder",
        description="Adds numbers.",
        tools=[add],
        llm=llm,
        system_prompt="Add.",
        can_handoff_to=["checker"],
    )
    checker = ReActAgent(name="checker", description="Checks sums.", tools=[add], llm=llm)
    workflow = AgentWorkflow(agents=[adder, checker], root_agent="adder")
    assert choose_insert_method(workflow) == InsertMethod.USER
    agent = wrap(workflow, memory)
    with memory.capture() as run:
        handler = agent.run(user_msg="add two numbers")
    await handler
    trace = memory.store.get_trace(run.trace_id)
    assert trace.metadata["workflow"] == "AgentWorkflow" and trace.shown == ["behavior_add_then_check"]
    assert [s.kind for s in trace.steps].count("model") >= 2
    assert any(s.kind == "tool" for s in trace.steps)
    assert BLOCK_LINE in _contents(trace.steps[0])


async def test_untagged_agent_runs_are_recorded_once_instrumented(memory):
    agent = FunctionAgent(tools=[add], llm=MockFunctionCallingLLM(), system_prompt="Add.")
    instrument(memory, record_untagged=False)
    await agent.run("not recorded")
    assert memory.store.list_traces(memory.namespace) == []
    instrument(memory)  # idempotent: same handlers, now recording every agent run
    chat = Memory.from_defaults(session_id="s1", memory_blocks=[BehaviorMemoryBlock(memory)])
    with memory.capture() as run:
        await agent.run("add two numbers", memory=chat)
    (summary,) = memory.store.list_traces(memory.namespace)
    assert run.trace_ids == [summary.id]  # capture sees untagged runs too
    trace = memory.store.get_trace(summary.id)
    assert trace.task == "add two numbers" and trace.shown == ["behavior_add_then_check"]
    assert [s.kind for s in trace.steps] == ["model", "tool", "model"]
    handlers = get_dispatcher().event_handlers
    assert sum(h is instrumentation_for(memory).event_handler for h in handlers) == 1
    uninstrument(memory)
    assert instrumentation_for(memory) is None
    await agent.run("after uninstrument")
    assert len(memory.store.list_traces(memory.namespace)) == 1


async def test_sixteen_concurrent_runs_give_sixteen_clean_traces(memory):
    agent = wrap(FunctionAgent(tools=[add], llm=MockFunctionCallingLLM(), system_prompt="Add."), memory)
    with memory.capture() as run:
        handlers = [agent.run(f"add task number {i}") for i in range(16)]
    await asyncio.gather(*handlers)
    assert instrumentation_for(memory).open_runs == 0
    assert len(run.trace_ids) == 16
    for i, trace_id in enumerate(run.trace_ids):
        trace = memory.store.get_trace(trace_id)
        assert trace.task == f"add task number {i}" and trace.shown == ["behavior_add_then_check"]
        assert [s.kind for s in trace.steps] == ["model", "tool", "model"]
        for s in trace.steps[::2]:  # the model calls
            users = [m["content"] for m in s.messages if m["role"] == "user"]
            assert users and all(u.endswith(f"add task number {i}") for u in users)
    assert len(memory.store.list_traces(memory.namespace)) == 16


class _FailingLLM(MockFunctionCallingLLM):
    mid_stream: bool = False

    def _get_response_generator(self):
        def fail(messages, **kwargs):
            if not self.mid_stream:
                raise ConnectionError("model server went away")

            async def partial():
                yield ChatMessage(role="assistant", content="half an ans")
                raise ConnectionError("stream cut")

            return partial()

        return fail


@pytest.mark.parametrize("mid_stream", [False, True])
async def test_a_failing_model_call_is_recorded_and_the_run_fails_as_it_would(memory, mid_stream):
    agent = wrap(FunctionAgent(tools=[add], llm=_FailingLLM(mid_stream=mid_stream), system_prompt="Add."), memory)
    with memory.capture() as run:
        handler = agent.run("add two numbers")
    with pytest.raises(Exception, match=r"went away|stream cut"):
        await handler
    trace = memory.store.get_trace(run.trace_id)
    assert trace.outcome == Outcome.FAILURE and "Error" in trace.metadata["error"]
    (model,) = trace.steps
    assert model.kind == "model" and "ConnectionError" in model.error


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_dead_model_server_fails_the_run_exactly_as_without_memory(memory):
    from llama_index.llms.openai_like import OpenAILike

    llm = OpenAILike(
        model="m",
        api_base=f"http://127.0.0.1:{_closed_port()}/v1",
        api_key="EMPTY",
        is_chat_model=True,
        is_function_calling_model=True,
        max_retries=0,
        timeout=2,
    )
    plain = FunctionAgent(tools=[add], llm=llm, system_prompt="Add.")
    with pytest.raises(Exception) as bare:
        await plain.run("add two numbers")
    with memory.capture() as run:
        handler = wrap(plain, memory).run("add two numbers")
    with pytest.raises(type(bare.value)):
        await handler
    trace = memory.store.get_trace(run.trace_id)
    assert trace.outcome == Outcome.FAILURE and trace.steps[0].error


async def test_a_plain_workflow_is_recorded_without_a_memory_argument(memory):
    class Echo(Workflow):
        @step
        async def echo(self, ev: StartEvent) -> StopEvent:
            return StopEvent(result=f"echo: {ev.get('text')}")

    with memory.capture() as run:
        handler = wrap(Echo(), memory).run(text="hello")
    assert await handler == "echo: hello"
    trace = memory.store.get_trace(run.trace_id)
    assert trace.task == "text: hello" and trace.answer == "echo: hello" and trace.steps == []


def test_usage_and_reasoning_are_read_from_every_place_llamaindex_puts_them():
    raw = {
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 8},
            "completion_tokens_details": {"reasoning_tokens": 3},
        }
    }
    message = ChatMessage(role="assistant", blocks=[ThinkingBlock(content="let me think"), TextBlock(text="15")])
    response = ChatResponse(message=message, raw=raw)
    usage = response_usage(response)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, usage.reasoning_tokens) == (10, 5, 8, 3)
    assert response_reasoning(response) == "let me think"
    counted = ChatResponse(
        message=ChatMessage(role="assistant", content="x"),
        additional_kwargs={"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6},
    )
    assert response_usage(counted).total_tokens == 6
    assert response_usage(ChatResponse(message=ChatMessage(role="assistant", content="x"))) is None
    legacy = ChatResponse(
        message=ChatMessage(role="assistant", content="x", additional_kwargs={"reasoning_content": "hmm"})
    )
    assert response_reasoning(legacy) == "hmm"


async def test_broken_or_slow_retrieval_and_a_failing_store_leave_the_agent_alone(memory, monkeypatch, caplog):
    agent = wrap(FunctionAgent(tools=[add], llm=MockFunctionCallingLLM(), system_prompt="Add."), memory)
    agent.block.timeout_s = 0.05

    async def broken(*args, **kwargs):
        raise OSError("store unreachable")

    async def slow(*args, **kwargs):
        await asyncio.sleep(5)

    for retrieve in (broken, slow):
        monkeypatch.setattr(memory, "aretrieve", retrieve)
        with memory.capture() as run:
            handler = agent.run(f"add with {retrieve.__name__} retrieval")
        assert str(await handler) == "Tool calls complete."
        trace = memory.store.get_trace(run.trace_id)
        assert trace.shown == [] and [s.kind for s in trace.steps] == ["model", "tool", "model"]

    def full_disk(trace, **options):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(memory.store, "save_trace", full_disk)
    assert str(await agent.run("add once more")) == "Tool calls complete."
    assert "could not save trace" in caplog.text
    assert instrumentation_for(memory).open_runs == 0


async def test_empty_input_behaves_as_without_memory(memory):
    plain = FunctionAgent(tools=[add], llm=MockFunctionCallingLLM(), system_prompt="Add.")
    agent = wrap(plain, memory)
    # an empty message: LlamaIndex runs it; no block (nothing to retrieve for); the calls are recorded
    with memory.capture() as run:
        handler = agent.run("")
    assert str(await handler) == str(await plain.run(""))
    trace = memory.store.get_trace(run.trace_id)
    assert trace.task == "" and trace.shown == [] and trace.steps
    assert all("<memory>" not in str(m) for s in trace.steps for m in s.messages)
    # no message at all: LlamaIndex refuses, and so do we, without saving an empty trace
    with pytest.raises(Exception) as bare:
        await plain.run()
    with pytest.raises(type(bare.value), match="user_msg or chat_history"):
        await agent.run()
    assert len(memory.store.list_traces(memory.namespace)) == 1
    assert instrumentation_for(memory).open_runs == 0
    # a message with no text (an image alone): no block to retrieve for; the run is recorded
    image_only = ChatMessage(role="user", blocks=[ImageBlock(url="http://example.com/sum.png")])
    with memory.capture() as run:
        handler = agent.run(image_only)
    await handler
    trace = memory.store.get_trace(run.trace_id)
    assert trace.task == "[image]" and trace.shown == [] and trace.steps
    # a history without a new message: the task is its last user message
    history = [ChatMessage(role="user", content="add two numbers"), ChatMessage(role="assistant", content="ok")]
    with memory.capture() as run:
        handler = agent.run(chat_history=history)
    await handler
    assert memory.store.get_trace(run.trace_id).task == "add two numbers"


async def test_a_run_whose_span_never_closes_is_saved_as_abandoned_and_dropped(memory):
    instrumentation = instrument(memory, record_untagged=False, abandon_after_s=0.05)
    release = asyncio.Event()

    class Stuck(Workflow):
        @step
        async def wait(self, ev: StartEvent) -> StopEvent:
            await release.wait()  # a run that never reports its end (until the test lets it go)
            return StopEvent(result="late")

    with memory.capture() as stuck:
        handler = wrap(Stuck(timeout=None), memory).run(text="never ends")
    await asyncio.sleep(0.15)
    assert instrumentation.open_runs == 1
    agent = wrap(FunctionAgent(tools=[add], llm=MockFunctionCallingLLM(), system_prompt="Add."), memory)
    with memory.capture() as later:
        await agent.run("add two numbers")  # opening a run sweeps the abandoned ones
    abandoned = memory.store.get_trace(stuck.trace_id)
    assert abandoned.metadata["ended"] == "abandoned" and abandoned.outcome == Outcome.UNKNOWN
    assert abandoned.task == "text: never ends" and abandoned.metadata["adapter"] == "llamaindex"
    assert instrumentation.open_runs == 0 and not instrumentation._keys and not instrumentation._spans
    assert memory.store.get_trace(later.trace_id).answer == "Tool calls complete."
    release.set()
    assert await handler == "late"  # its late end finds nothing open: the saved trace stands
    assert memory.store.get_trace(stuck.trace_id).answer is None
    assert len(memory.store.list_traces(memory.namespace)) == 2


async def test_runs_are_filed_per_user_through_wrap_or_an_instrument_tag(memory):
    alice = f"{memory.namespace}/alice"
    memory.handbook.add("behavior_add_twice", "Add twice to be sure.", namespace=alice)
    llm = MockFunctionCallingLLM()
    agent = wrap(FunctionAgent(tools=[add], llm=llm, system_prompt="Add."), memory, user_id="alice")
    with memory.capture() as run:
        await agent.run("add two numbers")
    trace = memory.store.get_trace(run.trace_id)
    assert trace.namespace == alice and trace.shown == ["behavior_add_twice"]
    with memory.capture() as run:
        await agent.run("add two numbers", memory_user_id="bob")
    trace = memory.store.get_trace(run.trace_id)
    assert trace.namespace == f"{memory.namespace}/bob" and trace.shown == []
    with memory.capture() as run:
        await agent.run("add two numbers", memory_namespace="team")  # an explicit namespace wins
    assert memory.store.get_trace(run.trace_id).namespace == "team"
    with pytest.raises(InvalidInputError, match="user_id"):
        agent.run("add two numbers", memory_user_id="not a segment!")
    # an untagged run: the user comes from the instrument tags, for the trace and the block alike
    instrument(memory)
    chat = Memory.from_defaults(session_id="s1", memory_blocks=[BehaviorMemoryBlock(memory)])
    with instrument_tags({USER_TAG: "alice"}), memory.capture() as run:
        await FunctionAgent(tools=[add], llm=llm, system_prompt="Add.").run("add two numbers", memory=chat)
    trace = memory.store.get_trace(run.trace_id)
    assert trace.namespace == alice and trace.shown == ["behavior_add_twice"]
    assert instrumentation_for(memory).open_runs == 0
