"""``score(behavior)``: what a behavior's counters say about it, with the uncertainty kept in.

The counters are ``shown`` (put in a prompt), ``cited`` (named by the output), ``helped`` and
``hurt`` (cited in a task that then succeeded or failed). Raw ratios flatter the newcomers: 1 hurt
of 1 is a "100% harmful" behavior. So each rate comes with the lower end of its 95% Wilson interval,
the rate we are fairly sure the behavior reaches, and decisions are made on those lower bounds.

>>> from behavior_memory.types import Behavior
>>> s = score(Behavior(name="behavior_demo", instruction="x", shown=20, cited=10, helped=7, hurt=1))
>>> s.evidence, round(s.helped_rate, 3), round(s.helpfulness, 2), round(s.harm, 2)
(8, 0.875, 0.53, 0.02)
>>> s.citation_rate, round(s.citation_lcb, 2)
(0.5, 0.3)
"""

from __future__ import annotations

from dataclasses import dataclass

from ..types import Behavior
from .intervals import wilson_lower_bound

__all__ = ["BehaviorScores", "score"]


@dataclass(frozen=True)
class BehaviorScores:
    """One behavior's counters and the rates drawn from them (lower bounds are 95% Wilson).

    ``helpfulness`` and ``harm`` are lower bounds of ``helped / evidence`` and ``hurt / evidence``;
    both are 0.0 without evidence. ``citation_rate`` is ``cited / shown`` (0.0 when never shown)
    and ``citation_lcb`` its lower bound.
    """

    name: str
    shown: int
    cited: int
    helped: int
    hurt: int
    helpfulness: float
    harm: float
    citation_rate: float
    citation_lcb: float

    @property
    def evidence(self) -> int:
        """Tasks that judged the behavior: ``helped + hurt``."""
        return self.helped + self.hurt

    @property
    def helped_rate(self) -> float | None:
        """``helped / evidence``, the point estimate; ``None`` without evidence."""
        return self.helped / self.evidence if self.evidence else None

    @property
    def hurt_rate(self) -> float | None:
        """``hurt / evidence``, the point estimate; ``None`` without evidence."""
        return self.hurt / self.evidence if self.evidence else None


def score(behavior: Behavior) -> BehaviorScores:
    """The scores of one behavior, from its counters alone.

    ``cited`` can exceed ``shown`` (an output may name a behavior it saw in an earlier turn, or
    counters from a merge): the citation rate is then capped at 1.

    >>> from behavior_memory.types import Behavior
    >>> fresh = score(Behavior(name="behavior_new", instruction="x"))
    >>> fresh.evidence, fresh.helpfulness, fresh.harm, fresh.citation_rate, fresh.helped_rate
    (0, 0.0, 0.0, 0.0, None)
    """
    helped, hurt = max(behavior.helped, 0), max(behavior.hurt, 0)
    shown, cited = max(behavior.shown, 0), max(behavior.cited, 0)
    evidence = helped + hurt
    cited_of_shown = min(cited, shown)
    return BehaviorScores(
        name=behavior.name,
        shown=behavior.shown,
        cited=behavior.cited,
        helped=behavior.helped,
        hurt=behavior.hurt,
        helpfulness=wilson_lower_bound(helped, evidence),
        harm=wilson_lower_bound(hurt, evidence),
        citation_rate=cited_of_shown / shown if shown else 0.0,
        citation_lcb=wilson_lower_bound(cited_of_shown, shown),
    )
