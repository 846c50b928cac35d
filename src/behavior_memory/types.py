"""The records behavior-memory keeps: behaviors, traces and their steps.

A behavior is a named, one-line procedure (``behavior_inclusion_exclusion: count a union by ...``).
A trace is everything one task did: its model and tool calls, its answer and outcome. Both live in
one namespace (``tenant/agent/user``, any depth); no read or write ever crosses namespaces.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .errors import InvalidBehaviorError, InvalidInputError

__all__ = [
    "BEHAVIOR_NAME_PATTERN",
    "DEFAULT_NAMESPACE",
    "MAX_INSTRUCTION_CHARS",
    "Behavior",
    "BehaviorStatus",
    "Outcome",
    "ReflectionStatus",
    "Step",
    "TokenUsage",
    "Trace",
    "new_id",
    "normalize_behavior_name",
    "normalize_trace_id",
    "pick_namespace",
    "utcnow",
    "validate_behavior_name",
    "validate_instruction",
    "validate_namespace",
]

# Matched whole (``fullmatch``), and ``\Z`` rather than ``$``: ``$`` also matches before a final
# newline, which let ``"behavior_x\n"`` and ``"team\n"`` through.
BEHAVIOR_NAME_PATTERN = re.compile(r"^behavior_[a-z0-9_]{2,80}\Z")
MAX_INSTRUCTION_CHARS = 500
DEFAULT_NAMESPACE = "default"
_NAMESPACE_PATTERN = re.compile(r"^[A-Za-z0-9_.:@+-]{1,64}(/[A-Za-z0-9_.:@+-]{1,64}){0,7}\Z")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """A random id; hex keeps it safe in file names, URLs and SQL."""
    return uuid.uuid4().hex


def normalize_trace_id(value: str) -> str:
    """A trace id in its one format, 32 lower-case hex digits; a UUID in any spelling is accepted."""
    try:
        return uuid.UUID(str(value).strip()).hex
    except ValueError as exc:
        raise InvalidInputError(f"trace id {value!r} is not 32 hex digits or a UUID") from exc


def validate_behavior_name(name: str) -> str:
    """Return ``name`` if it is a valid behavior name, else raise with the reason."""
    if not isinstance(name, str):
        raise InvalidBehaviorError(f"behavior name must be a string, got {type(name).__name__}")
    if not name.startswith("behavior_"):
        raise InvalidBehaviorError(f"behavior name {name!r} must start with 'behavior_'")
    if not BEHAVIOR_NAME_PATTERN.fullmatch(name):
        raise InvalidBehaviorError(
            f"behavior name {name!r} must match {BEHAVIOR_NAME_PATTERN.pattern} "
            "(lower-case letters, digits and underscores; 2 to 80 after the prefix)"
        )
    return name


def normalize_behavior_name(raw: str) -> str:
    """Turn a model's loosely written name into a valid one, or raise.

    Models write ``Behavior Inclusion-Exclusion`` or ``inclusion_exclusion``; we lower-case, turn
    every run of other characters into one underscore and add the prefix when it is missing.
    """
    text = re.sub(r"[^a-z0-9]+", "_", str(raw).strip().lower()).strip("_")
    if not text.startswith("behavior_"):
        text = "behavior_" + text.removeprefix("behavior")
        text = text.replace("__", "_")
    return validate_behavior_name(text[:89].rstrip("_"))


def validate_instruction(instruction: str) -> str:
    """Return the stripped instruction if it is one non-empty line of bounded length."""
    if not isinstance(instruction, str):
        raise InvalidBehaviorError(f"instruction must be a string, got {type(instruction).__name__}")
    text = instruction.strip()
    if not text:
        raise InvalidBehaviorError("instruction is empty")
    if "\n" in text or "\r" in text:
        raise InvalidBehaviorError("instruction must be one line (it contains a line break)")
    if len(text) > MAX_INSTRUCTION_CHARS:
        raise InvalidBehaviorError(
            f"instruction is {len(text)} characters; at most {MAX_INSTRUCTION_CHARS} are allowed"
        )
    return text


def validate_namespace(namespace: str, *, where: str = "namespace") -> str:
    """Namespaces are ``/``-separated segments (tenant/agent/user), each 1-64 safe characters.

    ``where`` names where the value came from in the error (``"the -n/--namespace option"``).
    """
    if namespace == "":
        # An empty namespace once quietly meant the default one; say so instead of guessing.
        raise InvalidInputError(
            f"{where} is empty: name a namespace (for example 'acme/support-bot/alice'), "
            "or leave it out to use the default one"
        )
    if not isinstance(namespace, str) or not _NAMESPACE_PATTERN.fullmatch(namespace):
        raise InvalidInputError(
            f"{where} {namespace!r} is invalid: use 1 to 8 '/'-separated segments of letters, digits "
            "and _.:@+- (for example 'acme/support-bot/alice')"
        )
    return namespace


def pick_namespace(given: str | None, default: str, *, where: str = "the namespace= argument") -> str:
    """``given`` when the caller named a namespace, else ``default``; an empty one is an error.

    ``None`` means "not given". The old ``given or default`` turned ``""`` into the default
    silently, so a caller who meant some namespace got another one.
    """
    return default if given is None else validate_namespace(given, where=where)


class BehaviorStatus(StrEnum):
    CANDIDATE = "candidate"  # minted, waiting for approval
    ACTIVE = "active"  # retrieved and injected
    QUARANTINED = "quarantined"  # suspected harmful; never injected
    STALE = "stale"  # unused for long; kept, retrievable on demand
    ARCHIVED = "archived"  # retired; never injected


#: Statuses whose behaviors may be injected into prompts.
INJECTABLE_STATUSES = (BehaviorStatus.ACTIVE,)


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"


class ReflectionStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # gave up after the configured attempts; the reason is kept
    SKIPPED = "skipped"


class TokenUsage(BaseModel):
    """Token counts of one model call; ``None`` means the server did not report it."""

    model_config = ConfigDict(extra="ignore")

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None

    @classmethod
    def from_any(cls, usage: Any) -> TokenUsage | None:
        """Build from an OpenAI usage object, a dict of the same shape, or LangChain's usage_metadata."""
        if usage is None:
            return None
        if isinstance(usage, TokenUsage):
            return usage
        data: dict[str, Any] = usage if isinstance(usage, dict) else _to_dict(usage)
        if "input_tokens" in data and "prompt_tokens" not in data:  # LangChain usage_metadata
            details_in = data.get("input_token_details") or {}
            details_out = data.get("output_token_details") or {}
            return cls(
                prompt_tokens=int(data.get("input_tokens") or 0),
                completion_tokens=int(data.get("output_tokens") or 0),
                total_tokens=int(data.get("total_tokens") or 0),
                cached_tokens=details_in.get("cache_read"),
                reasoning_tokens=details_out.get("reasoning"),
            )
        prompt_details = data.get("prompt_tokens_details") or {}
        completion_details = data.get("completion_tokens_details") or {}
        prompt = int(data.get("prompt_tokens") or 0)
        completion = int(data.get("completion_tokens") or 0)
        return cls(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=int(data.get("total_tokens") or prompt + completion),
            cached_tokens=data.get("cached_tokens", prompt_details.get("cached_tokens")),
            reasoning_tokens=data.get("reasoning_tokens", completion_details.get("reasoning_tokens")),
        )


