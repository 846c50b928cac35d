"""``Handbook``: the behaviors of a store, with embedding on write and JSONL import/export.

Every method works in one namespace: the one given, or the memory's default.
"""

from __future__ import annotations

import builtins
import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .embeddings.base import Embedder
from .errors import QuarantinedError
from .review import BehaviorGuard, override_record, person, transition, with_note
from .store.base import HandbookStore
from .types import (
    Behavior,
    BehaviorStatus,
    pick_namespace,
    validate_behavior_name,
    validate_instruction,
    validate_namespace,
)

if TYPE_CHECKING:  # numpy loads with the first vector, not with the import
    import numpy as np
    import numpy.typing as npt

    from .handbook_jsonl import ImportReport
    from .retrieval.reembed import Reembedding

__all__ = ["Handbook"]

log = logging.getLogger(__name__)


class Handbook:
    """Add, change, list, remove, export and import behaviors."""

    def __init__(
        self,
        store: HandbookStore,
        embedder: Embedder | None,
        *,
        namespace: str,
        guard: BehaviorGuard | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.guard = guard
        self.namespace = validate_namespace(namespace)
        # The embedder check waits for the first write or retrieval: reading the handbook
        # (``bmem behaviors list``) must not load an embedding model.
        self._embedder_checked = False
        self._check_lock = threading.Lock()
        self.reembedding: Reembedding | None = None  # the background re-embedding this handbook started

    # --- embedding ----------------------------------------------------------------------------
    def _embed(self, behaviors: list[Behavior]) -> list[npt.NDArray[np.float32] | None]:
        self.ensure_embedder()
        return self._vectors(behaviors)

    def _vectors(self, behaviors: list[Behavior]) -> list[npt.NDArray[np.float32] | None]:
        import numpy as np

        if self.embedder is None or not behaviors:
            return [None] * len(behaviors)
        matrix = self.embedder.embed([b.text for b in behaviors])
        return [np.asarray(row, dtype=np.float32) for row in matrix]

    def ensure_embedder(self, *, wait: bool = False) -> None:
        """Re-embed every stored behavior if the configured embedder changed since the last run.

        Checked once per handbook, before the first write, retrieval or reflection (the memory calls
        it). The re-embedding runs in a background thread, in batches (``retrieval.reembed``):
        nothing waits for it unless ``wait``, and retrieval stays lexical until it ends.
        """
        if not self._embedder_checked:
            with self._check_lock:
                if not self._embedder_checked:
                    self._check_embedder()
                    self._embedder_checked = True
        if wait and self.reembedding is not None:
            self.reembedding.join()

    def _check_embedder(self) -> None:
        from .retrieval.reembed import Reembedding, needs_reembedding

        if self.embedder is not None and needs_reembedding(self.store, self.embedder):
            self.reembedding = Reembedding(self.store, self.embedder).start()

    # --- single behaviors ---------------------------------------------------------------------
    def add(
        self,
        name: str,
        instruction: str,
        *,
        topic: str | None = None,
        tags: Iterable[str] = (),
        status: BehaviorStatus | str = BehaviorStatus.ACTIVE,
        pinned: bool = False,
        namespace: str | None = None,
        sources: Iterable[str] = (),
        model: str | None = None,
        force: bool = False,
        by: str | None = None,
    ) -> Behavior:
        """Add one behavior; a bad name or instruction raises ``InvalidBehaviorError`` with the reason.

        The guard's rules apply: a behavior they flag raises ``QuarantinedError`` naming the rule and
        the evidence, unless ``force``, which stores it and records who (``by``) overrode which rule.
        A person adding a behavior is its approval, so it is active unless ``status`` says otherwise.
        """
        behavior = Behavior(
            name=validate_behavior_name(name),
            instruction=validate_instruction(instruction),
            namespace=pick_namespace(namespace, self.namespace),
            topic=topic or None,
            tags=list(tags),
            status=BehaviorStatus(status),
            pinned=pinned,
            sources=list(sources),
            model=model,
        )
        behavior = self._guarded(behavior, force=force, by=by, action="added")
        return self.store.put_behavior(behavior, self._embed([behavior])[0])

    # --- the guard and a person's decisions ------------------------------------------------------
    def _guarded(self, behavior: Behavior, *, force: bool, by: str | None, action: str) -> Behavior:
        """``behavior`` as it may be stored: refused when the guard flags it, unless forced (and recorded)."""
        who = by or person()
        verdict = self.guard.check(behavior.name, behavior.instruction, topic=behavior.topic) if self.guard else None
        if verdict is not None and not verdict.ok:
            if not force:
                raise QuarantinedError(
                    f"{behavior.name} was not {action}: the guard's rule {verdict.rule!r} matched "
                    f"{verdict.evidence!r} (pass force=True, or --force, to store it anyway; the override is recorded)",
                    rule=verdict.rule or "unknown",
                    evidence=verdict.evidence or "",
                )
            overrides = [*behavior.metadata.get("overrides", []), override_record(verdict, by=who)]
            behavior = behavior.model_copy(update={"metadata": {**behavior.metadata, "overrides": overrides}})
        return with_note(behavior, by=who, reason=action)

    def approve(
        self,
        key: str,
        *,
        by: str | None = None,
        reason: str = "approved",
        force: bool = False,
        namespace: str | None = None,
    ) -> Behavior:
        """A person makes the behavior active. A quarantined one needs ``force`` (the override is recorded)."""
        who = by or person()

        def change(b: Behavior) -> Behavior:
            if b.status == BehaviorStatus.QUARANTINED and not force:
                rule = (b.metadata.get("guard") or {}).get("rule") or "a person"
                raise QuarantinedError(
                    f"{b.name} is quarantined ({rule}); approve it with force=True (--force) if you are sure",
                    rule=str(rule),
                    evidence=str((b.metadata.get("guard") or {}).get("evidence") or ""),
                )
            return transition(b, BehaviorStatus.ACTIVE, by=who, reason=reason)

        return self.modify(key, change, namespace=namespace)

    def set_status(
        self,
        key: str,
        status: BehaviorStatus | str,
        *,
        by: str | None = None,
        reason: str | None = None,
        force: bool = False,
        namespace: str | None = None,
    ) -> Behavior:
        """Move the behavior to ``status`` as a person's decision, recorded; ``active`` is ``approve``."""
        target = BehaviorStatus(status)
        if target == BehaviorStatus.ACTIVE:
            return self.approve(key, by=by, reason=reason or "approved", force=force, namespace=namespace)
        who = by or person()
        return self.modify(
            key,
            lambda b: transition(b, target, by=who, reason=reason or f"set to {target}"),
            namespace=namespace,
        )

    def reject(
        self, key: str, *, by: str | None = None, reason: str = "rejected", namespace: str | None = None
    ) -> Behavior:
        """A person retires the behavior: ``archived``, never injected, kept with its provenance."""
        return self.modify(
            key, lambda b: transition(b, BehaviorStatus.ARCHIVED, by=by or person(), reason=reason), namespace=namespace
        )

    def quarantine(self, key: str, *, reason: str, by: str | None = None, namespace: str | None = None) -> Behavior:
        """A person suspects the behavior: ``quarantined`` with the reason, never injected."""
        return self.modify(
            key,
            lambda b: transition(b, BehaviorStatus.QUARANTINED, by=by or person(), reason=reason),
            namespace=namespace,
        )

    def edit(
        self,
        key: str,
        *,
        instruction: str | None = None,
        topic: str | None = None,
        by: str | None = None,
        force: bool = False,
        namespace: str | None = None,
    ) -> Behavior:
        """A person rewrites the behavior; the new text passes the guard (or ``force``, recorded)."""
        text = None if instruction is None else validate_instruction(instruction)

        def change(b: Behavior) -> Behavior:
            edited = b.model_copy(
                update={
                    **({"instruction": text} if text is not None else {}),
                    **({"topic": topic or None} if topic is not None else {}),
                }
            )
            return self._guarded(edited, force=force, by=by, action="edited")

        return self.modify(key, change, namespace=namespace)

    def add_many(self, behaviors: Iterable[Behavior]) -> builtins.list[Behavior]:
        """Store ready ``Behavior`` objects, each in its own namespace, embedded in one batch.

        One transaction: a name that already exists raises ``InvalidBehaviorError`` and stores none.
        """
        items = builtins.list(behaviors)
        return self.store.put_behaviors(builtins.list(zip(items, self._embed(items), strict=True)))

    def get(self, key: str, *, namespace: str | None = None) -> Behavior:
        """By id or name; raises ``NotFoundError``."""
        return self.store.get_behavior(pick_namespace(namespace, self.namespace), key)

    def list(
        self,
        *,
        namespace: str | None = None,
        status: BehaviorStatus | str | None = None,
        topic: str | None = None,
        limit: int | None = None,
    ) -> list[Behavior]:
        """Behaviors ordered by name."""
        statuses = None if status is None else [BehaviorStatus(status)]
        return self.store.list_behaviors(
            pick_namespace(namespace, self.namespace), statuses=statuses, topic=topic, limit=limit
        )

    def update(
        self,
        key: str,
        *,
        namespace: str | None = None,
        instruction: str | None = None,
        topic: str | None = None,
        tags: Iterable[str] | None = None,
        status: BehaviorStatus | str | None = None,
        pinned: bool | None = None,
    ) -> Behavior:
        """Change fields of a behavior; the text changed means a new embedding.

        Concurrent changes are never lost: counters move on their own, and an edit that raced
        another is re-applied to the fresh record (``store.edits.modify_behavior``).
        """
        changes: dict[str, Any] = {}
        if instruction is not None:
            changes["instruction"] = validate_instruction(instruction)
        if topic is not None:
            changes["topic"] = topic or None
        if tags is not None:
            changes["tags"] = list(tags)
        if status is not None:
            changes["status"] = BehaviorStatus(status)
        if pinned is not None:
            changes["pinned"] = pinned
        return self.modify(key, lambda current: current.model_copy(update=changes), namespace=namespace)

    def modify(
        self, key: str, change: Callable[[Behavior], Behavior | None], *, namespace: str | None = None
    ) -> Behavior:
        """Apply ``change`` to the current record of ``key`` and store it, re-applied if another
        writer got there first; a changed text is embedded again. ``change`` returns ``None`` for no change."""
        from .store.edits import modify_behavior

        originals: dict[int, str] = {}

        def tracked(current: Behavior) -> Behavior | None:
            originals[current.version] = current.text
            return change(current)

        def vector(edited: Behavior) -> npt.NDArray[np.float32] | None:
            text_changed = edited.text != originals.get(edited.version)
            return self._embed([edited])[0] if text_changed else None

        return modify_behavior(self.store, pick_namespace(namespace, self.namespace), key, tracked, vector=vector)

    def remove(self, key: str, *, namespace: str | None = None) -> None:
        """Delete a behavior by id or name; raises ``NotFoundError``."""
        self.store.delete_behavior(pick_namespace(namespace, self.namespace), key)

    def count(self, *, namespace: str | None = None) -> int:
        return self.store.count_behaviors(pick_namespace(namespace, self.namespace))

    # --- JSONL (``handbook_jsonl``) -----------------------------------------------------------
    def export_jsonl(self, out: IO[str], *, namespace: str | None = None) -> int:
        """Write every behavior of the namespace as one JSON object per line; returns the count."""
        from .handbook_jsonl import export_jsonl

        return export_jsonl(self, out, namespace=namespace)

    def import_jsonl(
        self,
        source: str | Path | IO[bytes],
        *,
        namespace: str | None = None,
        replace: bool = False,
        trust: bool = False,
        origin: str | None = None,
    ) -> ImportReport:
        """Import behaviors from JSONL: candidates by default, everything as written with ``trust``;
        the guard quarantines what it flags (see ``handbook_jsonl``)."""
        from .handbook_jsonl import import_jsonl

        return import_jsonl(self, source, namespace=namespace, replace=replace, trust=trust, origin=origin)

    def embed(self, behaviors: builtins.list[Behavior]) -> builtins.list[npt.NDArray[np.float32] | None]:
        """The vectors to store with ``behaviors`` (``None`` each without an embedder)."""
        return self._embed(behaviors)
