"""``wrap(agent, memory)``: behavior memory for an existing LlamaIndex agent or workflow.

::

    agent = wrap(FunctionAgent(tools=[...], llm=llm, system_prompt="..."), memory, user_id="alice")
    with memory.capture() as run:
        handler = agent.run("How many primes are below 30?")   # the original WorkflowHandler
    result = await handler
    memory.feedback(run.trace_id, outcome="success")

Each ``run`` gets its own run key in the instrument tags (so concurrent runs never mix), a per-run
``Memory`` holding a ``BehaviorMemoryBlock`` (or the caller's memory, with the block added), and one
trace, saved and queued for reflection when the run ends. Its namespace follows the core's rule: a
``namespace`` as given, else the default plus ``/<user_id>``. Everything else is the wrapped
object's: attributes are delegated and ``run`` returns what the original returns.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from llama_index.core.agent.workflow import AgentWorkflow, ReActAgent
from llama_index.core.agent.workflow.base_agent import BaseWorkflowAgent
from llama_index.core.memory import InsertMethod, Memory
from llama_index.core.workflow import Context
from llama_index_instrumentation.dispatcher import active_instrument_tags, instrument_tags

from ...recording.namespaces import task_namespace
from ...types import new_id
from ._messages import user_input_text
from .block import BehaviorMemoryBlock
from .chat_store import behavior_chat_memory
from .instrumentation import (
    NAMESPACE_TAG,
    RUN_TAG,
    TOPIC_TAG,
    LlamaIndexInstrumentation,
    instrument,
    instrumentation_for,
)

__all__ = ["BehaviorMemoryAgent", "choose_insert_method", "wrap"]

log = logging.getLogger(__name__)

_POSITIONAL = ("user_msg", "chat_history", "memory", "ctx")


def choose_insert_method(target: Any) -> InsertMethod:
    """Where the block goes for this agent or workflow.

    A workflow ``ReActAgent`` removes the first system message it is given (its own prompt lives in
    the ReAct header), so without a ``system_prompt`` a system-message block would be lost: then the
    block goes in front of the user message. Otherwise it goes into a system message (a stable
    prefix); FunctionAgent then sends two leading system messages, which our chat template joins.
    """
    agents = list(target.agents.values()) if isinstance(target, AgentWorkflow) else [target]
    if any(isinstance(a, ReActAgent) and not a.system_prompt for a in agents):
        return InsertMethod.USER
    return InsertMethod.SYSTEM


class BehaviorMemoryAgent:
    """An agent or workflow whose runs get behaviors and are recorded (what ``wrap`` returns).

    ``search_tool=True`` adds the ``search_behaviors`` tool to the agent (to each agent of a
    workflow), so it can search the handbook mid-task; what it returns counts as shown.
    """

    def __init__(
        self,
        target: Any,
        memory: Any,
        *,
        namespace: str | None = None,
        user_id: str | None = None,
        topic: str | None = None,
        insert_method: InsertMethod | Literal["auto", "system", "user"] = "auto",
        block: BehaviorMemoryBlock | None = None,
        token_limit: int = 30_000,
        search_tool: bool = False,
    ) -> None:
        self.target = target
        self.memory = memory
        self.namespace = namespace
        self.user_id = user_id
        self.topic = topic
        self.block = block or BehaviorMemoryBlock(memory)
        self.insert_method = choose_insert_method(target) if insert_method == "auto" else InsertMethod(insert_method)
        self.token_limit = token_limit
        self.is_agent = isinstance(target, BaseWorkflowAgent | AgentWorkflow)
        # Only runs we tag are recorded, unless the user asked instrument() for every agent run.
        self.instrumentation: LlamaIndexInstrumentation = instrumentation_for(memory) or instrument(
            memory, record_untagged=False
        )
        if search_tool:
            _add_search_tool(target, memory, namespace=namespace, topic=topic)
        if memory.config.reflection.llm == "agent":  # reflect with the agent's own LLM
            _hand_over_llm(target, memory)

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Run the wrapped object as its own ``run`` would, with behaviors and a trace.

        Extra keywords: ``memory_user_id``, ``memory_namespace`` and ``memory_topic`` file this
        run's retrieval and trace under another user, namespace or topic. Its trace id comes from
        ``memory.capture()`` around this call, as for every integration.
        """
        # Arguments go through untouched (LlamaIndex resolves them with `kwargs or positional`).
        positional = dict(zip(_POSITIONAL, args, strict=False)) if args and not isinstance(args[0], Context) else {}
        user_msg = kwargs.get("user_msg") or positional.get("user_msg")
        chat_history = kwargs.get("chat_history") or positional.get("chat_history")
        namespace = task_namespace(
            self.namespace or self.memory.namespace,
            {"namespace": kwargs.pop("memory_namespace", None), "user_id": kwargs.pop("memory_user_id", None)},
            {"user_id": self.user_id},
        )
        topic = kwargs.pop("memory_topic", None) or self.topic
        key = new_id()
        if self.is_agent:
            kwargs["memory"] = self._chat_memory(kwargs.get("memory") or positional.get("memory"), key)
        task = user_input_text(user_msg, chat_history) or _summary(kwargs)
        self.instrumentation.start_run(
            key, task, namespace=namespace, topic=topic, metadata={"workflow": type(self.target).__name__}
        )
        tags = {**active_instrument_tags.get(), RUN_TAG: key, NAMESPACE_TAG: namespace}
        if topic:
            tags[TOPIC_TAG] = topic
        try:
            with instrument_tags(tags):
                handler = self.target.run(*args, **kwargs)
        except BaseException:
            self.instrumentation.discard_run(key)
            raise
        return handler

    def _chat_memory(self, given: Any, key: str) -> Any:
        if given is None:
            return behavior_chat_memory(
                self.block, session_id=f"bm-{key}", insert_method=self.insert_method, token_limit=self.token_limit
            )
        if isinstance(given, Memory):
            if not any(isinstance(b, BehaviorMemoryBlock) for b in given.memory_blocks):
                given.memory_blocks.append(self.block)
            return given
        log.warning(
            "%s cannot hold memory blocks; this run is recorded but gets no behaviors "
            "(pass a llama_index.core.memory.Memory)",
            type(given).__name__,
        )
        return given

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "target":  # copy/pickle probe before __init__ ran
            raise AttributeError(name)
        return getattr(self.target, name)

    def __repr__(self) -> str:
        return f"BehaviorMemoryAgent({self.target!r}, memory={self.memory!r})"


