"""Measured utility: what showing a behavior does to success and output tokens, by randomised exposure.

Counters say a cited behavior was there when a task succeeded, not that it made the task succeed:
good behaviors get retrieved for easy tasks, and a task that went well cites more. To measure the
effect itself we run a small experiment. With probability ``epsilon`` each behavior retrieval chose
for a task is withheld from that task's block (``withhold``), and the trace records the withheld
names in ``metadata["withheld"]``. Whether a chosen behavior is shown is then a coin flip, so among
the tasks that chose it, the shown and the withheld differ by the behavior alone, and the plain
difference of their means is an unbiased estimate of its effect (``estimate_utility``).

The contract with the recorder: a trace takes part when its ``metadata`` has the ``"withheld"`` key,
a list, empty when the coin spared every behavior. Traces recorded with ``epsilon = 0`` lack the
key; their exposure was not randomised and they are left out. For a behavior, the eligible traces
are those of the experiment that chose it (shown it, or withheld it).

- success: the share of tasks with outcome ``success`` among those with a known outcome (``unknown``
  ones are left out); the effect is a difference of proportions with Newcombe's hybrid score interval.
- tokens: ``trace.usage.completion_tokens`` over the tasks whose model calls reported usage (a trace
  read without its steps has none, and is left out rather than counted as 0 tokens); the effect is a
  difference of means with the Welch standard error and a normal quantile.

Both are ``shown - withheld``: a positive success effect helps, a negative token effect saves.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import InvalidInputError
from ..types import Outcome, Trace
from .intervals import Difference, newcombe_difference, welch_difference

__all__ = [
    "UTILITY_TABLE_COLUMNS",
    "WITHHELD_KEY",
    "UtilityEstimate",
    "estimate_utility",
    "format_utility_table",
    "withhold",
]

#: The trace ``metadata`` key that lists the names withheld from the task's block.
WITHHELD_KEY = "withheld"

#: The header of ``format_utility_table``'s rows.
UTILITY_TABLE_COLUMNS = ("behavior", "n shown", "n withheld", "success effect", "token effect", "verdict")


class UniformSource(Protocol):
    """What ``withhold`` draws from: ``random.Random`` or ``numpy.random.Generator``."""

    def random(self) -> float: ...


def withhold(
    names: Sequence[str], epsilon: float, rng: UniformSource, *, keep: Collection[str] = ()
) -> tuple[list[str], list[str]]:
    """Split the names retrieval chose into ``(shown, withheld)``; each is withheld with probability ``epsilon``.

    Names in ``keep`` (pinned behaviors) are always shown. Order is kept in both lists. With
    ``epsilon`` 0 nothing is drawn from ``rng``, so turning the experiment off changes no other
    random sequence. Record ``withheld`` in ``trace.metadata[WITHHELD_KEY]`` whenever ``epsilon > 0``,
    even when it is empty.

    >>> import random
    >>> withhold(["behavior_aa", "behavior_bb", "behavior_cc"], 0.5, random.Random(3))
    (['behavior_bb'], ['behavior_aa', 'behavior_cc'])
    >>> withhold(["behavior_aa"], 0.0, random.Random(3))
    (['behavior_aa'], [])
    """
    if not 0.0 <= epsilon <= 1.0:
        raise InvalidInputError(f"epsilon must lie in [0, 1], got {epsilon}")
    if epsilon == 0.0:
        return list(names), []
    shown: list[str] = []
    withheld: list[str] = []
    for name in names:
        if name not in keep and rng.random() < epsilon:
            withheld.append(name)
        else:
            shown.append(name)
    return shown, withheld


@dataclass(frozen=True)
class UtilityEstimate:
    """The measured effect of showing one behavior, ``shown - withheld``, over its eligible traces.

    ``n_shown`` and ``n_withheld`` count the eligible traces of each arm. ``success`` (a difference
    of proportions, Newcombe interval) counts only those with a known outcome; ``tokens`` (a
    difference of mean completion tokens, Welch interval) only those that reported usage. Either is
    ``None`` when an arm has no such trace. ``enough_data`` is False when an arm has fewer than
    ``min_samples`` eligible traces; then no verdict is drawn.
    """

    name: str
    n_shown: int
    n_withheld: int
    success: Difference | None
    tokens: Difference | None
    enough_data: bool

    def _ok(self, effect: Difference | None) -> Difference | None:
        return effect if self.enough_data and effect is not None else None

    @property
    def hurts_success(self) -> bool:
        """Enough data, and the whole success interval lies below 0."""
        effect = self._ok(self.success)
        return effect is not None and effect.high < 0

    @property
    def helps_success(self) -> bool:
        """Enough data, and the whole success interval lies above 0."""
        effect = self._ok(self.success)
        return effect is not None and effect.low > 0

    @property
    def verdict(self) -> str:
        """A few words for a table: ``raises success, saves tokens``, ``no clear effect``, ``not enough data``."""
        if not self.enough_data:
            return "not enough data"
        parts = []
        if self.helps_success:
            parts.append("raises success")
        elif self.hurts_success:
            parts.append("lowers success")
        tokens = self._ok(self.tokens)
        if tokens is not None and tokens.high < 0:
            parts.append("saves tokens")
        elif tokens is not None and tokens.low > 0:
            parts.append("costs tokens")
        return ", ".join(parts) or "no clear effect"


@dataclass
class _Arms:
    """One behavior's tally over its eligible traces, split by arm."""

    n_shown: int = 0
    n_withheld: int = 0
    wins_shown: int = 0
    judged_shown: int = 0
    wins_withheld: int = 0
    judged_withheld: int = 0
    tokens_shown: list[float] = field(default_factory=list)
    tokens_withheld: list[float] = field(default_factory=list)

    def add(self, trace: Trace, *, shown: bool) -> None:
        judged = int(trace.outcome != Outcome.UNKNOWN)
        won = int(trace.outcome == Outcome.SUCCESS)
        tokens = _completion_tokens(trace)
        if shown:
            self.n_shown += 1
            self.judged_shown += judged
            self.wins_shown += won
            if tokens is not None:
                self.tokens_shown.append(tokens)
        else:
            self.n_withheld += 1
            self.judged_withheld += judged
            self.wins_withheld += won
            if tokens is not None:
                self.tokens_withheld.append(tokens)


