"""``memory.wrap(chain)`` / ``with_behaviors`` and ``BehaviorTracer`` on plain Runnables (no network)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import pytest_socket
from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from test_langchain_fakes import ScriptedChatModel

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig, Outcome
from behavior_memory.adapters import wrap
from behavior_memory.adapters.langchain import BehaviorRunnable, BehaviorTracer, with_behaviors
from behavior_memory.errors import InvalidInputError

PROMPT = ChatPromptTemplate.from_messages([("system", "Answer briefly."), ("human", "{question}")])


@pytest.fixture(autouse=True)
def _no_network():
    pytest_socket.disable_socket(allow_unix_socket=True)
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
    yield m
    m.close()


class Counting(BaseCallbackHandler):
    def __init__(self):
        self.starts = 0

    def on_chat_model_start(self, *args, **kwargs):
        self.starts += 1


def test_wrap_injects_before_the_model_and_records_one_trace_per_call(memory):
    model = ScriptedChatModel(answer="By behavior_add_in_parts: 3")
    chain = wrap(PROMPT | model | StrOutputParser(), memory)
    assert isinstance(chain, BehaviorRunnable)
    user_handler, run_id = Counting(), uuid.uuid4()
    with memory.capture() as run:
        answer = chain.invoke(
            {"question": "add numbers in parts"}, config={"run_id": run_id, "callbacks": [user_handler]}
        )
    assert answer == "By behavior_add_in_parts: 3" and user_handler.starts == 1  # user's callbacks intact
    system = model.seen[0][0]
    assert system.type == "system" and system.content.startswith("Answer briefly.\n\n")
    assert "behavior_add_in_parts: Add two numbers" in system.content

    assert run.trace_ids == [run_id.hex]  # one id format: the root run's id as 32 hex digits
    trace = memory.traces.get(run.trace_id)
    assert trace.task == "add numbers in parts" and trace.metadata["adapter"] == "langchain"
    [step] = trace.steps
    assert step.kind == "model" and step.messages[0]["content"] == system.content
    assert step.usage.total_tokens > 0 and step.output == answer
    assert trace.answer == answer and trace.shown == ["behavior_add_in_parts"]
    assert trace.cited == ["behavior_add_in_parts"] and trace.metadata["retrieval"] == "ok"


def test_wrap_a_bare_model_prepends_a_system_message_and_leaves_unrelated_calls_alone(memory):
    model = ScriptedChatModel()
    chain = with_behaviors(model, memory)
    chain.invoke("add numbers in parts")
    assert model.seen[0][0].type == "system" and "behavior_add_in_parts" in model.seen[0][0].content
    chain.invoke("what colour is the sky")  # nothing relevant: the input goes through untouched
    assert [m.type for m in model.seen[1]] == ["human"]


def test_wrap_needs_a_model_unless_told_to_record_only(memory):
    echo = RunnableLambda(lambda x: f"echo {x}")
    with pytest.raises(InvalidInputError, match="no chat model"):
        wrap(echo, memory)
    chain = wrap(echo, memory, inject=False)
    with memory.capture() as run:
        assert chain.invoke("hello") == "echo hello"
    trace = memory.traces.get(run.trace_id)
    assert trace.task == "hello" and trace.answer == "echo hello" and trace.steps == []


def test_a_failing_chain_is_saved_as_a_failure_and_raises_unchanged(memory):
    chain = wrap(PROMPT | ScriptedChatModel(error=ConnectionError("server down")), memory)
    with pytest.raises(ConnectionError, match="server down"), memory.capture() as run:
        chain.invoke({"question": "add numbers in parts"})
    trace = memory.traces.get(run.trace_id)
    assert trace.outcome == Outcome.FAILURE and trace.metadata["error"] == "ConnectionError: server down"
    assert trace.steps[0].error == "ConnectionError: server down"  # the core's error text, as in every adapter


async def test_concurrent_ainvoke_and_astream_keep_traces_apart(memory):
    model = ScriptedChatModel(answer="ok", delay_s=0.01)
    chain = wrap(PROMPT | model, memory)

    async def ask(i):
        with memory.capture() as run:
            await chain.ainvoke({"question": f"add in parts #{i}"})
        return run

    runs = await asyncio.gather(*(ask(i) for i in range(8)))
    for i, run in enumerate(runs):
        assert len(run.trace_ids) == 1
        trace = memory.traces.get(run.trace_id)
        assert trace.task == f"add in parts #{i}"
        assert [m["content"] for m in trace.steps[0].messages if m["role"] == "user"] == [trace.task]
    with memory.capture() as run:
        chunks = [c async for c in chain.astream({"question": "add in parts, streamed"})]
    assert "".join(c.content for c in chunks) == "ok"
    assert memory.traces.get(run.trace_id).task == "add in parts, streamed"


def test_namespace_from_config_metadata(memory):
    memory.handbook.add("behavior_team_b", "Add in parts, team b style.", namespace="team-b")
    model = ScriptedChatModel()
    chain = wrap(PROMPT | model, memory)
    with memory.capture() as run:
        chain.invoke({"question": "add in parts"}, config={"metadata": {"namespace": "team-b"}})
    assert "behavior_team_b" in model.seen[0][0].content and "behavior_add_in_parts" not in model.seen[0][0].content
    assert memory.traces.get(run.trace_id, namespace="team-b").namespace == "team-b"


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def test_tracer_alone_records_an_agent_run_with_its_tool_calls(memory):
    model = ScriptedChatModel(tool_name="add", tool_args={"a": 1, "b": 2})
    agent = create_agent(model, [add], system_prompt="Be brief.")
    tracer, run_id = BehaviorTracer(memory), uuid.uuid4()
    with memory.capture() as run:
        agent.invoke(
            {"messages": [("user", "1+2?")]},
            config={"callbacks": [tracer], "run_id": run_id, "metadata": {"user_id": "carol"}},
        )
    assert run.trace_ids == [run_id.hex] and tracer.open_traces == []
    trace = memory.traces.get(run.trace_id)
    assert trace.namespace == "default/carol" and trace.metadata["adapter"] == "langchain"
    assert [s.kind for s in trace.steps] == ["model", "tool", "model"]
    assert trace.steps[1].name == "add" and trace.steps[1].args == {"a": 1, "b": 2} and trace.steps[1].result == "3"
    assert trace.task == "1+2?" and trace.answer == "The answer is 3."
    assert trace.steps[0].output == 'tool_call: add({"a": 1, "b": 2})'
    assert [m["role"] for m in trace.steps[2].messages] == ["tool"]


def test_a_stream_left_early_still_saves_its_trace(memory):
    chain = wrap(PROMPT | ScriptedChatModel(answer="a long answer"), memory)
    with memory.capture() as run:
        stream = chain.stream({"question": "add in parts"})
        next(stream)
        stream.close()
    trace = memory.traces.get(run.trace_id)
    assert trace.task == "add in parts" and trace.shown == ["behavior_add_in_parts"]


def test_wrap_refuses_what_no_adapter_knows(memory):
    with pytest.raises(InvalidInputError, match="LangChain Runnable or a LlamaIndex agent"):
        wrap(lambda question: question, memory)