def _add_search_tool(target: Any, memory: Any, *, namespace: str | None, topic: str | None) -> None:
    """Give the agent (every agent of a workflow) the ``search_behaviors`` tool, once."""
    from ...errors import InvalidInputError
    from .search_tool import search_behaviors_tool

    agents = list(target.agents.values()) if isinstance(target, AgentWorkflow) else [target]
    if not all(isinstance(a, BaseWorkflowAgent) for a in agents):
        raise InvalidInputError(f"search_tool=True needs an agent with tools, not {type(target).__name__}")
    tool = search_behaviors_tool(memory, namespace=namespace, topic=topic)
    for agent in agents:
        names = [getattr(getattr(t, "metadata", None), "name", None) for t in agent.tools or []]
        if tool.metadata.name not in names:
            agent.tools = [*(agent.tools or []), tool]


def _hand_over_llm(target: Any, memory: Any) -> None:
    agents = list(target.agents.values()) if isinstance(target, AgentWorkflow) else [target]
    llm = next((a.llm for a in agents if getattr(a, "llm", None) is not None), None)
    if llm is None:
        log.warning("reflection.llm is 'agent' but %s has no llm: traces wait for one", type(target).__name__)
        return
    from .agent_model import LlamaIndexAgentModel

    memory.use_agent_model(LlamaIndexAgentModel(llm))


def _summary(kwargs: dict[str, Any]) -> str:
    # A plain workflow has no user message: its string inputs say what it was asked.
    return "\n".join(f"{k}: {v}" for k, v in kwargs.items() if isinstance(v, str))[:4000]


def wrap(target: Any, memory: Any, **options: Any) -> BehaviorMemoryAgent:
    """Give an existing agent or workflow behavior memory (see ``BehaviorMemoryAgent`` for options)."""
    if isinstance(target, BehaviorMemoryAgent):
        if target.memory is memory and not options:
            return target
        target = target.target
    return BehaviorMemoryAgent(target, memory, **options)
