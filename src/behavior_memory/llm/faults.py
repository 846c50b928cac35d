"""Naming what went wrong with a request: openai's exceptions and non-API bodies become our errors.

The error says *what* happened; :func:`~behavior_memory.errors.is_transient` then says whether
waiting will fix it. What openai 2.x does with the faults a proxy or a restarting server produces:

=====================================  ============================================  =========================
the server sends                       openai                                        we raise
=====================================  ============================================  =========================
no connection, reset, dropped socket   ``APIConnectionError``                        ``LLMConnectionError``
nothing within the timeout             ``APITimeoutError``                           ``LLMTimeoutError``
an HTTP error status (HTML or JSON)    ``APIStatusError`` (body: dict or str)        ``LLMStatusError``
200 + ``text/html`` (or plain text)    returns the body as a ``str``                 ``LLMBadResponseError``
200 + JSON type over a non-JSON body   ``JSONDecodeError`` (not an openai error)     ``LLMBadResponseError``
200 + JSON that is not a completion    a completion with ``choices=None``            ``LLMBadResponseError``
=====================================  ============================================  =========================
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import LLMBadResponseError, LLMConnectionError, LLMError, LLMStatusError, LLMTimeoutError

if TYPE_CHECKING:
    import openai

__all__ = ["api_json", "body_kind", "check_completion", "wrap_error"]

_SNIPPET = 300  # characters of a server's message or body we keep


def body_kind(text: str) -> str:
    """How to name a body that is not JSON in a message: ``an HTML page`` or ``text``.

    >>> body_kind("<!DOCTYPE html><html><body>502 Bad Gateway</body></html>")
    'an HTML page'
    """
    head = text.lstrip()[:64].lower()
    return "an HTML page" if head.startswith(("<!doctype html", "<html", "<head", "<body")) else "text"


def wrap_error(exc: BaseException, what: str, *, base_url: str, attempts: int, timeout_s: float) -> LLMError | None:
    """Our error for ``exc`` raised while doing ``what``; None when it is not a fault of the server.

    ``attempts`` and ``timeout_s`` go into the message (how hard we tried, how long we waited).
    """
    import openai

    if isinstance(exc, LLMError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        return LLMTimeoutError(f"{what}: no answer within {timeout_s:g}s ({attempts} attempt(s))", base_url=base_url)
    if isinstance(exc, openai.APIConnectionError):
        cause = f": {exc.__cause__}" if exc.__cause__ else ""
        return LLMConnectionError(
            f"{what}: cannot reach the model server after {attempts} attempt(s){cause}", base_url=base_url
        )
    if isinstance(exc, openai.APIStatusError):
        return LLMStatusError(f"{what}: {_status_detail(exc)}", base_url=base_url, status=exc.status_code)
    if isinstance(exc, openai.APIResponseValidationError):
        return LLMBadResponseError(f"{what}: {str(exc)[:_SNIPPET]}", base_url=base_url, status=exc.status_code)
    if isinstance(exc, openai.OpenAIError):
        return LLMError(f"{what}: {exc}", base_url=base_url)
    return None


@contextlib.contextmanager
def api_json(what: str, *, base_url: str) -> Iterator[None]:
    """Around one openai request: a body openai could not parse raises :class:`LLMBadResponseError`.

    openai 2.x raises ``JSONDecodeError`` for a non-JSON body sent as JSON, and fails on attribute
    access when a page of models is an HTML page; neither is an openai error. Only the request is
    guarded, so a bug in our own parsing is not mistaken for a server fault (and retried).
    """
    try:
        yield
    except (ValueError, TypeError, AttributeError) as exc:
        raise LLMBadResponseError(
            f"{what}: the server's answer is not the API's JSON ({type(exc).__name__}: {str(exc)[:_SNIPPET]})",
            base_url=base_url,
        ) from exc


def check_completion(completion: Any, what: str, *, base_url: str) -> list[Any]:
    """The choices of a chat completion; :class:`LLMBadResponseError` when it is not one."""
    if isinstance(completion, str):  # openai hands back the raw text of a 200 that is not JSON
        raise LLMBadResponseError(
            f"{what}: the server answered with {body_kind(completion)} instead of a chat completion: "
            f"{completion.strip()[:_SNIPPET]!r}",
            base_url=base_url,
        )
    choices = getattr(completion, "choices", None)
    if not choices:  # JSON, but not the API's: a proxy, or another service on that port
        raise LLMBadResponseError(f"{what}: the answer is JSON without choices", base_url=base_url)
    return list(choices)


def _status_detail(exc: openai.APIStatusError) -> str:
    """The server's own message (vLLM puts it in ``message`` or ``error.message``), or what the body is."""
    body = exc.body
    if isinstance(body, str) and body_kind(body) != "text":  # a proxy's error page (502 + HTML)
        return f"HTTP {exc.status_code} with an HTML page instead of the API's JSON: {body.strip()[:_SNIPPET]!r}"
    message: Any = None
    if isinstance(body, Mapping):
        error = body.get("error")
        message = error.get("message") if isinstance(error, Mapping) else body.get("message") or error
    return str(message or exc.message)[:_SNIPPET]
