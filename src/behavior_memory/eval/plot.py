"""``bmem eval plot``: accuracy against mean output tokens per budget, baseline and behaviors side by side."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from .._optional import require
from ..errors import BehaviorMemoryError
from .results import ConfigSummary

__all__ = ["plot_summaries"]


def plot_summaries(summaries: Sequence[ConfigSummary], out: Path, *, title: str | None = None) -> Path:
    """Draw one PNG: left, accuracy (with 95% interval) vs mean output tokens, one point per budget;
    right, mean output tokens per budget as grouped bars. Needs matplotlib (the ``eval`` extra)."""
    require("matplotlib", "eval", what="plots").use("Agg")
    plt = require("matplotlib.pyplot", "eval", what="plots")
    if not summaries:
        raise BehaviorMemoryError("no answered rows to plot")

    series: dict[str, list[ConfigSummary]] = defaultdict(list)
    for s in summaries:
        label = s.condition if s.retrieval == "-" else f"{s.condition} ({s.retrieval})"
        series[f"{s.dataset}: {label}" if len({x.dataset for x in summaries}) > 1 else label].append(s)

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for label, points in series.items():
        points.sort(key=lambda s: s.budget)
        xs = [p.output_tokens for p in points]
        ys = [p.accuracy for p in points]
        errs = [[p.accuracy - p.interval[0] for p in points], [p.interval[1] - p.accuracy for p in points]]
        left.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=label)
        for p in points:
            left.annotate(str(p.budget), (p.output_tokens, p.accuracy), textcoords="offset points", xytext=(4, 4))
    left.set_xlabel("mean output tokens")
    left.set_ylabel("accuracy (95% Wilson interval)")
    left.set_ylim(-0.02, 1.02)
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    left.set_title("accuracy vs tokens (labels: budget)")

    budgets = sorted({s.budget for s in summaries})
    width = 0.8 / max(len(series), 1)
    for i, (label, points) in enumerate(series.items()):
        by_budget = {p.budget: p.output_tokens for p in points}
        xs_bar = [b + 0.0 for b in range(len(budgets))]
        right.bar([x + i * width for x in xs_bar], [by_budget.get(b, 0.0) for b in budgets], width=width, label=label)
    right.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(budgets))])
    right.set_xticklabels([str(b) for b in budgets])
    right.set_xlabel("token budget (max_tokens)")
    right.set_ylabel("mean output tokens")
    right.legend(fontsize=8)
    right.set_title("output tokens per budget")

    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
