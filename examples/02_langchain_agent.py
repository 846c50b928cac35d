"""A tool-using LangChain agent with behavior memory, run twice against the local vLLM server.

    python examples/02_langchain_agent.py            # starts the embedded vLLM server if none answers
    python examples/02_langchain_agent.py --base-url http://gpu-box:8000/v1 --model Qwen/Qwen3-8B

Pass 1 solves a few tasks with a calculator and a lookup tool; ``BehaviorMiddleware`` records each
task (model calls with token usage, tool calls) as a trace, and reflection then mints behaviors from
those traces. Pass 2 solves new tasks: the minted behaviors are appended to the system prompt (the
same bytes on every model call of a task, so vLLM's prefix cache reuses them) and the answers'
citations of them are counted. Needs the ``[langchain]`` extra.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig
from behavior_memory.adapters.langchain import BehaviorMiddleware
from behavior_memory.serving import server

SYSTEM = "You are a careful assistant. Use the tools for arithmetic and facts, then answer with the number."
POPULATIONS = {"paris": 2.1, "tokyo": 14.0, "lagos": 15.4, "lima": 10.9}
FIRST_PASS = ["What is 17 * 23?", "What is the population of Tokyo, in millions?", "What is 144 - 89?"]
SECOND_PASS = ["What is 21 * 19?", "What is the population of Lima, in millions?"]


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression with two integers, such as '17 * 23'."""
    try:
        a, op, b = expression.split()
        return str({"*": int(a) * int(b), "+": int(a) + int(b), "-": int(a) - int(b)}[op])
    except (ValueError, KeyError):
        return "error: write it as 'a op b' with op one of * + -"


@tool
def lookup(city: str) -> str:
    """Population of a city, in millions of people."""
    value = POPULATIONS.get(city.strip().lower())
    return "unknown city" if value is None else f"{value} million"


class FirstCallUsesATool(AgentMiddleware):
    """Constrain a task's first model call to one hermes ``<tool_call>`` (vLLM structured outputs).

    SmolLM2-135M rarely calls a tool by itself; the server's tool parser turns the constrained text
    into a real tool call. Later calls answer in plain text. Drop it (``--free-tools``) with a model
    that calls tools on its own.
    """

    CALL = (
        r'<tool_call>\n\{"name": "calculator", "arguments": \{"expression": "[0-9]{1,3} [*+-] [0-9]{1,3}"\}\}\n'
        r"</tool_call>"
        r'|<tool_call>\n\{"name": "lookup", "arguments": \{"city": "(Paris|Tokyo|Lagos|Lima)"\}\}\n</tool_call>'
    )

    def _request(self, request: Any) -> Any:
        if any(m.type == "tool" for m in request.messages):
            return request.override(tool_choice="none")
        body = {"structured_outputs": {"regex": self.CALL}}
        return request.override(model_settings={**request.model_settings, "extra_body": body})

    def wrap_model_call(self, request: Any, handler: Any) -> Any:
        return handler(self._request(request))

    async def awrap_model_call(self, request: Any, handler: Any) -> Any:
        return await handler(self._request(request))


def run_pass(agent: Any, memory: BehaviorMemory, tasks: list[str], title: str) -> None:
    print(f"\n=== {title} ===")
    for question in tasks:
        with memory.capture() as run:  # the one way to a run's trace id, in every integration
            agent.invoke({"messages": [("user", question)]})
        trace = memory.traces.get(run.trace_id)
        steps = ", ".join(
            f"{s.kind} {s.usage.total_tokens} tok" if s.kind == "model" else f"{s.name}({s.args}) -> {s.result}"
            for s in trace.steps
        )
        answer = (trace.answer or "").replace("\n", " ")[:100]
        print(f"\n> {question}\n  answer: {answer}\n  steps: {steps}")
        print(f"  behaviors shown: {len(trace.shown)}; cited: {trace.cited or 'none'}; trace {trace.id}")


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
        config = BehaviorMemoryConfig.model_validate(
            {
                "namespace": "examples/langchain",
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
        with BehaviorMemory(config) as memory:
            llm = ChatOpenAI(
                base_url=base_url,
                api_key="EMPTY",
                model=model,
                use_responses_api=False,
                stream_usage=True,
                max_tokens=64,
                temperature=0,
            )
            middleware: list[AgentMiddleware] = [BehaviorMiddleware(memory, topic="arithmetic and facts")]
            if not args.free_tools:
                middleware.append(FirstCallUsesATool())
            agent = create_agent(llm, [calculator, lookup], system_prompt=SYSTEM, middleware=middleware)
            print(f"model {model} at {base_url}; handbook {handbook}")

            run_pass(agent, memory, FIRST_PASS, "pass 1: an empty handbook")
            print("\n=== reflection: the model reads each trace and proposes behaviors ===")
            print(f"traces: {dict(memory.reflect_pending())}")
            for behavior in memory.handbook.list():
                print(f"  {behavior.line}")
            run_pass(agent, memory, SECOND_PASS, "pass 2: the minted behaviors in every system prompt")

            counts = memory.handbook.list()
            print(
                f"\nhandbook: {len(counts)} behaviors, shown {sum(b.shown for b in counts)} times, "
                f"cited {sum(b.cited for b in counts)} times"
            )


if __name__ == "__main__":
    main()
