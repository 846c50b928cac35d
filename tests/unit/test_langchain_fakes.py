"""A scripted chat model for the LangChain adapter's unit tests (no network), and its own checks.

``ScriptedChatModel`` answers like a tool-using agent would: while tools are bound and the last
message is not a tool result, it calls ``tool_name`` with ``tool_args``; otherwise it answers
``answer``. It keeps every message list it received in ``seen`` and reports token usage, so the
tests can check what reached the model and what the trace recorded.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

_ids = itertools.count(1)


class ScriptedChatModel(BaseChatModel):
    tool_name: str | None = None
    tool_args: dict[str, Any] = Field(default_factory=dict)
    answer: str = "The answer is 3."
    delay_s: float = 0.0
    error: Exception | None = None  # raised on every call (a dead model server)
    seen: list[list[BaseMessage]] = Field(default_factory=list)
    tools_bound: bool = False

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedChatModel:
        return self.model_copy(update={"tools_bound": bool(tools)})  # shares ``seen``

    def _reply(self, messages: list[BaseMessage]) -> ChatResult:
        self.seen.append(list(messages))
        if self.error is not None:
            raise self.error
        prompt_chars = sum(len(str(m.content)) for m in messages)
        usage = {"input_tokens": prompt_chars // 4, "output_tokens": 5, "total_tokens": prompt_chars // 4 + 5}
        if self.tools_bound and self.tool_name and not isinstance(messages[-1], ToolMessage):
            message = AIMessage(
                content="",
                usage_metadata=usage,
                response_metadata={"model_name": "scripted"},
                tool_calls=[{"name": self.tool_name, "args": self.tool_args, "id": f"call_{next(_ids)}"}],
            )
        else:
            message = AIMessage(content=self.answer, usage_metadata=usage, response_metadata={"model_name": "scripted"})
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._reply(messages)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return self._reply(messages)


def test_scripted_model_calls_the_tool_then_answers():
    model = ScriptedChatModel(tool_name="add", tool_args={"a": 1, "b": 2}).bind_tools(["add"])
    first = model.invoke([HumanMessage("1+2?")])
    assert first.tool_calls[0]["name"] == "add" and first.usage_metadata["output_tokens"] == 5
    second = model.invoke([HumanMessage("1+2?"), first, ToolMessage("3", tool_call_id=first.tool_calls[0]["id"])])
    assert second.content == "The answer is 3." and len(model.seen) == 2


def test_scripted_model_without_tools_answers_at_once():
    assert ScriptedChatModel(tool_name="add").invoke("hi").content == "The answer is 3."
