"""The ``HandbookStore`` protocol every store implements (SQLite by default, PostgreSQL later).

Every method takes the namespace explicitly: a store never answers across namespaces.
Vectors are float32, L2-normalised by the caller, and stored beside the behavior they embed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ..types import Behavior, BehaviorStatus, ReflectionStatus, Trace

__all__ = ["CounterName", "HandbookStore", "Vectors"]

#: ``(ids, matrix)``: row ``i`` of the float32 matrix is the vector of behavior ``ids[i]``.
Vectors = tuple[list[str], npt.NDArray[np.float32]]
CounterName = str  # one of: shown, cited, helped, hurt


@runtime_checkable
class HandbookStore(Protocol):
    """Durable home of behaviors (with their vectors) and traces."""

    # --- behaviors -------------------------------------------------------------------------
    def put_behavior(self, behavior: Behavior, vector: npt.NDArray[np.float32] | None = None) -> Behavior:
        """Insert a new behavior; a behavior with the same name in the namespace is an error."""
        ...

    def put_behaviors(self, items: Sequence[tuple[Behavior, npt.NDArray[np.float32] | None]]) -> list[Behavior]:
        """Insert many behaviors in one transaction: all of them or none."""
        ...

    def get_behavior(self, namespace: str, key: str) -> Behavior:
        """Fetch by id or by name; raises ``NotFoundError``."""
        ...

    def update_behavior(self, behavior: Behavior, vector: npt.NDArray[np.float32] | None = None) -> Behavior:
        """Replace a behavior's fields (and vector when given); bumps its version."""
        ...

    def delete_behavior(self, namespace: str, key: str) -> None:
        """Remove by id or name; raises ``NotFoundError``."""
        ...

    def list_behaviors(
        self,
        namespace: str,
        *,
        statuses: Iterable[BehaviorStatus] | None = None,
        topic: str | None = None,
        limit: int | None = None,
    ) -> list[Behavior]:
        """Behaviors of one namespace, ordered by name (deterministic)."""
        ...

    def count_behaviors(self, namespace: str | None = None) -> int: ...

    def vectors(self, namespace: str) -> Vectors:
        """Every stored vector of the namespace (rows in the order of the ids)."""
        ...

    def increment(self, namespace: str, names: Iterable[str], counter: CounterName, by: int = 1) -> None:
        """Add ``by`` to a counter of each named behavior, atomically; unknown names are ignored."""
        ...

    def change_token(self, namespace: str) -> int:
        """A number that changes whenever the namespace's behaviors change (for caches)."""
        ...

    def namespaces(self) -> list[str]: ...

    # --- traces ----------------------------------------------------------------------------
    def put_trace(self, trace: Trace) -> Trace:
        """Insert or replace a trace, steps included, durably."""
        ...

    def get_trace(self, trace_id: str) -> Trace:
        """Raises ``NotFoundError``."""
        ...

    def list_traces(
        self,
        namespace: str | None = None,
        *,
        status: ReflectionStatus | None = None,
        limit: int = 50,
    ) -> list[Trace]:
        """Newest first."""
        ...

    def claim_pending_traces(self, limit: int, *, lease_s: float = 600.0) -> list[Trace]:
        """Atomically mark up to ``limit`` pending traces as running and return them.

        A trace claimed by a process that died becomes claimable again after ``lease_s``.
        """
        ...

    def close(self) -> None: ...
