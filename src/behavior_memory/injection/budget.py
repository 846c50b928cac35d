"""``TimeBudget``: run one retrieval within a time budget, so that a hung store cannot hold an agent.

Shared by the task's block (``fetch.BlockFetcher``) and the mid-task search (``search.BehaviorSearch``):
a sync call runs in a small pool of threads and is given up at the budget (the call itself is left
to finish on its own); an async one is cancelled at the budget. A late call raises ``TimeoutError``
(``concurrent.futures.TimeoutError`` is the same class since Python 3.11).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["TimeBudget"]

T = TypeVar("T")


class TimeBudget:
    """``timeout_s`` per call (``None``: no limit), sync calls in up to ``workers`` threads."""

    def __init__(self, timeout_s: float | None, *, workers: int, thread_name: str) -> None:
        self.timeout_s = timeout_s
        self._workers, self._thread_name = workers, thread_name
        self._pool: ThreadPoolExecutor | None = None

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``, or ``TimeoutError`` once the budget is spent."""
        if self.timeout_s is None:
            return fn(*args)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix=self._thread_name)
        return self._pool.submit(fn, *args).result(timeout=self.timeout_s)

    async def arun(self, awaitable: Awaitable[T]) -> T:
        """The awaitable's result, or ``TimeoutError`` (the awaitable cancelled) once the budget is spent."""
        return await asyncio.wait_for(awaitable, self.timeout_s)

    def close(self) -> None:
        """Release the pool's threads (a hung call is left to finish on its own)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
