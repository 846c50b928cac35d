"""Per-configuration figures of a results JSONL: accuracy with a Wilson interval, tokens, latency, citations."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import mean
from typing import Any

from rich.table import Table

__all__ = ["ConfigSummary", "summarize_rows", "summary_table", "wilson_interval"]


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (sensible at 0%, 100% and small n).

    >>> tuple(round(x, 3) for x in wilson_interval(8, 10))
    (0.49, 0.943)
    """
    if n == 0:
        return (0.0, 0.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class ConfigSummary:
    """One (dataset, condition, retrieval, budget) over all its items and seeds."""

    dataset: str
    condition: str
    retrieval: str
    budget: int
    n: int
    correct: int
    errors: int
    mean_score: float
    output_tokens: float
    prompt_tokens: float
    reasoning_tokens: float | None
    cached_tokens: float | None
    latency_s: float
    shown: float
    token_change: float | None = None  # output tokens versus the baseline at the same budget
    input_overhead: float | None = None  # prompt tokens versus the baseline at the same budget
    cited_correct: list[tuple[str, int]] = field(default_factory=list)
    cited_wrong: list[tuple[str, int]] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.correct, self.n)


def _mean_or_none(values: Iterable[Any]) -> float | None:
    present = [v for v in values if v is not None]
    return mean(present) if present else None


def summarize_rows(rows: Sequence[Mapping[str, Any]], *, top: int = 3) -> list[ConfigSummary]:
    """Group answered rows by configuration; failed requests are counted apart, not as wrong answers."""
    groups: dict[tuple[str, str, str, int], list[Mapping[str, Any]]] = defaultdict(list)
    errors: Counter[tuple[str, str, str, int]] = Counter()
    for row in rows:
        key = (row["dataset"], row["condition"], row.get("retrieval", "-"), int(row["budget"]))
        if row.get("error"):
            errors[key] += 1
        else:
            groups[key].append(row)
    summaries = []
    for key in sorted(set(groups) | set(errors), key=lambda k: (k[0], k[3], k[1] != "baseline", k[2])):
        members = groups.get(key, [])
        cited_ok: Counter[str] = Counter()
        cited_bad: Counter[str] = Counter()
        for r in members:
            (cited_ok if r["correct"] else cited_bad).update(r.get("cited") or [])
        summaries.append(
            ConfigSummary(
                dataset=key[0],
                condition=key[1],
                retrieval=key[2],
                budget=key[3],
                n=len(members),
                correct=sum(bool(r["correct"]) for r in members),
                errors=errors[key],
                mean_score=mean(float(r.get("score", r["correct"])) for r in members) if members else 0.0,
                output_tokens=mean(r["output_tokens"] for r in members) if members else 0.0,
                prompt_tokens=mean(r["prompt_tokens"] for r in members) if members else 0.0,
                reasoning_tokens=_mean_or_none(r.get("reasoning_tokens") for r in members),
                cached_tokens=_mean_or_none(r.get("cached_tokens") for r in members),
                latency_s=mean(r["latency_s"] for r in members) if members else 0.0,
                shown=mean(len(r.get("shown") or []) for r in members) if members else 0.0,
                cited_correct=cited_ok.most_common(top),
                cited_wrong=cited_bad.most_common(top),
            )
        )
    baselines = {(s.dataset, s.budget): s for s in summaries if s.condition == "baseline"}
    for s in summaries:
        base = baselines.get((s.dataset, s.budget))
        if base is not None and s is not base and base.n:
            if base.output_tokens:
                s.token_change = (s.output_tokens - base.output_tokens) / base.output_tokens
            s.input_overhead = s.prompt_tokens - base.prompt_tokens
    return summaries


def _names(counts: list[tuple[str, int]]) -> str:
    return ", ".join(f"{name} ×{n}" for name, n in counts) or "-"


def summary_table(summaries: Sequence[ConfigSummary], *, title: str = "results") -> Table:
    """A rich table, one line per configuration."""
    table = Table(title=title)
    graded = any(abs(s.mean_score - s.accuracy) > 1e-9 for s in summaries)  # HotpotQA: F1 beside EM
    columns = (
        "dataset",
        "condition",
        "budget",
        "n",
        "accuracy [95% CI]",
        *(("F1",) if graded else ()),
        "output tok",
        "output vs base",
        "input +tok",
        "latency s",
        "shown",
        "cited (correct)",
        "cited (wrong)",
    )
    for name in columns:
        table.add_column(name, justify="left" if name in {"dataset", "condition"} or "cited" in name else "right")
    for s in summaries:
        low, high = s.interval
        label = s.condition if s.retrieval == "-" else f"{s.condition} ({s.retrieval})"
        table.add_row(
            s.dataset,
            label,
            str(s.budget),
            f"{s.n}" + (f" (+{s.errors} failed)" if s.errors else ""),
            f"{s.accuracy:.1%} [{low:.0%}, {high:.0%}]",
            *((f"{s.mean_score:.3f}",) if graded else ()),
            f"{s.output_tokens:.0f}",
            "-" if s.token_change is None else f"{s.token_change:+.1%}",
            "-" if s.input_overhead is None else f"{s.input_overhead:+.0f}",
            f"{s.latency_s:.2f}",
            f"{s.shown:.1f}",
            _names(s.cited_correct),
            _names(s.cited_wrong),
        )
    return table
