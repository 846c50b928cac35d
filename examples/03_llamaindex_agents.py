"""LlamaIndex agents with behavior memory, each run twice against the local vLLM server.

    python examples/03_llamaindex_agents.py            # starts the embedded vLLM server if none answers
    python examples/03_llamaindex_agents.py --base-url http://gpu-box:8000/v1 --model Qwen/Qwen3-8B --free-tools

A ``FunctionAgent`` with two tools (calculator, population lookup) is given behavior memory with
``wrap(agent, memory)``; a ``ReActAgent`` gets it the other way, ``instrument(memory)`` plus a
``BehaviorMemoryBlock`` in its ``Memory``. Pass 1 solves a few tasks with an empty handbook; each
run is recorded as a trace (model calls with token usage, tool calls), and reflection then mints
behaviors from those traces. Pass 2 solves new tasks: the minted behaviors are in every prompt of
the task (the same bytes on every step, so vLLM's prefix cache reuses them) and the answers'
citations of them are counted. Needs the ``[llamaindex]`` extra.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llama_index.core.agent.workflow import FunctionAgent, ReActAgent
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.instrumentation.dispatcher import instrument_tags
from llama_index.core.memory import InsertMethod
from llama_index.llms.openai_like import OpenAILike

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig
from behavior_memory.adapters.llamaindex import (
    TOPIC_TAG,
    BehaviorMemoryBlock,
    behavior_chat_memory,
    instrument,
    wrap,
)
from behavior_memory.serving import server

TOPIC = "arithmetic and facts"
SYSTEM = "You are a careful assistant. Use the tools for arithmetic and facts, then answer with the number."
POPULATIONS = {"paris": 2.1, "tokyo": 14.0, "lagos": 15.4, "lima": 10.9}
FIRST_PASS = {
    "function": ["What is 17 * 23?", "What is the population of Tokyo, in millions?"],
    "react": ["What is 144 - 89?"],
}
SECOND_PASS = {
    "function": ["What is 21 * 19?", "What is the population of Lima, in millions?"],
    "react": ["What is 96 + 57?"],
}

ARGS = r'(\{"expression": "[0-9]{1,3} [*+-] [0-9]{1,3}"\}|\{"city": "(Paris|Tokyo|Lagos|Lima)"\})'
HERMES_CALL = rf'<tool_call>\n\{{"name": "(calculator|lookup)", "arguments": {ARGS}\}}\n</tool_call>'
REACT_CALL = rf"Thought: [A-Za-z ,]{{1,60}}\.\nAction: (calculator|lookup)\nAction Input: {ARGS}"


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression with two integers, such as '17 * 23'."""
    try:
        a, op, b = expression.split()
        return str({"*": int(a) * int(b), "+": int(a) + int(b), "-": int(a) - int(b)}[op])
    except (ValueError, KeyError):
        return "error: write it as 'a op b' with op one of * + -"


def lookup(city: str) -> str:
    """Population of a city, in millions of people."""
    value = POPULATIONS.get(city.strip().lower())
    return "unknown city" if value is None else f"{value} million"


