"""Randomised exposure: leave some chosen behaviors out of a task's block, and record which.

With ``curation.lifecycle.withhold_epsilon`` above 0, each behavior retrieval chose for a task is
left out of that task's block with probability epsilon (pinned behaviors never are), and the trace
lists the names left out in ``metadata["withheld"]``: an empty list when the coin spared them all,
so every trace opened while the experiment runs has the key, except one opened with behaviors
that never met the coin (a block rendered without ``choose``, as the eval harness does): its
exposure was not randomised, so it must stay out of the estimate. ``lifecycle.estimate_utility``
then compares the tasks that saw a behavior with those that did not (``bmem behaviors utility``).
Retrieval itself is never changed: ``memory.retrieve`` still says what retrieval chose, the block
and ``trace.shown`` hold what the model saw.

The coin is tossed once per task, where the block is made: in ``BlockFetcher`` for every adapter,
or by ``memory.exposure.choose(hits)`` for code that renders its own block::

    hits = memory.retrieve(question)              # what retrieval chose
    shown = memory.exposure.choose(hits)          # all of them while epsilon is 0
    prompt = append_block(base_prompt, memory.render(shown))
    with memory.trace(task=question, hits=shown) as t:
        ...                                       # t.trace.metadata["withheld"]: the rest

The withheld names reach the task's trace through the context (``contextvars``, which threads and
asyncio tasks started from it carry along, as for ``memory.capture()``), whichever comes first:

- the block, then the trace (the LangChain middleware and wrapper, the code above): the names wait
  in the context, and the next trace ``BehaviorMemory.trace`` opens there takes them;
- the trace, then the block (a LlamaIndex run opens its trace, then its memory block fetches): the
  trace open in the context, of the same namespace and still without a block, takes them.
"""

from __future__ import annotations

import random
import threading
import weakref
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import InvalidInputError
from ..lifecycle.utility import WITHHELD_KEY, UniformSource, withhold
from ..types import Trace

__all__ = ["WITHHELD_KEY", "Exposure"]

H = TypeVar("H")


@dataclass(frozen=True)
class _Pending:
    """Names withheld from a block made in this context, waiting for the trace opened next."""

    owner: Exposure
    namespace: str
    withheld: tuple[str, ...]


@dataclass
class _Open:
    """The trace opened last in this context, and whether its block was made yet."""

    owner: Exposure
    trace: weakref.ref[Trace]
    has_block: bool


_PENDING: ContextVar[_Pending | None] = ContextVar("behavior_memory_withheld", default=None)
_OPEN: ContextVar[_Open | None] = ContextVar("behavior_memory_open_trace", default=None)


def _behavior(item: Any) -> Any:
    return getattr(item, "behavior", item)  # ScoredBehavior or Behavior


class Exposure:
    """The coin of the experiment for one memory: ``epsilon`` is the chance to withhold a chosen behavior.

    ``rng`` is anything with ``random()`` (``random.Random`` by default; pass a seeded one in
    tests). With ``epsilon`` 0 nothing is drawn and no trace is marked.
    """

    def __init__(self, epsilon: float = 0.0, rng: UniformSource | None = None) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise InvalidInputError(f"epsilon must lie in [0, 1], got {epsilon}")
        self.epsilon = epsilon
        self._rng: UniformSource = rng if rng is not None else random.Random()
        self._lock = threading.Lock()  # one rng for every thread; numpy's Generator is not thread-safe

    @property
    def active(self) -> bool:
        """Whether the experiment runs (``epsilon > 0``)."""
        return self.epsilon > 0.0

    def split(self, hits: Sequence[H]) -> tuple[list[H], list[str]]:
        """``(shown hits, withheld names)``: each hit left out with probability ``epsilon``, pinned ones never.

        Order is kept. Touches no context: ``note`` hands the names to the trace.

        >>> from behavior_memory.types import Behavior
        >>> pin = Behavior(name="behavior_pin", instruction="x", pinned=True)
        >>> hits = [pin, Behavior(name="behavior_aa", instruction="y")]
        >>> shown, withheld = Exposure(1.0).split(hits)
        >>> [b.name for b in shown], withheld
        (['behavior_pin'], ['behavior_aa'])
        """
        if not self.active or not hits:
            return list(hits), []
        names = list(dict.fromkeys(_behavior(h).name for h in hits))
        keep = {_behavior(h).name for h in hits if getattr(_behavior(h), "pinned", False)}
        with self._lock:
            _, withheld = withhold(names, self.epsilon, self._rng, keep=keep)
        left_out = set(withheld)
        return [h for h in hits if _behavior(h).name not in left_out], withheld

    def note(self, namespace: str, withheld: Sequence[str]) -> None:
        """Hand the names withheld from a block just made for ``namespace`` to its task's trace.

        The trace open in this context without a block yet takes them now; otherwise the next trace
        opened in this context does. Call it after every block made while the experiment runs,
        with an empty list too, so that an older note never reaches the wrong trace.
        """
        if not self.active:
            return
        names = list(withheld)
        with self._lock:
            current = _OPEN.get()
            if current is not None and (trace := self._waiting(current, namespace)) is not None:
                current.has_block = True
                trace.metadata[WITHHELD_KEY] = names
                return
        _PENDING.set(_Pending(self, namespace, tuple(names)))

    def _waiting(self, current: _Open, namespace: str) -> Trace | None:
        """The open trace of ``current`` if it is this memory's, unsaved, of ``namespace`` and without a block."""
        trace = current.trace() if current.owner is self and not current.has_block else None
        if trace is None or trace.finished_at is not None or trace.namespace != namespace:
            return None
        return trace

    def choose(self, hits: Sequence[H], *, namespace: str | None = None) -> list[H]:
        """``split`` and ``note`` in one: the hits to render and show; the rest go to the next trace.

        ``namespace`` defaults to the hits' own (a hit is a ``ScoredBehavior`` or a ``Behavior``).
        """
        shown, withheld = self.split(hits)
        namespace = namespace or (_behavior(hits[0]).namespace if hits else None)
        if namespace is not None:
            self.note(namespace, withheld)
        elif self.active:
            _PENDING.set(None)  # no behaviors and no namespace: nothing withheld, and no older note may stay
        return shown

    def opened(self, trace: Trace, *, has_block: bool) -> None:
        """Mark a trace ``BehaviorMemory.trace`` just opened (``has_block``: it was given the names shown).

        The names waiting in this context for a trace of its namespace go into its metadata (unless
        the caller set the key already). Without such names, a trace opened with no behaviors gets
        an empty list, and a later block of this context reports to it; one opened with behaviors
        gets no key: they were shown without the coin, so the trace is no part of the experiment.
        """
        if not self.active:
            return
        pending = _PENDING.get()
        if pending is not None and pending.owner is self and pending.namespace == trace.namespace:
            _PENDING.set(None)
            trace.metadata.setdefault(WITHHELD_KEY, list(pending.withheld))
            has_block = True
        elif WITHHELD_KEY in trace.metadata:
            has_block = True  # the caller ran the experiment itself
        elif not has_block:
            trace.metadata[WITHHELD_KEY] = []  # nothing shown yet: its block may come (LlamaIndex), or none
        _OPEN.set(_Open(self, weakref.ref(trace), has_block))

    def __repr__(self) -> str:
        return f"Exposure(epsilon={self.epsilon})"
