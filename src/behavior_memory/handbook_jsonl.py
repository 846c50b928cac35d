"""A handbook as JSONL: export every behavior of a namespace, import behaviors from a file.

A file says what it likes about itself, so an import takes by default only names, instructions,
topics and tags: each behavior arrives as a ``candidate`` for a person to approve, with zeroed
counters, unpinned, no sources or model, and ``metadata["provenance"]`` saying where it came
from. ``trust=True`` takes the records as they are (a handbook you exported yourself). Either
way the guard's rules apply: a behavior they flag is stored ``quarantined`` with the rule and the
evidence, never active.
"""

from __future__ import annotations

import builtins
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pydantic import ValidationError

from .errors import InvalidBehaviorError, InvalidInputError, NotFoundError
from .review import flagged
from .store.base import COUNTERS
from .types import Behavior, BehaviorStatus, new_id, pick_namespace, utcnow

if TYPE_CHECKING:
    from .handbook import Handbook

__all__ = ["ImportReport", "export_jsonl", "import_jsonl"]

#: What an imported record claims about its own standing; taken only with ``trust=True``.
_CLAIMS = frozenset(
    {
        "status",
        "pinned",
        "sources",
        "model",
        "shown",
        "cited",
        "helped",
        "hurt",
        "created_at",
        "last_used_at",
        "metadata",
    }
)


@dataclass
class ImportReport:
    """What ``import_jsonl`` did: counts, each bad line with its number and reason, and what the guard held back."""

    imported: int = 0
    replaced: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)
    quarantined: list[tuple[int, str]] = field(default_factory=list)  # (line, "name: rule (evidence)")


def _pydantic_reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg'].removeprefix('Value error, ')}" if where else err["msg"])
    return "; ".join(parts)


def export_jsonl(handbook: Handbook, out: IO[str], *, namespace: str | None = None) -> int:
    """Write every behavior of the namespace as one JSON object per line; returns the count."""
    behaviors = handbook.list(namespace=namespace)
    for behavior in behaviors:
        out.write(json.dumps(behavior.model_dump(mode="json"), ensure_ascii=False, sort_keys=True) + "\n")
    return len(behaviors)


def import_jsonl(
    handbook: Handbook,
    source: str | Path | IO[bytes],
    *,
    namespace: str | None = None,
    replace: bool = False,
    trust: bool = False,
    origin: str | None = None,
) -> ImportReport:
    """Import behaviors from JSONL, all good lines in one transaction (see the module docstring).

    Bad lines (not UTF-8, not JSON, invalid fields) are reported by line number and nothing of
    them is stored; a name that already exists is skipped, or replaced with ``replace``. Records
    take the target namespace and fresh ids, so an export can seed another namespace.
    """
    store = handbook.store
    target = pick_namespace(namespace, handbook.namespace)
    if origin is None:
        origin = Path(source).name if isinstance(source, str | Path) else "-"
    report = ImportReport()
    fresh: list[Behavior] = []
    replacing: list[tuple[Behavior, Behavior]] = []  # (new, existing)
    seen: dict[str, int] = {}
    for number, raw in _read_lines(source):
        behavior = _parse_line(number, raw, target, report, trust=trust, origin=origin)
        if behavior is None:
            continue
        if behavior.name in seen:
            report.errors.append((number, f"duplicate of line {seen[behavior.name]} ({behavior.name})"))
            continue
        seen[behavior.name] = number
        behavior = _guarded(handbook, behavior, number, report)
        try:
            existing = store.get_behavior(target, behavior.name)
        except NotFoundError:
            fresh.append(behavior)
            continue
        if not replace:
            report.skipped.append((number, f"{behavior.name} already exists"))
            continue
        update: dict[str, Any] = {"id": existing.id, "version": existing.version}
        if not trust:  # the replaced behavior's own history stays; the file adds where the new text came from
            update["metadata"] = {**existing.metadata, **behavior.metadata}
        replacing.append((behavior.model_copy(update=update), existing))
    if fresh:
        store.put_behaviors(list(zip(fresh, handbook.embed(fresh), strict=True)))
    new = [behavior for behavior, _ in replacing]
    for (behavior, existing), vector in zip(replacing, handbook.embed(new), strict=True):
        store.update_behavior(behavior, vector)
        if trust:  # counters move only by increments: bring them to the file's values
            for counter in sorted(COUNTERS):
                delta = getattr(behavior, counter) - getattr(existing, counter)
                if delta:
                    store.increment(target, [behavior.name], counter, by=delta)
    report.imported, report.replaced = len(fresh), len(replacing)
    return report


def _guarded(handbook: Handbook, behavior: Behavior, number: int, report: ImportReport) -> Behavior:
    guard = handbook.guard
    verdict = guard.check(behavior.name, behavior.instruction, topic=behavior.topic) if guard else None
    if verdict is None or verdict.ok:
        return behavior
    report.quarantined.append((number, f"{behavior.name}: rule {verdict.rule} ({verdict.evidence})"))
    return flagged(behavior, verdict)


def _read_lines(source: str | Path | IO[bytes]) -> builtins.list[tuple[int, bytes]]:
    if isinstance(source, str | Path):
        try:
            data = Path(source).expanduser().read_bytes()
        except OSError as exc:
            raise InvalidInputError(f"cannot read {source}: {exc.strerror or exc}") from exc
    else:
        data = source.read()
    return [(n, line) for n, line in enumerate(data.splitlines(), start=1) if line.strip()]


def _parse_line(
    number: int, raw: bytes, namespace: str, report: ImportReport, *, trust: bool, origin: str
) -> Behavior | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        report.errors.append((number, f"not UTF-8 (byte {exc.start})"))
        return None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        report.errors.append((number, f"not valid JSON ({exc.msg} at column {exc.colno})"))
        return None
    if not isinstance(record, dict):
        report.errors.append((number, "not a JSON object"))
        return None
    record = {k: v for k, v in record.items() if k not in {"id", "namespace", "version"}}
    provenance = f"imported from {origin}"
    if trust:
        claimed = record.get("metadata") or {}
        # a record's own provenance wins; a metadata that is no object is left for validation to refuse
        record["metadata"] = {"provenance": provenance, **claimed} if isinstance(claimed, dict) else claimed
    else:  # the file's claims about itself are dropped: what it earned here starts at zero
        record = {k: v for k, v in record.items() if k not in _CLAIMS}
        record.update(status=BehaviorStatus.CANDIDATE, metadata={"provenance": provenance})
    record.update(
        namespace=namespace, id=new_id(), created_at=record.get("created_at") or utcnow(), updated_at=utcnow()
    )
    try:
        return Behavior.model_validate(record)
    except ValidationError as exc:
        report.errors.append((number, _pydantic_reason(exc)))
    except InvalidBehaviorError as exc:  # pragma: no cover - pydantic wraps these
        report.errors.append((number, str(exc)))
    return None
