"""``reflection.llm: agent``: reflection runs on the agent's own model (real vLLM behind LangChain's
ChatOpenAI and LlamaIndex's OpenAILike) while the configured model server is dead."""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.tracers.context import collect_runs
from langchain_openai import ChatOpenAI

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig, ReflectionStatus
from behavior_memory.adapters.langchain import BehaviorMiddleware
from behavior_memory.llm.agent_model import RUN_NAME
from behavior_memory.reflection.worker import TraceResult

QUESTION = "Tom has 3 boxes with 4 apples each. How many apples does he have?"


def _memory(tmp_path: Any) -> BehaviorMemory:
    return BehaviorMemory(
        BehaviorMemoryConfig.model_validate(
            {
                "namespace": "agent-llm",
                # Nothing listens on port 9: a reflection that used this server would wait, not run.
                "llm": {"base_url": "http://127.0.0.1:9/v1", "model": "nowhere", "max_retries": 0},
                "store": {"path": str(tmp_path / "h.db")},
                "embeddings": {"provider": "hashing"},
                "reflection": {"mode": "manual", "llm": "agent", "max_behaviors_per_trace": 2},
            }
        )
    )


def _check_reflected(memory: BehaviorMemory, trace_id: str, outcome: TraceResult) -> None:
    assert outcome in {TraceResult.MINTED, TraceResult.EMPTY, TraceResult.RETRY}, outcome
    trace = memory.traces.get(trace_id)
    if outcome is TraceResult.RETRY:  # the tiny model's JSON did not validate: an attempt, not a dead server
        assert trace.reflection_error and "nowhere" not in trace.reflection_error
        return
    assert trace.reflection_status == ReflectionStatus.DONE
    assert trace.metadata["reflection"]["prompt_tokens"] > 0  # the agent's server counted them


def test_langchain_agent_model_reflects_and_shows_in_langchain_tracing(vllm_server, tmp_path):
    with _memory(tmp_path) as memory:
        with memory.capture() as early, memory.trace(task="before any agent ran") as recorder:
            recorder.finish(answer="-")
        assert memory.reflect_trace(early.trace_id) is TraceResult.SERVER_DOWN  # waits for the agent's model

        model = ChatOpenAI(
            base_url=vllm_server.base_url, api_key="EMPTY", model=vllm_server.model, use_responses_api=False,
            max_tokens=160, temperature=0, max_retries=0, timeout=120,
        )  # fmt: skip
        agent = create_agent(model, [], system_prompt="Answer briefly.", middleware=[BehaviorMiddleware(memory)])
        with memory.capture() as run:
            chunks = list(agent.stream({"messages": [("user", QUESTION)]}, stream_mode="updates"))
        assert chunks and all(RUN_NAME not in str(chunk) for chunk in chunks)
        with collect_runs() as runs:
            outcome = memory.reflect_trace(run.trace_id)
        _check_reflected(memory, run.trace_id, outcome)
        assert any(r.name == RUN_NAME for r in runs.traced_runs)  # the framework's own tracing sees it


async def test_llamaindex_agent_llm_reflects(vllm_server, tmp_path):
    pytest.importorskip("llama_index.llms.openai_like")
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.llms.openai_like import OpenAILike

    from behavior_memory.adapters.llamaindex import uninstrument, wrap

    llm = OpenAILike(
        model=vllm_server.model, api_base=vllm_server.base_url, api_key="EMPTY", is_chat_model=True,
        is_function_calling_model=True, context_window=8192, max_tokens=160, temperature=0.0, timeout=120,
        max_retries=0, should_use_structured_outputs=True,
    )  # fmt: skip
    with _memory(tmp_path) as memory:
        agent = wrap(FunctionAgent(tools=[], llm=llm, system_prompt="Answer briefly."), memory)
        assert memory.agent_llm.attached is not None  # wrap handed the agent's LLM over
        with memory.capture() as run:
            await agent.run(QUESTION)
        _check_reflected(memory, run.trace_id, memory.reflect_trace(run.trace_id))
        uninstrument(memory)
