"""The one place that talks to an OpenAI-compatible chat server (vLLM first).

:class:`LLMClient` wraps the ``openai`` package (2.x or 3.x) and adds what the rest of
behavior-memory needs: reasoning split from the answer, token usage as
:class:`~behavior_memory.types.TokenUsage`, JSON answers validated against a pydantic
model with bounded re-asks, and our own errors instead of openai's::

    client = LLMClient(LLMConfig(model="Qwen/Qwen3-8B"))
    result = client.chat([{"role": "user", "content": "What is 2+2?"}])
    answer, result = client.chat_json(messages, Verdict)

Transient faults (unreachable, too slow, 5xx/429/404, an HTML page instead of JSON) are retried
here with exponential backoff and full jitter, behind a circuit breaker per server URL
(:mod:`~behavior_memory.llm.resilience`); openai's own retries are off. Invalid JSON answers are
re-asked (``output_retries``); an answer cut at ``max_tokens`` is reported as truncation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from ..errors import LLMError
from ..telemetry import model_result_attributes, model_span, set_attributes
from ..types import TokenUsage
from .config import LLMConfig
from .faults import api_json, check_completion, wrap_error
from .reasoning import extract_reasoning
from .resilience import Classify, aretrying, retrying
from .structured import JsonExchange

if TYPE_CHECKING:  # openai loads on the first request (it is most of a cold start otherwise)
    import openai

__all__ = ["ChatResult", "LLMClient"]

logger = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=BaseModel)


class ChatResult(BaseModel):
    """One answer of the chat server: the text, the thoughts, the token counts and the timing."""

    model_config = ConfigDict(frozen=True)

    content: str = Field(description="The answer, with any reasoning taken out.")
    reasoning: str | None = Field(default=None, description="The model's thoughts, when it reported any.")
    usage: TokenUsage | None = Field(default=None, description="Token counts; None if the server sent none.")
    finish_reason: str | None = Field(default=None, description="'stop', 'length', 'tool_calls', ...")
    model: str = Field(description="The model that answered, as the server names it.")
    latency_s: float = Field(description="Seconds from sending the request to having the answer.")
    tool_calls: list[dict[str, Any]] = Field(default_factory=list, description="Tool calls, as plain dicts.")


def _result_attributes(result: ChatResult) -> dict[str, Any]:
    """The GenAI response attributes of a chat answer (telemetry's ``chat {model}`` span)."""
    usage = result.usage
    return model_result_attributes(
        model=result.model,
        input_tokens=usage.prompt_tokens if usage else None,
        output_tokens=usage.completion_tokens if usage else None,
        finish_reason=result.finish_reason,
    )


class LLMClient:
    """Sync and async access to one OpenAI-compatible chat server.

    The openai clients are created on first use and reused. The async client is bound to the event
    loop it was made in, so one is kept per running loop: the same ``LLMClient`` works under
    several ``asyncio.run`` calls. Call :meth:`aclose` before a loop ends to close its connections,
    and :meth:`close` for the sync ones (or use the client as a context manager).

    >>> LLMClient(LLMConfig(base_url="http://127.0.0.1:9/v1")).health()
    False
    """

    def __init__(self, config: LLMConfig | None = None) -> None:
        self.config = config or LLMConfig()
        self._lock = threading.Lock()
        self._sync: openai.OpenAI | None = None
        self._async: dict[int, tuple[weakref.ref[asyncio.AbstractEventLoop], openai.AsyncOpenAI]] = {}

    def __repr__(self) -> str:
        return f"LLMClient(base_url={self.config.base_url!r}, model={self.config.model!r})"

    # -- openai clients -------------------------------------------------------------------------

    def _timeout(self, timeout_s: float | None = None) -> Any:
        import openai

        read = timeout_s or self.config.timeout_s
        # openai.Timeout is httpx.Timeout on openai 2.x and httpx2.Timeout on 3.x.
        return openai.Timeout(read, connect=min(self.config.connect_timeout_s, read))

    def _client_options(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "base_url": cfg.base_url,
            "api_key": cfg.api_key,
            "max_retries": 0,  # our policy (resilience.py) retries, with a breaker openai does not have
            "timeout": self._timeout(),
        }

    def _sync_client(self) -> openai.OpenAI:
        import openai

        with self._lock:
            if self._sync is None:
                self._sync = openai.OpenAI(**self._client_options())
            return self._sync

    def _async_client(self) -> openai.AsyncOpenAI:
        import openai

        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._async.get(id(loop))
            if entry is not None and entry[0]() is loop:
                return entry[1]
            for key, (ref, stale) in list(self._async.items()):
                old = ref()
                if old is None or old.is_closed():
                    del self._async[key]
                    _discard(stale)
            client = openai.AsyncOpenAI(**self._client_options())
            self._async[id(loop)] = (weakref.ref(loop), client)
            return client

    def close(self) -> None:
        """Close the sync connections (the async ones belong to their loops: see :meth:`aclose`)."""
        with self._lock:
            client, self._sync = self._sync, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the connections of the running event loop's async client."""
        with self._lock:
            entry = self._async.pop(id(asyncio.get_running_loop()), None)
        if entry is not None:
            await entry[1].close()

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- requests and answers -------------------------------------------------------------------

    def _params(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
        response_format: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        cfg = self.config
        params: dict[str, Any] = {
            "model": cfg.model,
            "messages": [dict(m) for m in messages],
            "max_tokens": max_tokens or cfg.max_tokens,
            "temperature": cfg.temperature if temperature is None else temperature,
        }
        if tools is not None:
            params["tools"] = [dict(t) for t in tools]
        if tool_choice is not None:
            params["tool_choice"] = tool_choice if isinstance(tool_choice, str) else dict(tool_choice)
        if response_format is not None:
            params["response_format"] = dict(response_format)
        body = {**cfg.extra_body, **(extra_body or {})}
        if body:
            params["extra_body"] = body
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("chat request to %s: %s", cfg.base_url, json.dumps(params, default=str))
        params["timeout"] = self._timeout(timeout_s)
        return params

    def _result(self, completion: Any, started: float) -> ChatResult:
        latency = time.perf_counter() - started
        what = f"chat with model {self.config.model!r}"
        choice = check_completion(completion, what, base_url=self.config.base_url)[0]
        content, reasoning = extract_reasoning(choice.message)
        tool_calls = getattr(choice.message, "tool_calls", None) or []
        result = ChatResult(
            content=content,
            reasoning=reasoning,
            usage=TokenUsage.from_any(getattr(completion, "usage", None)),
            finish_reason=choice.finish_reason,
            model=getattr(completion, "model", None) or self.config.model,
            latency_s=latency,
            tool_calls=[call.model_dump(exclude_none=True) for call in tool_calls],
        )
        usage = result.usage or TokenUsage()
        logger.info(
            "chat model=%s prompt_tokens=%d completion_tokens=%d cached_tokens=%s reasoning_tokens=%s "
            "finish=%s latency=%.2fs",
            result.model, usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens,
            usage.reasoning_tokens, result.finish_reason, latency,
        )  # fmt: skip
        logger.debug("chat answer: content=%r reasoning=%r", content, reasoning)
        return result

    def _classify(self, what: str, timeout_s: float | None = None) -> Classify:
        """How :func:`~behavior_memory.llm.resilience.retrying` names the faults of ``what``."""
        url, limit = self.config.base_url, timeout_s or self.config.timeout_s

        def classify(exc: BaseException, attempts: int) -> LLMError | None:
            return wrap_error(exc, what, base_url=url, attempts=attempts, timeout_s=limit)

        return classify

    # -- public API -----------------------------------------------------------------------------

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
        """Send one chat completion request and return the answer.

        ``None`` options fall back to the config; ``extra_body`` is merged over the config's.
        Transient faults are retried (``max_retries`` within ``retry_budget_s``); then
        :class:`LLMConnectionError`, :class:`LLMTimeoutError`, :class:`LLMStatusError` or
        :class:`LLMBadResponseError` says what happened. An open circuit fails at once.
        """
        params = self._params(
            messages, max_tokens=max_tokens, temperature=temperature, tools=tools,
            tool_choice=tool_choice, extra_body=extra_body, timeout_s=timeout_s,
        )  # fmt: skip
        return self._send(params, timeout_s)

    async def achat(
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
        """Async twin of :meth:`chat`."""
        params = self._params(
            messages, max_tokens=max_tokens, temperature=temperature, tools=tools,
            tool_choice=tool_choice, extra_body=extra_body, timeout_s=timeout_s,
        )  # fmt: skip
        return await self._asend(params, timeout_s)

    def _send(self, params: dict[str, Any], timeout_s: float | None) -> ChatResult:
        what = f"chat with model {self.config.model!r}"

        def send() -> ChatResult:
            started = time.perf_counter()
            with api_json(what, base_url=self.config.base_url):
                completion = self._sync_client().chat.completions.create(**params)
            return self._result(completion, started)

        with model_span(self.config.model, self.config.base_url, params) as current:
            result = retrying(self.config, send, self._classify(what, timeout_s))
            set_attributes(current, _result_attributes(result))
        return result

    async def _asend(self, params: dict[str, Any], timeout_s: float | None) -> ChatResult:
        what = f"chat with model {self.config.model!r}"

        async def send() -> ChatResult:
            started = time.perf_counter()
            with api_json(what, base_url=self.config.base_url):
                completion = await self._async_client().chat.completions.create(**params)
            return self._result(completion, started)

        with model_span(self.config.model, self.config.base_url, params) as current:
            result = await aretrying(self.config, send, self._classify(what, timeout_s))
            set_attributes(current, _result_attributes(result))
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
        """Ask for a JSON answer and return it validated as ``schema``, with the last :class:`ChatResult`.

        The config's ``structured_output`` mode says how the output is constrained. An answer that
        does not parse or validate is shown back to the model with the reason, up to
        ``output_retries`` times; then :class:`LLMOutputError` says what was wrong.
        """
        exchange = self._exchange(messages, schema, name)
        budget = max_tokens or self.config.max_tokens
        body = {**(extra_body or {}), **exchange.extra_body}
        while True:
            params = self._params(
                exchange.messages, max_tokens=budget, temperature=temperature, timeout_s=timeout_s,
                response_format=exchange.response_format, extra_body=body,
            )  # fmt: skip
            result = self._send(params, timeout_s)
            answer = exchange.accept(result.content, result.finish_reason, result.model, budget)
            if answer is not None:
                return answer, result

    async def achat_json(
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
        """Async twin of :meth:`chat_json`."""
        exchange = self._exchange(messages, schema, name)
        budget = max_tokens or self.config.max_tokens
        body = {**(extra_body or {}), **exchange.extra_body}
        while True:
            params = self._params(
                exchange.messages, max_tokens=budget, temperature=temperature, timeout_s=timeout_s,
                response_format=exchange.response_format, extra_body=body,
            )  # fmt: skip
            result = await self._asend(params, timeout_s)
            answer = exchange.accept(result.content, result.finish_reason, result.model, budget)
            if answer is not None:
                return answer, result

    def models(self) -> list[str]:
        """Return the ids of the models the server serves (``GET /v1/models``), retrying transient faults."""

        def send() -> list[str]:
            started = time.perf_counter()
            with api_json("listing models", base_url=self.config.base_url):
                page = self._sync_client().models.list()
            return self._model_ids(page, started)

        return retrying(self.config, send, self._classify("listing models"))

    async def amodels(self) -> list[str]:
        """Async twin of :meth:`models`."""

        async def send() -> list[str]:
            started = time.perf_counter()
            with api_json("listing models", base_url=self.config.base_url):
                page = await self._async_client().models.list()
            return self._model_ids(page, started)

        return await aretrying(self.config, send, self._classify("listing models"))

    def _model_ids(self, page: Any, started: float) -> list[str]:
        ids = [str(m.id) for m in getattr(page, "data", None) or []]
        logger.info("models %s latency=%.2fs", ids, time.perf_counter() - started)
        return ids

    def health(self) -> bool:
        """True when the server answers ``GET /v1/models`` quickly; never raises, never retries.

        The probe reports the server as it is: it neither waits for nor moves the circuit breaker.
        """
        try:
            client = self._sync_client().with_options(max_retries=0, timeout=self._health_timeout())
            client.models.list()
        except Exception as exc:  # a health probe reports, it does not fail
            logger.debug("health check of %s failed: %s", self.config.base_url, exc)
            return False
        return True

    async def ahealth(self) -> bool:
        """Async twin of :meth:`health`."""
        try:
            client = self._async_client().with_options(max_retries=0, timeout=self._health_timeout())
            await client.models.list()
        except Exception as exc:  # a health probe reports, it does not fail
            logger.debug("health check of %s failed: %s", self.config.base_url, exc)
            return False
        return True

    def _exchange(self, messages: Sequence[Mapping[str, Any]], schema: type[ModelT], name: str) -> JsonExchange[ModelT]:
        cfg = self.config
        return JsonExchange(
            messages,
            schema,
            name=name,
            mode=cfg.structured_output,
            retries=cfg.output_retries,
            base_url=cfg.base_url,
        )

    def _health_timeout(self) -> Any:
        return self._timeout(min(self.config.timeout_s, 10.0))


def _discard(client: openai.AsyncOpenAI) -> None:
    """Mark the client of a finished loop closed, so that dropping it schedules nothing.

    Its connections belong to the closed loop and cannot be closed from another one. Left open,
    openai's finalizer would start a close task on the *running* loop, which fails with
    "Event loop is closed". The first step of ``close()`` marks the client closed; the rest, which
    would touch the dead loop, is abandoned (the sockets are freed by the garbage collector).
    """
    closing = client.close()
    with contextlib.suppress(Exception):  # StopIteration, or the dead loop refusing the rest
        closing.send(None)
    closing.close()
