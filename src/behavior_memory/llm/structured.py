"""JSON answers: how to ask for them, how to find them in the text, and how to re-ask.

:class:`JsonExchange` holds one ``chat_json`` conversation for
:class:`~behavior_memory.llm.client.LLMClient`: the request fields that constrain the output in
the configured mode, and the correction turn after an invalid answer. The correction quotes a
bounded excerpt of the bad answer and replaces the previous one, so re-asks do not grow the
conversation. An answer cut at ``max_tokens`` is reported as truncation, never as a schema error
about some inner object that happened to parse.

>>> extract_json_object('Sure! ```json\\n{"a": 1}\\n``` Hope that helps.')
{'a': 1}
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import LLMOutputError, LLMTruncatedError
from .config import StructuredOutputMode

__all__ = ["JsonExchange", "excerpt", "extract_json_object"]

logger = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=BaseModel)

_FENCE = re.compile(r"```[A-Za-z]*[ \t]*\n?(.*?)```", re.DOTALL)
_MAX_BRACES = 64  # bounds the scan for an object inside prose
_SNIPPET = 300  # characters of a bad answer quoted in the error
_REASK_CHARS = 400  # characters of a bad answer shown back to the model


def excerpt(text: str, limit: int = _REASK_CHARS) -> str:
    """``text`` within ``limit`` characters: its head and its tail, the middle marked as cut.

    >>> cut = excerpt("a" * 300 + "b" * 300, 100)
    >>> len(cut), cut[56:61], cut[-3:]
    (100, 'a ...', 'bbb')
    """
    if len(text) <= limit:
        return text
    marker = " ... "
    head = (limit - len(marker)) * 3 // 5  # the start says what the model tried, the end where it went wrong
    tail = limit - len(marker) - head
    return text[:head] + marker + text[len(text) - tail :]


def extract_json_object(text: str) -> dict[str, Any] | None:
    """Return the first JSON object in ``text``, or None.

    Tries the whole text, then each fenced block (```json ... ```), then the first ``{`` from
    which a whole object parses, so leading prose and trailing remarks do not matter.
    """
    candidates = [text.strip(), *(m.group(1).strip() for m in _FENCE.finditer(text))]
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    decoder = json.JSONDecoder()
    for count, match in enumerate(re.finditer(r"\{", text)):
        if count >= _MAX_BRACES:
            break
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


class JsonExchange(Generic[ModelT]):
    """One JSON-answer conversation: the constraint to send and the re-asks after bad answers.

    ``mode`` is :attr:`LLMConfig.structured_output`. ``json_schema`` and ``structured_outputs``
    constrain the decoder through ``response_format`` or ``extra_body``; ``json_object`` and
    ``none`` cannot carry the schema, so it is appended to the last user message instead.
    """

    def __init__(
        self,
        messages: Sequence[Mapping[str, Any]],
        schema: type[ModelT],
        *,
        name: str = "output",
        mode: StructuredOutputMode = "json_schema",
        retries: int = 2,
        base_url: str | None = None,
    ) -> None:
        self.schema, self.mode, self.retries, self.base_url = schema, mode, retries, base_url
        self.json_schema = schema.model_json_schema()
        self.messages: list[dict[str, Any]] = [dict(m) for m in messages]
        self.truncated = False  # the last answer was cut at max_tokens
        self.attempts = 0
        self.response_format: dict[str, Any] | None = None
        self.extra_body: dict[str, Any] = {}
        if mode == "json_schema":
            self.response_format = {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": self.json_schema},
            }
        elif mode == "structured_outputs":
            self.extra_body = {"structured_outputs": {"json": self.json_schema}}
        elif mode == "json_object":
            self.response_format = {"type": "json_object"}
        if self._schema_in_prompt:
            _append_user_text(self.messages, "Reply with only one JSON object, no prose. " + self._schema_text())
        self._asked = list(self.messages)  # the request before any correction turn

    @property
    def _schema_in_prompt(self) -> bool:
        return self.mode in ("json_object", "none")

    def _schema_text(self) -> str:
        return f"It must match this JSON Schema:\n{json.dumps(self.json_schema, separators=(',', ':'))}"

    def accept(self, content: str, finish_reason: str | None, model: str, max_tokens: int) -> ModelT | None:
        """Return the validated answer, or None after appending a re-ask; raise when out of tries.

        Raises :class:`LLMOutputError` naming what was wrong once ``retries`` re-asks are spent
        (:class:`LLMTruncatedError` when the last answer was cut at ``max_tokens``).
        """
        self.attempts += 1
        problem = self._problem(content, finish_reason, max_tokens)
        if not isinstance(problem, str):
            return problem
        if self.attempts > self.retries:
            snippet = content[:_SNIPPET] + ("..." if len(content) > _SNIPPET else "")
            error = LLMTruncatedError if self.truncated else LLMOutputError
            raise error(
                f"model {model!r} gave no valid {self.schema.__name__} after {self.attempts} "
                f"attempt(s): {problem}; last output: {snippet!r}",
                base_url=self.base_url,
            )
        logger.info("invalid %s answer (%s); re-asking", self.schema.__name__, problem)
        fix = f"That answer was invalid: {problem}. Reply with only one JSON object, no prose."
        if self.truncated:
            fix += " Keep it shorter."
        if self._schema_in_prompt:
            fix += " " + self._schema_text()
        # The correction replaces the previous one: each re-ask costs the same tokens, not more.
        quoted = excerpt(content) if content.strip() else "(empty answer)"
        self.messages = [*self._asked, {"role": "assistant", "content": quoted}, {"role": "user", "content": fix}]
        return None

    def _problem(self, content: str, finish_reason: str | None, max_tokens: int) -> ModelT | str:
        self.truncated = finish_reason == "length"
        if self.truncated:
            return self._cut_answer(content, max_tokens)
        data = extract_json_object(content)
        if data is None:
            return "no JSON object found in the answer" if content.strip() else "the answer was empty"
        try:
            return self.schema.model_validate(data)
        except ValidationError as exc:
            errors = [f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()[:5]]
            return "the JSON object does not match the schema (" + "; ".join(errors) + ")"

    def _cut_answer(self, content: str, max_tokens: int) -> ModelT | str:
        """An answer cut at ``max_tokens``: valid only if the whole text is a valid object.

        Searching a cut text for some ``{...}`` that parses finds an inner object (one behavior
        instead of the list), and its schema error would hide the real cause.
        """
        problem = f"the answer was cut off at max_tokens={max_tokens} before the JSON object ended"
        try:
            data = json.loads(content.strip())
        except ValueError:
            return problem
        try:
            return self.schema.model_validate(data)
        except ValidationError:
            return problem


def _append_user_text(messages: list[dict[str, Any]], text: str) -> None:
    last = messages[-1] if messages else None
    if last is not None and last.get("role") == "user" and isinstance(last.get("content"), str):
        messages[-1] = {**last, "content": f"{last['content']}\n\n{text}"}
    else:
        messages.append({"role": "user", "content": text})
