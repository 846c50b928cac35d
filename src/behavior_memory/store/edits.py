"""Read-modify-write of one behavior that never loses a concurrent change.

``update_behavior`` refuses an edit made from a stale read (``ConflictError``). ``modify_behavior``
is the loop every editor uses: read, apply the change, write; on conflict read again and re-apply,
so two processes merging sources into one behavior both land.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from ..errors import ConflictError
from ..types import Behavior
from .base import BehaviorStore, Vector

__all__ = ["modify_behavior"]

_ATTEMPTS = 50


def modify_behavior(
    store: BehaviorStore,
    namespace: str,
    key: str,
    change: Callable[[Behavior], Behavior | None],
    *,
    vector: Callable[[Behavior], Vector | None] | None = None,
) -> Behavior:
    """Apply ``change`` to the current behavior ``key`` and store it; returns what is stored.

    ``change`` gets a fresh copy and returns the edited behavior, or ``None`` when nothing needs
    to change (then nothing is written). It may run more than once, so it must only compute.
    ``vector`` (optional) gives the new embedding of the edited behavior. ``NotFoundError`` and
    ``InvalidBehaviorError`` pass through; after many conflicts in a row ``ConflictError`` does.
    """
    for attempt in range(_ATTEMPTS):
        current = store.get_behavior(namespace, key)
        edited = change(current.model_copy(deep=True))
        if edited is None:
            return current
        try:
            return store.update_behavior(edited, vector(edited) if vector is not None else None)
        except ConflictError:
            if attempt == _ATTEMPTS - 1:
                raise
            time.sleep(random.random() * min(0.001 * 2**attempt, 0.05))  # spread the retries of many writers
    raise AssertionError("unreachable")  # pragma: no cover
