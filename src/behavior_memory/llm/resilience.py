"""How :class:`~behavior_memory.llm.client.LLMClient` rides out a model server that is briefly unwell.

Two mechanisms, both for *transient* faults only (:func:`~behavior_memory.errors.is_transient`:
unreachable, too slow, 5xx/429/404, a body that is not the API's JSON):

* :class:`RetryPolicy`: retry with exponential backoff and full jitter, within a bounded number of
  retries and a bounded total time per call. Full jitter (a uniform wait between zero and the
  exponential cap) keeps many clients that failed together from retrying together.
* :class:`CircuitBreaker`: one per server URL, shared by every client of the process. After
  ``threshold`` transient failures in a row it opens: calls fail at once with
  :class:`~behavior_memory.errors.LLMConnectionError` ("circuit open ... retry in X s") instead of
  each waiting for its own timeout. After the cool-down it is half-open: one call probes the
  server; its success closes the circuit, its failure opens it for another cool-down.

:func:`retrying` and :func:`aretrying` run one call under both; :class:`CallRetries` is the
bookkeeping they share (only the sleep differs)::

    retrying(config, send, classify)   # send() makes one request; classify(exc, attempts) names a fault

>>> RetryPolicy(max_retries=3, budget_s=10, base_s=0.5, max_s=4).cap(5)
4.0
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, NoReturn, TypeVar

from ..errors import LLMConnectionError, LLMError, is_transient

if TYPE_CHECKING:
    from .config import LLMConfig

__all__ = ["CallRetries", "CircuitBreaker", "RetryPolicy", "aretrying", "breaker_for", "reset_breakers", "retrying"]

logger = logging.getLogger(__name__)

BreakerState = Literal["closed", "open", "half_open"]
T = TypeVar("T")

#: Names a fault: our error for an exception (after that many attempts), or None for a bug to re-raise.
Classify = Callable[[BaseException, int], LLMError | None]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded in count (``max_retries``) and time (``budget_s``)."""

    max_retries: int
    budget_s: float
    base_s: float
    max_s: float

    @classmethod
    def from_config(cls, config: LLMConfig) -> RetryPolicy:
        """The policy an :class:`~behavior_memory.llm.config.LLMConfig` describes."""
        return cls(
            max_retries=config.max_retries,
            budget_s=config.retry_budget_s,
            base_s=config.backoff_base_s,
            max_s=config.backoff_max_s,
        )

    def cap(self, retry: int) -> float:
        """The longest wait before retry number ``retry`` (0 for the first): ``base * 2**retry``, capped."""
        return float(min(self.max_s, self.base_s * 2.0 ** min(retry, 32)))

    def delay(self, retry: int, elapsed_s: float) -> float | None:
        """Seconds to wait before retry ``retry``, or None when the retries or the time budget are spent."""
        if retry >= self.max_retries:
            return None
        wait = random.uniform(0.0, self.cap(retry))  # jitter, not cryptography
        if elapsed_s + wait > self.budget_s:
            return None
        return wait


class CircuitBreaker:
    """Fails calls fast while one server keeps failing; lets one probe through after a cool-down.

    The thresholds are passed on each call rather than fixed here, so clients with different
    settings can share the state of one server (the state is the server's, the patience the client's).
    """

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probe_at: float | None = None
        self._last_error = ""

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.base_url!r}, state={self.state!r}, failures={self._failures})"

    @property
    def failures(self) -> int:
        """Transient failures in a row (reset by any answer of the server)."""
        return self._failures

    @property
    def state(self) -> BreakerState:
        """``closed`` (calls go through), ``open`` (they fail fast) or ``half_open`` (a probe is under way)."""
        with self._lock:
            if self._opened_at is None:
                return "closed"
            return "half_open" if self._probe_at is not None else "open"

    def check(self, *, threshold: int, cooldown_s: float) -> None:
        """Return when a call may go to the server; raise :class:`LLMConnectionError` while open."""
        if threshold <= 0:
            return
        with self._lock:
            if self._opened_at is None:
                return
            now = time.monotonic()
            wait = self._opened_at + cooldown_s - now
            if wait <= 0 and (self._probe_at is None or now - self._probe_at >= cooldown_s):
                # Half-open: this call is the probe. A probe that never reported back (its thread
                # died) is replaced after another cool-down rather than blocking the server for good.
                self._probe_at = now
                logger.info("circuit of %s half-open: probing the server", self.base_url)
                return
            if wait <= 0:
                assert self._probe_at is not None  # a probe is under way
                wait = self._probe_at + cooldown_s - now
            raise LLMConnectionError(
                f"circuit open: {self._failures} transient failure(s) in a row, last: {self._last_error}; "
                f"retry in {max(wait, 0.0):.1f} s",
                base_url=self.base_url,
            )

    def success(self) -> None:
        """The server answered (even with an error that was the request's fault): close the circuit."""
        with self._lock:
            if self._opened_at is not None:
                logger.warning("circuit of %s closed: the server answers again", self.base_url)
            self._failures, self._opened_at, self._probe_at = 0, None, None

    def failure(self, exc: LLMError, *, threshold: int) -> None:
        """Count a transient failure; open the circuit at ``threshold`` in a row, or when a probe fails."""
        with self._lock:
            self._failures += 1
            self._last_error = _short(exc)
            probing = self._probe_at is not None
            if threshold > 0 and (self._failures >= threshold or probing):
                if self._opened_at is None or probing:
                    logger.warning(
                        "circuit of %s open after %d transient failure(s) in a row: %s",
                        self.base_url,
                        self._failures,
                        self._last_error,
                    )
                self._opened_at, self._probe_at = time.monotonic(), None


