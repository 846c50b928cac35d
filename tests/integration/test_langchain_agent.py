"""The LangChain adapter with a real ``create_agent`` agent, real tools and the real vLLM server.

The 135M model proves the plumbing only. SmolLM2 rarely calls a tool on its own, and this vLLM
CPU build answers ``tool_choice="required"`` with HTTP 500 (its structural-tag grammar is
broken), so ``ToolFirst`` constrains the first model call of a task with a regex to a hermes
``<tool_call>`` that the server's own tool parser turns into a real tool call; later calls get
``tool_choice="none"``; ``max_tokens`` leaves room for that call. Requests are captured at the
wire through the OpenAI client's HTTP hooks.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import openai
import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig, BehaviorStatus, Outcome, ReflectionStatus
from behavior_memory.adapters import wrap
from behavior_memory.adapters.langchain import BehaviorMiddleware

SYSTEM = "You are a calculator agent. Use the calculator tool, then give the number."
CALL = (
    r'<tool_call>\n\{"name": "calculator", "arguments": \{"expression": "[0-9]{1,3} [*+-] [0-9]{1,3}"\}\}\n</tool_call>'
)


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression such as '17 * 23'."""
    a, op, b = expression.split()
    return str({"*": int(a) * int(b), "+": int(a) + int(b), "-": int(a) - int(b)}[op])


@tool
def lookup(city: str) -> str:
    """Population of a city, in millions."""
    return {"paris": "2.1", "tokyo": "14"}.get(city.strip().lower(), "unknown")


class ToolFirst(AgentMiddleware):
    """The first model call of a task must call the calculator; later calls must answer."""

    def _request(self, request: Any) -> Any:
        if any(m.type == "tool" for m in request.messages):
            return request.override(tool_choice="none")
        body = {"structured_outputs": {"regex": CALL}}
        return request.override(model_settings={**request.model_settings, "extra_body": body})

    def wrap_model_call(self, request, handler):
        return handler(self._request(request))

    async def awrap_model_call(self, request, handler):
        return await handler(self._request(request))