def _to_dict(obj: Any) -> dict[str, Any]:
    if hasattr(obj, "model_dump"):
        dumped = obj.model_dump()
        return dumped if isinstance(dumped, dict) else {}
    return dict(getattr(obj, "__dict__", {}))


class Behavior(BaseModel):
    """One reusable procedure in the handbook."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    id: str = Field(default_factory=new_id)
    namespace: str = DEFAULT_NAMESPACE
    name: str
    instruction: str
    topic: str | None = None
    tags: list[str] = Field(default_factory=list)
    status: BehaviorStatus = BehaviorStatus.ACTIVE
    pinned: bool = False
    sources: list[str] = Field(default_factory=list, description="ids of the traces it was minted from")
    model: str | None = Field(default=None, description="the model that minted it")
    shown: int = 0
    cited: int = 0
    helped: int = 0
    hurt: int = 0
    version: int = Field(default=1, description="grows with every edit; edits of an older version are refused")
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = Field(default=None, description="when it was last shown or cited")
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="provenance and review: the guard's verdict, who approved or overrode what, status history",
    )

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return validate_behavior_name(value)

    @field_validator("instruction")
    @classmethod
    def _check_instruction(cls, value: str) -> str:
        return validate_instruction(value)

    @field_validator("namespace")
    @classmethod
    def _check_namespace(cls, value: str) -> str:
        return validate_namespace(value)

    @property
    def line(self) -> str:
        """The paper's ``name: instruction`` line."""
        return f"{self.name}: {self.instruction}"

    @property
    def text(self) -> str:
        """What retrieval indexes: the name's words, the instruction and the topic."""
        words = self.name.removeprefix("behavior_").replace("_", " ")
        return " ".join(part for part in (words, self.instruction, self.topic or "") if part)


class Step(BaseModel):
    """One model call or one tool call inside a trace."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["model", "tool"]
    # model calls
    messages: list[dict[str, Any]] = Field(default_factory=list)
    output: str | None = None
    reasoning: str | None = None
    usage: TokenUsage | None = None
    model: str | None = None
    # tool calls
    name: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    result: str | None = None
    # both
    error: str | None = None
    latency_s: float | None = None
    started_at: datetime = Field(default_factory=utcnow)


class Trace(BaseModel):
    """Everything one task did, saved before anything is done with it."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=new_id)
    namespace: str = DEFAULT_NAMESPACE
    task: str
    topic: str | None = None
    steps: list[Step] = Field(default_factory=list)
    answer: str | None = None
    outcome: Outcome = Outcome.UNKNOWN
    score: float | None = None
    feedback: str | None = None
    shown: list[str] = Field(default_factory=list, description="behavior names put in the prompt")
    cited: list[str] = Field(default_factory=list, description="behavior names the outputs cited")
    reflection_status: ReflectionStatus = ReflectionStatus.PENDING
    reflection_error: str | None = None
    reflection_attempts: int = 0
    minted: list[str] = Field(default_factory=list, description="behavior names reflection produced")
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None

    @field_validator("namespace")
    @classmethod
    def _check_namespace(cls, value: str) -> str:
        return validate_namespace(value)

    @property
    def usage(self) -> TokenUsage:
        """Token counts summed over the trace's model calls."""
        total = TokenUsage()
        cached = reasoning = None
        for step in self.steps:
            if step.usage is None:
                continue
            total.prompt_tokens += step.usage.prompt_tokens
            total.completion_tokens += step.usage.completion_tokens
            total.total_tokens += step.usage.total_tokens
            if step.usage.cached_tokens is not None:
                cached = (cached or 0) + step.usage.cached_tokens
            if step.usage.reasoning_tokens is not None:
                reasoning = (reasoning or 0) + step.usage.reasoning_tokens
        total.cached_tokens, total.reasoning_tokens = cached, reasoning
        return total
