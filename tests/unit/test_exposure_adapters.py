"""The exposure experiment through both adapters: a withheld behavior stays out of the prompt and in the trace."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("langchain")
pytest.importorskip("llama_index.core")

import pytest_socket
from langchain.agents import create_agent
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.llms.mock import MockFunctionCallingLLMWithChatMemoryOfLastCall
from test_langchain_fakes import ScriptedChatModel

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig
from behavior_memory.adapters import wrap
from behavior_memory.adapters.langchain import BehaviorMiddleware
from behavior_memory.adapters.llamaindex import uninstrument
from behavior_memory.adapters.llamaindex import wrap as llama_wrap
from behavior_memory.injection.exposure import WITHHELD_KEY, Exposure

WITHHELD = "behavior_add_in_parts"
PINNED = "behavior_check_sum"
TASK = "Add 1 and 2, adding the numbers in parts, then check the sum"


@pytest.fixture(autouse=True)
def _no_network() -> Any:
    pytest_socket.disable_socket(allow_unix_socket=True)  # asyncio's self-pipe is a unix socketpair
    yield
    pytest_socket.enable_socket()


@pytest.fixture
def memory(tmp_path: Any) -> Any:
    cfg = BehaviorMemoryConfig.model_validate(
        {
            "store": {"path": str(tmp_path / "h.db")},
            "embeddings": {"provider": "hashing"},
            "retrieval": {"strategy": "lexical"},
            "reflection": {"mode": "manual"},
            "curation": {"lifecycle": {"withhold_epsilon": 0.5}},
        }
    )
    m = BehaviorMemory(cfg)
    m.handbook.add(WITHHELD, "Add two numbers by adding tens and units separately.")
    m.handbook.add(PINNED, "Check a sum by subtracting one addend from the result.", pinned=True)
    m.exposure = Exposure(1.0)  # every chosen behavior but the pinned one is withheld
    yield m
    uninstrument(m)
    m.close()


def _traced(memory: BehaviorMemory, trace_id: str) -> Any:
    trace = memory.store.get_trace(trace_id)
    assert trace.shown == [PINNED] and trace.metadata[WITHHELD_KEY] == [WITHHELD]
    return trace


def test_langchain_middleware_withholds_from_the_system_prompt(memory: BehaviorMemory) -> None:
    model = ScriptedChatModel(answer="3")
    agent = create_agent(model, [], system_prompt="You add.", middleware=[BehaviorMiddleware(memory)])
    with memory.capture() as run:
        agent.invoke({"messages": [("user", TASK)]})
    system = model.seen[0][0].content
    assert f"{PINNED}:" in system and WITHHELD not in system
    _traced(memory, run.trace_id)
    assert memory.handbook.get(WITHHELD).shown == 0 and memory.handbook.get(PINNED).shown == 1


async def test_langchain_wrapped_chain_withholds_too(memory: BehaviorMemory) -> None:
    model = ScriptedChatModel(answer="3")
    prompt = ChatPromptTemplate.from_messages([("system", "Answer briefly."), ("human", "{question}")])
    chain = wrap(prompt | model | StrOutputParser(), memory)
    with memory.capture() as run:
        await chain.ainvoke({"question": TASK})
    system = model.seen[0][0].content
    assert f"{PINNED}:" in system and WITHHELD not in system
    _traced(memory, run.trace_id)


async def test_llamaindex_agent_withholds_from_the_system_prompt(memory: BehaviorMemory) -> None:
    llm = MockFunctionCallingLLMWithChatMemoryOfLastCall()
    agent = llama_wrap(FunctionAgent(tools=[], llm=llm, system_prompt="You add."), memory)
    with memory.capture() as run:
        handler = agent.run(TASK)
    await handler
    systems = "\n".join(str(m.content) for m in llm.last_chat_messages if m.role == "system")
    assert f"{PINNED}:" in systems and WITHHELD not in systems
    _traced(memory, run.trace_id)


async def test_llamaindex_block_with_everything_withheld_still_records_it(memory: BehaviorMemory) -> None:
    memory.handbook.update(PINNED, pinned=False)
    llm = MockFunctionCallingLLMWithChatMemoryOfLastCall()
    agent = llama_wrap(FunctionAgent(tools=[], llm=llm, system_prompt="You add."), memory)
    with memory.capture() as run:
        await agent.run(TASK)
    sent = "\n".join(str(m.content) for m in llm.last_chat_messages)
    assert WITHHELD not in sent and PINNED not in sent
    trace = memory.store.get_trace(run.trace_id)
    assert trace.shown == [] and sorted(trace.metadata[WITHHELD_KEY]) == sorted([PINNED, WITHHELD])