class Wire:
    """Chat requests as the server received them (JSON bodies), via the client's HTTP hooks."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def _keep(self, request: Any) -> None:
        if request.url.path.endswith("/chat/completions"):
            self.bodies.append(json.loads(request.content))

    async def _akeep(self, request: Any) -> None:
        self._keep(request)

    def model(self, base_url: str, name: str, max_tokens: int = 40) -> ChatOpenAI:
        return ChatOpenAI(
            base_url=base_url,
            api_key="EMPTY",
            model=name,
            use_responses_api=False,
            stream_usage=True,
            max_tokens=max_tokens,
            temperature=0,
            max_retries=0,
            timeout=120,
            http_client=openai.DefaultHttpxClient(event_hooks={"request": [self._keep]}),
            http_async_client=openai.DefaultAsyncHttpxClient(event_hooks={"request": [self._akeep]}),
        )

    def systems(self) -> list[str]:
        return [b["messages"][0]["content"] for b in self.bodies if b["messages"][0]["role"] == "system"]


def _memory(tmp_path, server, mode: str = "manual") -> BehaviorMemory:
    cfg = BehaviorMemoryConfig.model_validate(
        {
            "namespace": "it",
            "store": {"path": str(tmp_path / "handbook.db")},
            "embeddings": {"provider": "hashing"},
            "retrieval": {"strategy": "topic"},  # every behavior of the task's topic: minted ones included
            "llm": {
                "base_url": server.base_url,
                "model": server.model,
                "timeout_s": 120,
                "max_retries": 0,
                "output_retries": 1,
            },
            "curation": {"approval": "auto"},  # minted behaviors the guard passes go active at once
            "reflection": {
                "mode": mode,
                "max_behaviors_per_trace": 2,
                "reflection_max_tokens": 160,
                "extraction_max_tokens": 200,
                "extra_body": {"repetition_penalty": 1.15},
            },
        }
    )
    memory = BehaviorMemory(cfg)
    memory.handbook.add("behavior_use_the_calculator", "Send arithmetic to the calculator tool.", topic="arithmetic")
    return memory


def _agent(memory: BehaviorMemory, model: ChatOpenAI):
    middleware = BehaviorMiddleware(memory, topic="arithmetic")
    return create_agent(model, [calculator, lookup], system_prompt=SYSTEM, middleware=[middleware, ToolFirst()])


def test_agent_tasks_are_recorded_and_the_next_task_gets_minted_behaviors(vllm_server, tmp_path):
    wire = Wire()
    with _memory(tmp_path, vllm_server) as memory:
        agent = _agent(memory, wire.model(vllm_server.base_url, vllm_server.model))
        with memory.capture() as run:  # the one way to a run's trace id, in every integration
            agent.invoke({"messages": [("user", "What is 17 * 23?")]})

        trace = memory.traces.get(run.trace_id)
        assert [s.kind for s in trace.steps] == ["model", "tool", "model"]
        call, tool_step, answer = trace.steps
        assert tool_step.name == "calculator" and tool_step.error is None
        assert tool_step.result == calculator.invoke(tool_step.args)  # the tool really ran on the model's args
        for step in (call, answer):
            assert step.usage.prompt_tokens > 0 and step.usage.completion_tokens > 0
        assert answer.usage.cached_tokens > 0  # same prefix as the first call: vLLM reused it

        systems = wire.systems()
        assert len(systems) == 2 and systems[0] == systems[1]  # byte-identical on every call
        assert systems[0].startswith(SYSTEM + "\n\n") and "behavior_use_the_calculator: Send" in systems[0]
        assert call.messages[0] == {"role": "system", "content": systems[0]}
        assert trace.shown == ["behavior_use_the_calculator"] and trace.topic == "arithmetic"

        assert memory.reflect_pending() == {"minted": 1}
        minted = memory.traces.get(trace.id).minted
        assert minted and memory.traces.get(trace.id).reflection_status == ReflectionStatus.DONE

        statuses = {name: memory.handbook.get(name).status for name in minted}
        assert set(statuses.values()) <= {BehaviorStatus.ACTIVE, BehaviorStatus.QUARANTINED}  # auto approval
        active = {name for name, status in statuses.items() if status == BehaviorStatus.ACTIVE}

        with memory.capture() as second:
            agent.invoke({"messages": [("user", "What is 12 * 12?")]})
        shown = memory.traces.get(second.trace_id).shown
        assert active <= set(shown) and not (set(minted) - active) & set(shown)  # quarantined: never shown
        assert all(f"{name}: " in wire.systems()[-1] for name in active)
        memory.feedback(second.trace_id, outcome="success", score=1.0)
        assert memory.traces.get(second.trace_id).outcome == Outcome.SUCCESS


async def test_sixteen_concurrent_ainvokes_make_sixteen_separate_traces(vllm_server, tmp_path):
    wire = Wire()
    with _memory(tmp_path, vllm_server) as memory:
        agent = _agent(memory, wire.model(vllm_server.base_url, vllm_server.model))
        questions = [f"What is {i} + {i + 7}?" for i in range(16)]

        async def ask(question: str) -> Any:
            with memory.capture() as run:  # each task's own block sees its own trace only
                await agent.ainvoke({"messages": [("user", question)]})
            return run

        runs = await asyncio.gather(*(ask(q) for q in questions))
        assert all(len(run.trace_ids) == 1 for run in runs) and len({run.trace_id for run in runs}) == 16
        for question, run in zip(questions, runs, strict=True):
            trace = memory.traces.get(run.trace_id)
            assert trace.task == question and [s.kind for s in trace.steps] == ["model", "tool", "model"]
            assert [m["content"] for s in trace.steps for m in s.messages if m["role"] == "user"] == [question]
            args = json.dumps(trace.steps[1].args, sort_keys=True)
            assert trace.steps[0].output == f"tool_call: calculator({args})"  # its own tool call, not another's
            assert all(s.usage.total_tokens > 0 for s in trace.steps if s.kind == "model")
        assert len(wire.bodies) == 32


def test_background_reflection_never_reaches_the_users_stream(vllm_server, tmp_path):
    with _memory(tmp_path, vllm_server, mode="background") as memory:
        agent = _agent(memory, Wire().model(vllm_server.base_url, vllm_server.model))
        with memory.capture() as first:
            agent.invoke({"messages": [("user", "What is 2 + 2?")]})  # its reflection starts now
        with memory.capture() as streamed_run:
            parts = list(agent.stream({"messages": [("user", "What is 3 + 4?")]}, stream_mode=["messages", "values"]))
        assert memory.wait_for_reflection(timeout=300)
        chunks = [data for mode, data in parts if mode == "messages"]
        assert {meta["langgraph_node"] for _, meta in chunks} <= {"model", "tools"}  # no reflection call
        second = memory.traces.get(streamed_run.trace_id)
        streamed = {chunk.id for chunk, meta in chunks if meta["langgraph_node"] == "model"}
        assert len(streamed) == sum(s.kind == "model" for s in second.steps) == 2
        assert memory.traces.get(first.trace_id).reflection_status != ReflectionStatus.PENDING


def test_wrapped_chain_against_the_server(vllm_server, tmp_path):
    wire = Wire()
    with _memory(tmp_path, vllm_server) as memory:
        prompt = ChatPromptTemplate.from_messages([("system", "Answer with a number."), ("human", "{question}")])
        chain = wrap(
            prompt | wire.model(vllm_server.base_url, vllm_server.model, max_tokens=8), memory, topic="arithmetic"
        )
        with memory.capture() as run:
            chain.invoke({"question": "What is 5 + 5?"})
        trace = memory.traces.get(run.trace_id)
        assert wire.systems()[0] == trace.steps[0].messages[0]["content"]
        assert "behavior_use_the_calculator" in wire.systems()[0] and trace.steps[0].usage.total_tokens > 0


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_dead_model_server_keeps_the_agents_own_error(tmp_path):
    dead = f"http://127.0.0.1:{_closed_port()}/v1"
    plain = create_agent(Wire().model(dead, "m"), [calculator], system_prompt=SYSTEM)
    with pytest.raises(Exception) as without:
        plain.invoke({"messages": [("user", "What is 1 + 1?")]})
    cfg = {
        "store": {"path": str(tmp_path / "h.db")},
        "embeddings": {"provider": "hashing"},
        "reflection": {"mode": "manual"},
    }
    with BehaviorMemory(BehaviorMemoryConfig.model_validate(cfg)) as memory:
        middleware = BehaviorMiddleware(memory)
        agent = create_agent(Wire().model(dead, "m"), [calculator], system_prompt=SYSTEM, middleware=[middleware])
        with pytest.raises(type(without.value)), memory.capture() as run:
            agent.invoke({"messages": [("user", "What is 1 + 1?")]})
        assert middleware.flush() == [run.trace_id]
        trace = memory.traces.get(run.trace_id)
        assert trace.outcome == Outcome.FAILURE and type(without.value).__name__ in trace.steps[0].error