class FirstCallUsesATool(OpenAILike):
    """``OpenAILike`` whose first call of a task is constrained to a tool call (vLLM structured outputs).

    SmolLM2-135M rarely calls a tool by itself; the constrained text is a hermes ``<tool_call>`` (the
    server's tool parser turns it into a real call) or a ReAct ``Action:``. Later calls are free.
    Drop it (``--free-tools``) with a model that calls tools on its own.
    """

    first_call_regex: str = HERMES_CALL

    def _constrain(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> dict[str, Any]:
        started = any(m.role == "tool" or "Observation:" in (m.content or "") for m in messages)
        if started:
            return kwargs
        return {**kwargs, "extra_body": {"structured_outputs": {"regex": self.first_call_regex}}}

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Any:
        return await super().achat(messages, **self._constrain(messages, kwargs))

    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Any:
        return await super().astream_chat(messages, **self._constrain(messages, kwargs))


def show(memory: BehaviorMemory, question: str, trace_id: str) -> None:
    trace = memory.traces.get(trace_id)
    steps = ", ".join(
        f"model {s.usage.total_tokens if s.usage else '?'} tok"
        if s.kind == "model"
        else f"{s.name}({s.args}) -> {s.result}"
        for s in trace.steps
    )
    answer = (trace.answer or "").replace("\n", " ")[:100]
    print(f"\n> {question}\n  answer: {answer}\n  steps: {steps}")
    print(f"  behaviors shown: {len(trace.shown)}; cited: {trace.cited or 'none'}; trace {trace.id}")


async def run_pass(memory: BehaviorMemory, agents: dict[str, Any], tasks: dict[str, list[str]], title: str) -> None:
    print(f"\n=== {title} ===")
    # memory.capture() is the one way to a run's trace id, whichever way the run was recorded.
    for question in tasks["function"]:  # wrap(): a per-run Memory with the block, and a trace per run
        with memory.capture() as run:
            handler = agents["function"].run(question, max_iterations=4, early_stopping_method="generate")
        await handler
        show(memory, question, run.trace_id)
    for question in tasks["react"]:  # instrument() + a BehaviorMemoryBlock in the agent's own Memory
        chat = behavior_chat_memory(agents["block"], insert_method=InsertMethod.USER)  # ReAct drops system msgs
        with instrument_tags({TOPIC_TAG: TOPIC}), memory.capture() as run:  # the tag files the trace under the topic
            handler = agents["react"].run(question, memory=chat, max_iterations=4, early_stopping_method="generate")
        await handler
        show(memory, question, run.trace_id)


async def main_async(base_url: str, model: str, handbook: str, free_tools: bool) -> None:
    config = BehaviorMemoryConfig.model_validate(
        {
            "namespace": "examples/llamaindex",
            "store": {"path": handbook},
            "llm": {"base_url": base_url, "model": model, "output_retries": 1},
            "retrieval": {"strategy": "topic"},  # every behavior of the task's topic, as in the paper's MATH runs
            "reflection": {
                "mode": "manual",  # reflect between the passes, in this process
                "max_behaviors_per_trace": 2,
                "extra_body": {"repetition_penalty": 1.15},  # small models loop without it
            },
        }
    )
    settings: dict[str, Any] = dict(
        model=model,
        api_base=base_url,
        api_key="EMPTY",
        is_chat_model=True,
        is_function_calling_model=True,
        context_window=8192,
        max_tokens=64,
        temperature=0.0,
        timeout=300,
        additional_kwargs={"stream_options": {"include_usage": True}},  # token usage when streaming
    )
    llm_cls = OpenAILike if free_tools else FirstCallUsesATool
    function_llm = llm_cls(**settings)
    react_llm = llm_cls(**settings) if free_tools else FirstCallUsesATool(first_call_regex=REACT_CALL, **settings)
    with BehaviorMemory(config) as memory:
        instrument(memory)  # records the ReActAgent's runs (wrap() records its own)
        agents = {
            "function": wrap(
                FunctionAgent(tools=[calculator, lookup], llm=function_llm, system_prompt=SYSTEM), memory, topic=TOPIC
            ),
            "react": ReActAgent(tools=[calculator, lookup], llm=react_llm),
            "block": BehaviorMemoryBlock(memory, topic=TOPIC),
        }
        print(f"model {model} at {base_url}; handbook {handbook}")
        await run_pass(memory, agents, FIRST_PASS, "pass 1: an empty handbook")
        print("\n=== reflection: the model reads each trace and proposes behaviors ===")
        print(f"traces: {dict(memory.reflect_pending())}")
        for behavior in memory.handbook.list():
            print(f"  {behavior.line}")
        await run_pass(memory, agents, SECOND_PASS, "pass 2: the minted behaviors in every prompt")
        counts = memory.handbook.list()
        print(
            f"\nhandbook: {len(counts)} behaviors, shown {sum(b.shown for b in counts)} times, "
            f"cited {sum(b.cited for b in counts)} times"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--base-url", help="OpenAI-compatible server (default: the embedded vLLM, started if needed)")
    parser.add_argument("--model", help="model name (default: the server's first model)")
    parser.add_argument("--handbook", help="SQLite file to keep (default: a temporary one)")
    parser.add_argument("--free-tools", action="store_true", help="let the model choose tools by itself")
    args = parser.parse_args()

    cfg = BehaviorMemoryConfig()
    base_url = args.base_url or cfg.serve.base_url
    if not server.is_up(base_url):
        if args.base_url:
            raise SystemExit(f"no model server answers at {base_url}")
        print(f"starting the embedded vLLM server at {base_url} (the first run installs it: several minutes)")
        server.start(cfg.serve)
    model = args.model or server.list_models(base_url)[0]
    with tempfile.TemporaryDirectory() as tmp:
        handbook = args.handbook or str(Path(tmp) / "handbook.db")
        asyncio.run(main_async(base_url, model, handbook, args.free_tools))


if __name__ == "__main__":
    main()