def _completion_tokens(trace: Trace) -> float | None:
    """The trace's output tokens, or None when no model call reported usage (0 would bias the mean)."""
    if not any(step.usage is not None for step in trace.steps):
        return None
    return float(trace.usage.completion_tokens)


def _withheld_names(trace: Trace) -> list[str] | None:
    value = trace.metadata.get(WITHHELD_KEY)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise InvalidInputError(f"trace {trace.id}: metadata[{WITHHELD_KEY!r}] must be a list of names, got {value!r}")
    return value


def estimate_utility(traces: Iterable[Trace], *, min_samples: int = 10) -> dict[str, UtilityEstimate]:
    """The measured effect of every behavior chosen in the experiment's traces, by name (sorted).

    All traces must belong to one namespace (names are unique only within one). A name that is
    both shown and withheld in one trace makes that trace ineligible for it.
    """
    if min_samples < 1:
        raise InvalidInputError(f"min_samples must be at least 1, got {min_samples}")
    arms: dict[str, _Arms] = {}
    namespace: str | None = None
    for trace in traces:
        withheld = _withheld_names(trace)
        if withheld is None:
            continue
        if namespace is None:
            namespace = trace.namespace
        elif trace.namespace != namespace:
            raise InvalidInputError(
                f"estimate_utility takes the traces of one namespace, got {namespace!r} and {trace.namespace!r}"
            )
        shown, held = set(trace.shown), set(withheld)
        for name in shown ^ held:
            arms.setdefault(name, _Arms()).add(trace, shown=name in shown)
    return {name: _estimate(name, arms[name], min_samples) for name in sorted(arms)}


def _estimate(name: str, arms: _Arms, min_samples: int) -> UtilityEstimate:
    success = None
    if arms.judged_shown and arms.judged_withheld:
        success = newcombe_difference(arms.wins_shown, arms.judged_shown, arms.wins_withheld, arms.judged_withheld)
    tokens = None
    if arms.tokens_shown and arms.tokens_withheld:
        tokens = welch_difference(arms.tokens_shown, arms.tokens_withheld)
    return UtilityEstimate(
        name=name,
        n_shown=arms.n_shown,
        n_withheld=arms.n_withheld,
        success=success,
        tokens=tokens,
        enough_data=min(arms.n_shown, arms.n_withheld) >= min_samples,
    )


def _format_points(effect: Difference | None) -> str:
    if effect is None:
        return "-"
    return f"{100 * effect.estimate:+.1f} pts [{100 * effect.low:+.1f}, {100 * effect.high:+.1f}]"


def _format_tokens(effect: Difference | None) -> str:
    if effect is None:
        return "-"
    return f"{effect.estimate:+.0f} [{effect.low:+.0f}, {effect.high:+.0f}]"


def format_utility_table(estimates: Mapping[str, UtilityEstimate]) -> list[tuple[str, str, str, str, str, str]]:
    """Rows of strings for a CLI table under ``UTILITY_TABLE_COLUMNS``, one per behavior, by name.

    Success effects are in percentage points, token effects in tokens; both show the 95% interval.

    >>> from behavior_memory.lifecycle.intervals import newcombe_difference, welch_difference
    >>> est = UtilityEstimate("behavior_aa", 100, 100, newcombe_difference(70, 100, 50, 100),
    ...                       welch_difference([470, 480, 490], [500, 510, 520]), True)
    >>> format_utility_table({"behavior_aa": est})[0]
    ('behavior_aa', '100', '100', '+20.0 pts [+6.4, +32.6]', '-30 [-46, -14]', 'raises success, saves tokens')
    """
    return [
        (
            name,
            str(est.n_shown),
            str(est.n_withheld),
            _format_points(est.success),
            _format_tokens(est.tokens),
            est.verdict,
        )
        for name, est in sorted(estimates.items())
    ]