def _short(exc: LLMError, limit: int = 160) -> str:
    """``exc`` in one short line, without the ``[server URL]`` suffix (the breaker names the server)."""
    text = str(exc)
    suffix = f" [server {exc.base_url}"
    if exc.base_url and suffix in text:
        text, rest = text.split(suffix, 1)
        status = rest.strip(", ]")
        text += f" ({status})" if status else ""
    return text if len(text) <= limit else text[: limit - 3] + "..."


_BREAKERS: dict[str, CircuitBreaker] = {}
_BREAKERS_LOCK = threading.Lock()


def breaker_for(base_url: str) -> CircuitBreaker:
    """The process-wide breaker of the server at ``base_url`` (one per URL, made on first use)."""
    key = base_url.rstrip("/")
    with _BREAKERS_LOCK:
        breaker = _BREAKERS.get(key)
        if breaker is None:
            breaker = _BREAKERS[key] = CircuitBreaker(key)
        return breaker


def reset_breakers() -> None:
    """Forget every server's failures (tests; a long-lived process after its server was replaced)."""
    with _BREAKERS_LOCK:
        _BREAKERS.clear()


@dataclass
class CallRetries:
    """The retry bookkeeping of one call: its policy, its server's breaker, its attempts and its clock."""

    policy: RetryPolicy
    breaker: CircuitBreaker
    threshold: int
    cooldown_s: float
    attempts: int = 0
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def start(cls, config: LLMConfig) -> CallRetries:
        """Bookkeeping for a new call to the server ``config`` names."""
        return cls(
            policy=RetryPolicy.from_config(config),
            breaker=breaker_for(config.base_url),
            threshold=config.breaker_threshold,
            cooldown_s=config.breaker_cooldown_s,
        )

    @property
    def elapsed_s(self) -> float:
        """Seconds since the call began, its waits included."""
        return time.monotonic() - self.started

    def before_attempt(self) -> None:
        """Count an attempt; raise :class:`LLMConnectionError` when the circuit is open."""
        self.breaker.check(threshold=self.threshold, cooldown_s=self.cooldown_s)
        self.attempts += 1

    def succeeded(self) -> None:
        """The server answered."""
        self.breaker.success()

    def failed(self, exc: LLMError) -> float | None:
        """Record ``exc``; return the wait before the next attempt, or None to give up (raise it)."""
        if not is_transient(exc):
            self.breaker.success()  # the server answered; the fault is the request's or the model's
            return None
        self.breaker.failure(exc, threshold=self.threshold)
        delay = self.policy.delay(self.attempts - 1, self.elapsed_s)
        if delay is not None:
            logger.info(
                "transient fault from %s (attempt %d): %s; retrying in %.2f s",
                self.breaker.base_url,
                self.attempts,
                _short(exc),
                delay,
            )
        return delay


def retrying(config: LLMConfig, send: Callable[[], T], classify: Classify) -> T:
    """Run ``send`` (one request and its parsing), retrying transient faults by ``config``'s policy.

    An exception ``classify`` does not name propagates untouched; a fault that is not transient,
    or the last transient one, is raised as our error.
    """
    retries = CallRetries.start(config)
    while True:
        retries.before_attempt()
        try:
            result = send()
        except Exception as exc:
            error = classify(exc, retries.attempts)
            delay = None if error is None else retries.failed(error)
            if delay is None:
                _raise(exc, error)
            time.sleep(delay)
            continue
        retries.succeeded()
        return result


async def aretrying(config: LLMConfig, send: Callable[[], Awaitable[T]], classify: Classify) -> T:
    """Async twin of :func:`retrying`."""
    retries = CallRetries.start(config)
    while True:
        retries.before_attempt()
        try:
            result = await send()
        except Exception as exc:
            error = classify(exc, retries.attempts)
            delay = None if error is None else retries.failed(error)
            if delay is None:
                _raise(exc, error)
            await asyncio.sleep(delay)
            continue
        retries.succeeded()
        return result


def _raise(exc: Exception, error: LLMError | None) -> NoReturn:
    if error is None or error is exc:
        raise exc
    raise error from exc
