"""The errors behavior-memory raises.

Every error derives from one root, carries a stable ``code`` (for logs, metrics and tests) and
names what was wrong and where. Vendor errors (openai, sqlite3, psycopg, yaml) are wrapped at the
boundary with ``raise ... from exc`` so callers catch ours only::

    BehaviorMemoryError
    ├── ConfigError                 bad YAML, unknown key, wrong type (names the key and the line)
    ├── InvalidInputError           a value the caller gave us is malformed
    │   └── InvalidBehaviorError    a behavior name or instruction breaks the rules
    │       └── QuarantinedError    the guard refused it (names the rule and the evidence)
    ├── NotFoundError               no behavior / trace with that id or name
    ├── StoreError                  the handbook store failed
    │   ├── StoreUnavailableError   missing directory, read-only file, cannot open
    │   │   └── StoreBusyError      another writer held the store past the write budget
    │   ├── StoreCorruptedError     the file is not a database we can read
    │   └── ConflictError           someone else changed the record since it was read
    ├── EmbeddingError              the embedder failed
    ├── LLMError                    the model server failed (names base_url and status)
    │   ├── LLMConnectionError      unreachable (or its circuit breaker is open)
    │   ├── LLMTimeoutError         too slow
    │   ├── LLMStatusError          HTTP error status
    │   ├── LLMBadResponseError     a body that is not the API's JSON (an HTML page, a proxy's text)
    │   └── LLMOutputError          output still invalid after the bounded retries
    │       └── LLMTruncatedError   the answer was cut at max_tokens
    ├── ServerError                 starting or stopping the local vLLM server failed
    └── MissingDependencyError      an optional extra is not installed (names the pip command)
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BehaviorMemoryError",
    "ConfigError",
    "ConflictError",
    "EmbeddingError",
    "InvalidBehaviorError",
    "InvalidInputError",
    "LLMBadResponseError",
    "LLMConnectionError",
    "LLMError",
    "LLMOutputError",
    "LLMStatusError",
    "LLMTimeoutError",
    "LLMTruncatedError",
    "MissingDependencyError",
    "NotFoundError",
    "QuarantinedError",
    "ServerError",
    "StoreBusyError",
    "StoreCorruptedError",
    "StoreError",
    "StoreUnavailableError",
    "is_transient",
]


class BehaviorMemoryError(Exception):
    """Root of every error raised by behavior-memory."""

    code: str = "behavior_memory_error"

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def __str__(self) -> str:
        return self.message


class ConfigError(BehaviorMemoryError):
    """The configuration could not be loaded or validated."""

    code = "config_error"

    def __init__(
        self, message: str, *, path: str | None = None, key: str | None = None, line: int | None = None
    ) -> None:
        where = []
        if path:
            where.append(str(path) + (f":{line}" if line else ""))
        elif line:
            where.append(f"line {line}")
        if key:
            where.append(f"key '{key}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message, path=path, key=key, line=line)
        self.path, self.key, self.line = path, key, line


class InvalidInputError(BehaviorMemoryError, ValueError):
    """A value given by the caller is malformed."""

    code = "invalid_input"


class InvalidBehaviorError(InvalidInputError):
    """A behavior's name or instruction breaks the handbook's rules."""

    code = "invalid_behavior"


class NotFoundError(BehaviorMemoryError, KeyError):
    """No record with that id or name exists in this namespace."""

    code = "not_found"

    def __str__(self) -> str:  # KeyError would quote the message otherwise
        return self.message


class StoreError(BehaviorMemoryError):
    """The handbook store failed."""

    code = "store_error"


class StoreUnavailableError(StoreError):
    """The store cannot be opened: missing directory, read-only file, permissions."""

    code = "store_unavailable"


class StoreBusyError(StoreUnavailableError):
    """Another writer held the store longer than this write's budget allowed."""

    code = "store_busy"


class StoreCorruptedError(StoreError):
    """The store file exists but is not a database we can read."""

    code = "store_corrupted"


class ConflictError(StoreError):
    """The record changed since it was read (optimistic concurrency); re-read and try again."""

    code = "conflict"


class QuarantinedError(InvalidBehaviorError):
    """The guard refused a behavior; ``rule`` and ``evidence`` say why (``--force`` overrides)."""

    code = "quarantined"

    def __init__(self, message: str, *, rule: str, evidence: str) -> None:
        super().__init__(message)
        self.data.update(rule=rule, evidence=evidence)
        self.rule, self.evidence = rule, evidence


class EmbeddingError(BehaviorMemoryError):
    """The embedder failed to embed a text."""

    code = "embedding_error"


class LLMError(BehaviorMemoryError):
    """The model server failed; ``base_url`` and ``status`` say which and how."""

    code = "llm_error"

    def __init__(self, message: str, *, base_url: str | None = None, status: int | None = None) -> None:
        detail = message
        if base_url:
            detail += f" [server {base_url}" + (f", HTTP {status}" if status else "") + "]"
        super().__init__(detail, base_url=base_url, status=status)
        self.base_url, self.status = base_url, status


class LLMConnectionError(LLMError):
    """The model server could not be reached."""

    code = "llm_connection"


class LLMTimeoutError(LLMError):
    """The model server did not answer in time."""

    code = "llm_timeout"


class LLMStatusError(LLMError):
    """The model server answered with an HTTP error status."""

    code = "llm_status"


class LLMBadResponseError(LLMError):
    """The server answered with a body that is not the API's JSON (an HTML error page, a proxy)."""

    code = "llm_bad_response"


class LLMOutputError(LLMError):
    """The model's output was still invalid after the bounded retries."""

    code = "llm_output"


class LLMTruncatedError(LLMOutputError):
    """The model's answer was cut at ``max_tokens`` before it was complete."""

    code = "llm_truncated"


#: HTTP statuses that say the server is not ready or overloaded, not that the request was wrong.
TRANSIENT_STATUSES = frozenset({404, 408, 409, 425, 429, 500, 502, 503, 504})


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` is the model server's state, not the request's: waiting will fix it.

    Unreachable, too slow, an overloaded or restarting server (5xx, 429, and 404 while a model is
    still loading), a body that is not the API's JSON. Such faults never use up a trace's attempts.
    """
    if isinstance(exc, LLMConnectionError | LLMTimeoutError | LLMBadResponseError):
        return True
    return isinstance(exc, LLMStatusError) and (exc.status in TRANSIENT_STATUSES or (exc.status or 0) >= 500)


class ServerError(BehaviorMemoryError):
    """Starting, probing or stopping the local vLLM server failed."""

    code = "server_error"


class MissingDependencyError(BehaviorMemoryError, ImportError):
    """An optional extra is needed; the message names the exact pip command."""

    code = "missing_dependency"

    def __init__(self, what: str, extra: str) -> None:
        super().__init__(f'{what} needs an optional extra: pip install "behavior-memory[{extra}]"', extra=extra)
        self.extra = extra
