"""Reflection through the agent's own model (``reflection.llm: agent``): no second server needed.

A team whose agent runs on a hosted model can reflect with that same model. The adapters hand it
over (the LangChain middleware on the agent's first model call, LlamaIndex ``wrap`` at once) as an
``AgentModel``, which speaks the framework (``with_structured_output``, ``as_structured_llm``).
``AgentModelClient`` puts it behind the ``LLMClient`` interface the reflector uses, so the rest of
the pipeline is unchanged. Until an adapter hands a model over, each call fails with
``LLMConnectionError``: a transient fault, so traces wait instead of using up their attempts.

The reflection calls run in the reflection worker's thread, outside any agent run: the
framework's own tracing (LangSmith, LlamaIndex instrumentation) sees them as runs of their own,
named ``behavior_memory.reflection``, and the user's stream never does.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from ..errors import LLMConnectionError, LLMError, LLMOutputError, LLMTimeoutError
from ..telemetry import model_result_attributes, model_span, set_attributes
from .client import ChatResult, LLMClient
from .config import LLMConfig

__all__ = ["RUN_NAME", "AgentModel", "AgentModelClient"]

ModelT = TypeVar("ModelT", bound=BaseModel)
#: The run name (and tag) reflection calls carry in the framework's tracing.
RUN_NAME = "behavior_memory.reflection"


class AgentModel(Protocol):
    """An agent's chat model, seen through its framework (the adapters implement it)."""

    @property
    def name(self) -> str: ...

    def chat(self, messages: Sequence[Mapping[str, Any]], *, max_tokens: int | None) -> ChatResult: ...

    def chat_json(
        self, messages: Sequence[Mapping[str, Any]], schema: type[ModelT], *, max_tokens: int | None
    ) -> tuple[ModelT | None, ChatResult]: ...


class AgentModelClient(LLMClient):
    """An ``LLMClient`` whose calls go to the agent's own model once an adapter attached it."""

    def __init__(self) -> None:
        super().__init__(LLMConfig(model="agent"))
        self._model: AgentModel | None = None
        self._attach_lock = threading.Lock()

    @property
    def attached(self) -> AgentModel | None:
        return self._model

    def attach(self, model: AgentModel) -> None:
        """Reflect with ``model`` from now on (the first model an agent uses; later ones are ignored)."""
        with self._attach_lock:
            if self._model is None:
                self._model = model

    def _backend(self) -> AgentModel:
        model = self._model
        if model is None:
            raise LLMConnectionError(
                "reflection.llm is 'agent' but no agent has run with this memory yet: the trace waits"
            )
        return model

    def _call(self, what: str, call: Any) -> Any:
        model = self._backend()
        with model_span(model.name, None) as current:
            try:
                parsed, result = call(model)
            except LLMError:
                raise
            except TimeoutError as exc:
                raise LLMTimeoutError(f"{what} with the agent's model {model.name} timed out") from exc
            except (ConnectionError, OSError) as exc:
                raise LLMConnectionError(f"{what} with the agent's model {model.name} failed: {exc}") from exc
            except Exception as exc:  # the framework's own error: say whose, keep the cause
                raise LLMError(
                    f"{what} with the agent's model {model.name} failed: {type(exc).__name__}: {exc}"
                ) from exc
            usage = result.usage
            set_attributes(
                current,
                model_result_attributes(
                    model=result.model,
                    input_tokens=usage.prompt_tokens if usage else None,
                    output_tokens=usage.completion_tokens if usage else None,
                    finish_reason=result.finish_reason,
                ),
            )
        return parsed, result

    # --- the LLMClient interface the reflector uses ------------------------------------------------
    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> ChatResult:
        """One answer of the agent's model (``extra_body`` and sampling options are the agent's own)."""
        _, result = self._call("chat", lambda model: (None, model.chat(messages, max_tokens=max_tokens)))
        assert isinstance(result, ChatResult)
        return result

    def chat_json(
        self,
        messages: Sequence[Mapping[str, Any]],
        schema: type[ModelT],
        *,
        name: str = "output",
        max_tokens: int | None = None,
        temperature: float | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> tuple[ModelT, ChatResult]:
        """A structured answer, through the framework's structured output; invalid is ``LLMOutputError``."""
        parsed, result = self._call(
            "structured output", lambda model: model.chat_json(messages, schema, max_tokens=max_tokens)
        )
        if parsed is None:
            raise LLMOutputError(f"the agent's model gave no valid {name} ({result.content[:200]!r})")
        checked = parsed if isinstance(parsed, schema) else schema.model_validate(parsed)
        return checked, result

    async def achat(self, messages: Sequence[Mapping[str, Any]], **options: Any) -> ChatResult:
        return await asyncio.to_thread(lambda: self.chat(messages, **options))

    async def achat_json(
        self, messages: Sequence[Mapping[str, Any]], schema: type[ModelT], **options: Any
    ) -> tuple[ModelT, ChatResult]:
        return await asyncio.to_thread(lambda: self.chat_json(messages, schema, **options))

    def models(self) -> list[str]:
        return [self._backend().name]

    def health(self) -> bool:
        return self._model is not None

    def close(self) -> None:
        """Nothing to release: the model belongs to the agent."""

    def __repr__(self) -> str:
        return f"AgentModelClient({self._model.name if self._model else 'not attached'})"
