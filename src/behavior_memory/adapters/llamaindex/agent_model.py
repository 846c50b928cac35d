"""The agent's LlamaIndex LLM as the reflection model (``reflection.llm: agent``).

``wrap`` hands the agent's ``llm`` over. Reflection calls ``llm.chat`` (reflection) and
``llm.as_structured_llm(schema).chat`` (extraction, LlamaIndex's structured prediction) from the
reflection worker's thread: no run tag is active there, so the wrapped agent's trace and stream
never see these calls, while LlamaIndex's own instrumentation does.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from llama_index.core.base.llms.types import ChatMessage
from pydantic import BaseModel

from ...llm.client import ChatResult
from ._messages import response_model, response_usage

__all__ = ["LlamaIndexAgentModel"]

ModelT = TypeVar("ModelT", bound=BaseModel)


def _messages(messages: Sequence[Mapping[str, Any]]) -> list[ChatMessage]:
    return [ChatMessage(role=str(m.get("role") or "user"), content=str(m.get("content") or "")) for m in messages]


class LlamaIndexAgentModel:
    """``AgentModel`` over a LlamaIndex ``LLM``."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm

    @property
    def name(self) -> str:
        metadata = getattr(self.llm, "metadata", None)
        return str(getattr(metadata, "model_name", None) or getattr(self.llm, "model", None) or type(self.llm).__name__)

    def _result(self, response: Any, started: float) -> ChatResult:
        raw = getattr(response, "raw", None)
        choices = raw.get("choices") if isinstance(raw, dict) else getattr(raw, "choices", None)
        finish = getattr(choices[0], "finish_reason", None) if choices else None
        return ChatResult(
            content=str(getattr(getattr(response, "message", None), "content", None) or ""),
            usage=response_usage(response),
            finish_reason=finish if isinstance(finish, str) else None,
            model=response_model(response) or self.name,
            latency_s=time.perf_counter() - started,
        )

    def chat(self, messages: Sequence[Mapping[str, Any]], *, max_tokens: int | None) -> ChatResult:
        started = time.perf_counter()
        return self._result(self.llm.chat(_messages(messages)), started)

    def chat_json(
        self, messages: Sequence[Mapping[str, Any]], schema: type[ModelT], *, max_tokens: int | None
    ) -> tuple[ModelT | None, ChatResult]:
        started = time.perf_counter()
        response = self.llm.as_structured_llm(schema).chat(_messages(messages))
        parsed = getattr(response, "raw", None)
        result = self._result(response, started)
        if parsed is None:
            return None, result
        return (parsed if isinstance(parsed, schema) else schema.model_validate(parsed)), result
