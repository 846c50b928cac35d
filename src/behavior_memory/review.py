"""Status changes with their record: who moved a behavior, from what to what, and why.

Every change of a behavior's status (the guard quarantining it, evidence activating it, a person
approving or rejecting it, the lifecycle retiring it) goes through ``transition``, which appends
an entry to ``behavior.metadata["history"]``. ``bmem behaviors show`` prints that history, so a
reviewer can always answer "why is this active?".
"""

from __future__ import annotations

import getpass
from typing import Any, Protocol

from .types import Behavior, BehaviorStatus, utcnow

__all__ = [
    "MAX_HISTORY",
    "BehaviorGuard",
    "GuardVerdict",
    "flagged",
    "override_record",
    "person",
    "transition",
    "with_note",
]

#: Entries kept per behavior; the oldest go first (the first one, its arrival, is always kept).
MAX_HISTORY = 50


class GuardVerdict(Protocol):
    """A guard's answer: ``ok``, or the first ``rule`` that fired with its ``evidence``."""

    @property
    def ok(self) -> bool: ...
    @property
    def rule(self) -> str | None: ...
    @property
    def evidence(self) -> str | None: ...


class BehaviorGuard(Protocol):
    """What the handbook and the curator need of the guard (``guard.Guard``, or a judge wrapping it)."""

    def check(self, name: str, instruction: str, *, topic: str | None = None) -> GuardVerdict: ...


def override_record(verdict: GuardVerdict, *, by: str) -> dict[str, Any]:
    """What is kept when a person stores a behavior the guard refused (``--force``)."""
    return {"at": utcnow().isoformat(), "by": by, "rule": verdict.rule, "evidence": verdict.evidence}


def person() -> str:
    """Who runs this process, as recorded on a person's decision (``user:alice``)."""
    try:
        return f"user:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name (a container without /etc/passwd entry)
        return "user:unknown"


def _append(metadata: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    history = [*metadata.get("history", []), entry]
    if len(history) > MAX_HISTORY:
        history = [history[0], *history[-(MAX_HISTORY - 1) :]]
    return {**metadata, "history": history}


def transition(behavior: Behavior, to: BehaviorStatus | str, *, by: str, reason: str, **extra: Any) -> Behavior:
    """A copy of ``behavior`` in status ``to``, with the change recorded in its history."""
    target = BehaviorStatus(to)
    entry = {"at": utcnow().isoformat(), "from": str(behavior.status), "to": str(target), "by": by, "reason": reason}
    entry.update(extra)
    return behavior.model_copy(update={"status": target, "metadata": _append(behavior.metadata, entry)})


def with_note(behavior: Behavior, *, by: str, reason: str, **extra: Any) -> Behavior:
    """A copy of ``behavior`` with an entry in its history that changes no status (an edit, a merge)."""
    entry = {"at": utcnow().isoformat(), "by": by, "reason": reason, **extra}
    return behavior.model_copy(update={"metadata": _append(behavior.metadata, entry)})


def flagged(behavior: Behavior, verdict: GuardVerdict) -> Behavior:
    """``behavior`` quarantined by the guard: the rule and the evidence kept in its metadata and history."""
    marked = behavior.model_copy(
        update={"metadata": {**behavior.metadata, "guard": {"rule": verdict.rule, "evidence": verdict.evidence}}}
    )
    reason = f"rule {verdict.rule}: {verdict.evidence}"
    return transition(marked, BehaviorStatus.QUARANTINED, by="guard", reason=reason, rule=verdict.rule)
