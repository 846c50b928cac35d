"""The agent's LangChain chat model as the reflection model (``reflection.llm: agent``).

``BehaviorMiddleware`` hands the agent's model over on its first model call. Reflection then calls
it with ``invoke`` (reflection) and ``with_structured_output`` (extraction; JSON schema first, the
model's default method if it has no JSON-schema mode), from the reflection worker's thread with
``run_name="behavior_memory.reflection"``: LangSmith and other callbacks see a run of its own, the
agent's stream never does.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel

from ...llm.agent_model import RUN_NAME
from ...llm.client import ChatResult
from ...types import TokenUsage
from ._messages import output_text

__all__ = ["LangChainAgentModel"]

ModelT = TypeVar("ModelT", bound=BaseModel)


def _name(model: Any) -> str:
    return str(getattr(model, "model_name", None) or getattr(model, "model", None) or type(model).__name__)


class LangChainAgentModel:
    """``AgentModel`` over a LangChain ``BaseChatModel``."""

    def __init__(self, model: BaseChatModel) -> None:
        self.model = model
        self._structured: dict[type[BaseModel], Any] = {}

    @property
    def name(self) -> str:
        return _name(self.model)

    def _config(self) -> RunnableConfig:
        return {"run_name": RUN_NAME, "tags": [RUN_NAME]}

    def _result(self, message: Any, started: float) -> ChatResult:
        metadata = getattr(message, "response_metadata", None) or {}
        return ChatResult(
            content=output_text(message) or "",
            usage=TokenUsage.from_any(getattr(message, "usage_metadata", None)),
            finish_reason=metadata.get("finish_reason"),
            model=metadata.get("model_name") or self.name,
            latency_s=time.perf_counter() - started,
        )

    def chat(self, messages: Sequence[Mapping[str, Any]], *, max_tokens: int | None) -> ChatResult:
        started = time.perf_counter()
        reply = self.model.invoke([dict(m) for m in messages], config=self._config())
        return self._result(reply, started)

    def _structured_model(self, schema: type[BaseModel]) -> Any:
        if schema not in self._structured:
            try:
                made = self.model.with_structured_output(schema, method="json_schema", include_raw=True)
            except (TypeError, ValueError, NotImplementedError):  # no JSON-schema mode: the model's default
                made = self.model.with_structured_output(schema, include_raw=True)
            self._structured[schema] = made
        return self._structured[schema]

    def chat_json(
        self, messages: Sequence[Mapping[str, Any]], schema: type[ModelT], *, max_tokens: int | None
    ) -> tuple[ModelT | None, ChatResult]:
        started = time.perf_counter()
        out = self._structured_model(schema).invoke([dict(m) for m in messages], config=self._config())
        raw, parsed = (out.get("raw"), out.get("parsed")) if isinstance(out, dict) else (None, out)
        result = (
            self._result(raw, started)
            if raw is not None
            else ChatResult(content="", model=self.name, latency_s=time.perf_counter() - started)
        )
        if parsed is None:
            return None, result
        return (parsed if isinstance(parsed, schema) else schema.model_validate(parsed)), result
