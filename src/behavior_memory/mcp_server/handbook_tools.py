"""What the MCP server's tools do, without the SDK: one namespace's handbook, checked and bounded.

``HandbookTools`` holds a ``BehaviorMemory`` and the one namespace the server was started for;
no argument can name another (there is no namespace argument, and a trace of another namespace
reads as missing). Every method validates its arguments and returns plain JSON-able dicts; a bad
argument raises ``InvalidInputError``, a missing record ``NotFoundError``, a dead store
``StoreError``: the server turns each into a tool error the model can read.

``propose_behavior`` is how an MCP client adds to the handbook: the behavior passes the same guard
as reflection's candidates and is stored as a ``candidate`` (or ``quarantined``, when the guard
flags it), never active; a person or the evidence gate activates it later.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..errors import BehaviorMemoryError, InvalidInputError, NotFoundError
from ..injection.search import BehaviorSearch, SearchResult
from ..review import flagged, transition
from ..types import (
    Behavior,
    BehaviorStatus,
    Outcome,
    normalize_trace_id,
    validate_behavior_name,
    validate_instruction,
    validate_namespace,
)

if TYPE_CHECKING:
    from ..memory import BehaviorMemory

__all__ = [
    "MAX_EVIDENCE_CHARS",
    "MAX_FEEDBACK_CHARS",
    "HandbookTools",
    "SearchFailedError",
    "behavior_record",
]

MAX_EVIDENCE_CHARS = 2_000
MAX_FEEDBACK_CHARS = 2_000
MAX_TOPIC_CHARS = 100
#: The handbook resource lists at most this many behaviors (search finds the rest).
MAX_LISTED = 2_000
#: Statuses a client may read: quarantined and archived behaviors are never served (never injected either).
_READABLE = frozenset({BehaviorStatus.ACTIVE, BehaviorStatus.CANDIDATE, BehaviorStatus.STALE})
PROPOSER = "mcp"


class SearchFailedError(BehaviorMemoryError):
    """A search found the store or the retriever failing; the message names only the kind of fault."""

    code = "search_failed"


def behavior_record(behavior: Behavior) -> dict[str, Any]:
    """What a client sees of a behavior: its text and standing, not its history or vectors."""
    return {
        "name": behavior.name,
        "instruction": behavior.instruction,
        "topic": behavior.topic,
        "tags": list(behavior.tags),
        "status": str(behavior.status),
        "pinned": behavior.pinned,
        "shown": behavior.shown,
        "cited": behavior.cited,
        "helped": behavior.helped,
        "hurt": behavior.hurt,
    }


def _text(value: Any, what: str, limit: int, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a string, not {type(value).__name__}")
    text = value.strip()
    if required and not text:
        raise InvalidInputError(f"{what} is empty")
    if len(text) > limit:
        raise InvalidInputError(f"{what} is {len(text)} characters; at most {limit} are allowed")
    return text or None


class HandbookTools:
    """The handbook of one namespace as the MCP tools see it (see the module docstring)."""

    def __init__(self, memory: BehaviorMemory, *, namespace: str | None = None, timeout_s: float = 5.0) -> None:
        self.memory = memory
        self.namespace = validate_namespace(namespace or memory.namespace)
        self.searcher = BehaviorSearch(memory, timeout_s=timeout_s)

    # --- read -----------------------------------------------------------------------------------
    def search_behaviors(self, query: Any, k: Any = None) -> dict[str, Any]:
        """The rendered block for ``query`` and its behaviors; a bad argument is ``InvalidInputError``."""
        result: SearchResult = self.searcher.search(query, k=k, namespace=self.namespace)
        if result.status == "invalid":
            raise InvalidInputError(result.text.removeprefix("Invalid search: "))
        if not result.ok:
            raise SearchFailedError(result.text)
        return {
            "block": result.text if result.status == "ok" else "",
            "message": None if result.status == "ok" else result.text,
            "behaviors": [behavior_record(b) for b in result.behaviors],
        }

    def get_behavior(self, name: Any) -> dict[str, Any]:
        """One behavior by name (active, candidate or stale); anything else reads as missing."""
        wanted = validate_behavior_name(name)
        missing = NotFoundError(f"no behavior {wanted} in namespace {self.namespace!r}")
        try:
            behavior = self.memory.handbook.get(wanted, namespace=self.namespace)
        except NotFoundError:
            raise missing from None
        if behavior.status not in _READABLE:
            raise missing
        return behavior_record(behavior)

    def list_behaviors(
        self, *, status: BehaviorStatus = BehaviorStatus.ACTIVE, limit: int = MAX_LISTED
    ) -> list[Behavior]:
        """The namespace's behaviors of ``status`` (active by default), by name, at most ``limit``."""
        if status not in _READABLE:
            raise InvalidInputError(f"behaviors of status {status} are not served")
        return self.memory.handbook.list(namespace=self.namespace, status=status, limit=limit)

    # --- write ----------------------------------------------------------------------------------
    def propose_behavior(self, name: Any, instruction: Any, evidence: Any, topic: Any = None) -> dict[str, Any]:
        """Store a new candidate through the guard (quarantined when it flags it); never active."""
        checked_name = validate_behavior_name(name)
        checked_text = validate_instruction(_text(instruction, "instruction", 10_000) or "")
        proof = _text(evidence, "evidence", MAX_EVIDENCE_CHARS)
        theme = _text(topic, "topic", MAX_TOPIC_CHARS, required=False)
        try:
            self.memory.handbook.get(checked_name, namespace=self.namespace)
        except NotFoundError:
            pass
        else:
            raise InvalidInputError(f"{checked_name} already exists in namespace {self.namespace!r}; pick another name")
        behavior = Behavior(
            name=checked_name,
            instruction=checked_text,
            namespace=self.namespace,
            topic=theme,
            status=BehaviorStatus.CANDIDATE,
            metadata={"provenance": "proposed over MCP", "evidence": proof},
        )
        behavior = transition(behavior, BehaviorStatus.CANDIDATE, by=PROPOSER, reason="proposed; waits for evidence")
        guard = self.memory.handbook.guard
        verdict = guard.check(behavior.name, behavior.instruction, topic=behavior.topic) if guard else None
        if verdict is not None and not verdict.ok:
            behavior = flagged(behavior, verdict)
        stored = self.memory.handbook.add_many([behavior])[0]
        record = behavior_record(stored)
        if stored.status == BehaviorStatus.QUARANTINED:
            record["guard"] = {
                "rule": verdict.rule if verdict else None,
                "evidence": verdict.evidence if verdict else None,
            }
            record["message"] = "the guard quarantined it: it will not be injected unless a person approves it"
        else:
            record["message"] = "stored as a candidate: it becomes active once evidence or a person approves it"
        return record

    def record_feedback(
        self, trace_id: Any, outcome: Any = None, score: Any = None, comment: Any = None
    ) -> dict[str, Any]:
        """Attach an outcome, score or comment to a trace of this namespace (or one below it)."""
        if not isinstance(trace_id, str):
            raise InvalidInputError("trace_id must be a string")
        wanted = normalize_trace_id(trace_id)
        if outcome is not None and outcome not in {o.value for o in Outcome}:
            raise InvalidInputError(f"outcome must be one of {', '.join(o.value for o in Outcome)}, not {outcome!r}")
        if score is not None and (
            isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score)
        ):
            raise InvalidInputError("score must be a finite number")
        note = _text(comment, "comment", MAX_FEEDBACK_CHARS, required=False)
        if outcome is None and score is None and note is None:
            raise InvalidInputError("give at least one of outcome, score or comment")
        trace = self.memory.feedback(wanted, outcome=outcome, score=score, comment=note, namespace=self.namespace)
        return {
            "trace_id": trace.id,
            "outcome": str(trace.outcome),
            "score": trace.score,
            "cited": list(trace.cited),
        }

    def close(self) -> None:
        self.searcher.close()
