"""The ``search_behaviors`` tool mid-task: LangChain (a real ``create_agent`` graph, scripted model) and
LlamaIndex (a real ``FunctionTool`` and ``wrap``). What the tool returns counts as shown; citations count."""

from __future__ import annotations

import pytest
import pytest_socket
from langchain.agents import create_agent
from test_langchain_fakes import ScriptedChatModel

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig
from behavior_memory.adapters.langchain import BehaviorMiddleware, search_behaviors_tool, with_behaviors
from behavior_memory.errors import InvalidInputError

BASE = "You are a careful calculator agent."


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
    m.handbook.add("behavior_check_sum", "Check a sum by subtracting one addend from the result.")
    m.handbook.add("behavior_check_sum", "Check a sum again.", namespace="acme/alice")  # another namespace
    yield m
    m.close()


def _agent(memory, query, answer, **options):
    model = ScriptedChatModel(tool_name="search_behaviors", tool_args={"query": query}, answer=answer)
    middleware = BehaviorMiddleware(memory, search_tool=True, **options)
    return create_agent(model, [], system_prompt=BASE, middleware=[middleware]), model


def test_middleware_offers_the_tool_and_its_result_counts_as_shown_and_cited(memory):
    agent, model = _agent(memory, "how do I check a sum", "Checked by behavior_check_sum: 3")
    with memory.capture() as run:
        result = agent.invoke({"messages": [("user", "Hello there")]})  # the up-front block finds nothing
    assert result["messages"][-1].content == "Checked by behavior_check_sum: 3"
    assert any(m.type == "tool" and m.name == "search_behaviors" for m in model.seen[-1])  # bound and called
    trace = memory.traces.get(run.trace_id)
    tool_step = next(s for s in trace.steps if s.kind == "tool")
    assert tool_step.name == "search_behaviors" and tool_step.args == {"query": "how do I check a sum"}
    assert "behavior_check_sum: Check a sum by subtracting" in tool_step.result
    assert trace.metadata["block_tokens"] == 0  # nothing was injected up front ...
    assert trace.shown == ["behavior_check_sum"]  # ... the tool showed it
    assert trace.cited == ["behavior_check_sum"]
    behavior = memory.handbook.get("behavior_check_sum")
    assert (behavior.shown, behavior.cited) == (1, 1)


def test_the_tool_searches_the_tasks_namespace(memory):
    agent, _ = _agent(memory, "check a sum", "done")
    with memory.capture() as run:
        agent.invoke({"messages": [("user", "Hello")]}, config={"metadata": {"user_id": "alice"}})
    trace = memory.traces.get(run.trace_id, all_namespaces=True)
    assert trace.namespace == "default/alice"
    tool_step = next(s for s in trace.steps if s.kind == "tool")
    assert tool_step.result.startswith("No behavior in the handbook matches")  # acme/alice's stays there
    assert trace.shown == []


async def test_tool_gives_messages_not_exceptions(memory):
    tool = search_behaviors_tool(memory)
    assert "behavior_check_sum" in tool.invoke({"query": "check a sum"})
    assert "behavior_check_sum" in await tool.ainvoke({"query": "check a sum", "k": 1})
    assert tool.invoke({"query": "check a sum", "k": 50}).startswith("Invalid search: k must be between 1 and 20")
    assert tool.invoke({"query": ""}).startswith("Invalid search: query is empty")
    assert tool.invoke({"query": "x", "k": "lots"}).startswith("Invalid search: k: ")  # a wrong type, said
    memory.store.close()
    db = memory.config.store_path()
    for suffix in ("", "-wal", "-shm"):
        (db.parent / (db.name + suffix)).unlink(missing_ok=True)
    db.write_bytes(b"garbage " * 500)
    assert tool.invoke({"query": "check a sum"}).startswith("The behavior handbook is unavailable")


def test_wrap_of_a_runnable_says_where_the_tool_goes(memory):
    with pytest.raises(InvalidInputError, match="BehaviorMiddleware"):
        with_behaviors(ScriptedChatModel(), memory, search_tool=True)


async def test_llamaindex_function_tool_and_wrap_option(memory):
    pytest.importorskip("llama_index.core")
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.llms.mock import MockFunctionCallingLLM

    from behavior_memory.adapters.llamaindex import search_behaviors_tool as li_tool
    from behavior_memory.adapters.llamaindex import uninstrument, wrap

    tool = li_tool(memory)
    assert tool.metadata.name == "search_behaviors"
    assert "behavior_check_sum" in tool.call(query="check a sum").content
    assert "behavior_check_sum" in (await tool.acall(query="check a sum", k=2)).content
    assert tool.call(query=" ").content.startswith("Invalid search")

    def add(a: int = 1, b: int = 2) -> int:
        """Add two integers."""
        return a + b

    agent = FunctionAgent(tools=[add], llm=MockFunctionCallingLLM(), system_prompt="Add.")
    wrapped = wrap(agent, memory, search_tool=True)
    wrap(agent, memory, search_tool=True)  # twice: still one search tool
    assert [t.metadata.name for t in agent.tools] == ["add", "search_behaviors"]
    with memory.capture() as run:
        await wrapped.run("add two numbers")
    trace = memory.traces.get(run.trace_id)
    assert {s.name for s in trace.steps if s.kind == "tool"} == {"add", "search_behaviors"}  # the run goes on
    uninstrument(memory)


async def test_llamaindex_search_result_counts_as_shown(memory):
    pytest.importorskip("llama_index.core")
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.llms.mock import MockFunctionCallingLLM

    from behavior_memory.adapters.llamaindex import uninstrument, wrap

    class AskingLLM(MockFunctionCallingLLM):  # LlamaIndex's mock calls every tool; this one with a query
        def get_tool_calls_from_response(self, response, error_on_no_tool_call=False, **kwargs):
            calls = super().get_tool_calls_from_response(response, error_on_no_tool_call, **kwargs)
            query = {"query": "check a sum by subtracting"}
            return [
                c.model_copy(update={"tool_kwargs": query}) if c.tool_name == "search_behaviors" else c for c in calls
            ]

    agent = wrap(FunctionAgent(tools=[], llm=AskingLLM(), system_prompt="Add."), memory, search_tool=True)
    with memory.capture() as run:
        await agent.run("hello")
    trace = memory.traces.get(run.trace_id)
    (step,) = [s for s in trace.steps if s.kind == "tool"]
    assert step.name == "search_behaviors" and "behavior_check_sum: Check a sum" in step.result
    assert "behavior_check_sum" in trace.shown
    assert memory.handbook.get("behavior_check_sum").shown == 1
    uninstrument(memory)
