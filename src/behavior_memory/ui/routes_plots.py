"""Plots: the handbook's growth, citations per behavior, and ``bmem eval`` results (``bmem eval plot``'s figures)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from . import charts
from .web import namespace_param, render, state

if TYPE_CHECKING:
    from markupsafe import Markup
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["eval_figures", "routes"]

_TOP_CITED = 20


def _growth(days: list[tuple[str, int, int]]) -> Markup | None:
    if not days:
        return None
    xs = [float(i) for i in range(len(days))]
    return charts.lines(
        "behaviors minted, and active, at the end of each day",
        [
            charts.Series("minted (total)", xs, [float(m) for _, m, _ in days]),
            charts.Series("active", xs, [float(a) for _, _, a in days]),
        ],
        x_labels=[d for d, _, _ in days],
    )


def eval_figures(path: Path) -> dict[str, Any]:
    """One results file's figures: accuracy (95% interval) against mean output tokens, and tokens per budget."""
    from ..eval.bci import load_rows
    from ..eval.results import summarize_rows

    summaries = summarize_rows(load_rows(path))
    series: dict[str, list[Any]] = defaultdict(list)
    for s in summaries:
        label = s.condition if s.retrieval == "-" else f"{s.condition} ({s.retrieval})"
        series[label].append(s)
    scatter, token_bars = [], []
    for label, items in series.items():
        items.sort(key=lambda s: s.budget)
        scatter.append(
            charts.Series(
                label,
                [s.output_tokens for s in items],
                [s.accuracy for s in items],
                lows=[s.interval[0] for s in items],
                highs=[s.interval[1] for s in items],
                notes=[str(s.budget) for s in items],
            )
        )
        token_bars += [(f"{label}, budget {s.budget}", s.output_tokens) for s in items]
    return {
        "name": path.name,
        "n": sum(s.n for s in summaries),
        "accuracy": charts.points(
            f"{path.name}: accuracy vs mean output tokens (labels: budget)",
            scatter,
            x_title="mean output tokens",
            y_title="accuracy (95% Wilson interval)",
        )
        if scatter
        else None,
        "tokens": charts.bars(f"{path.name}: mean output tokens", token_bars) if token_bars else None,
        "summaries": summaries,
    }


def _plots(request: Request) -> Response:
    ui = state(request)
    namespace = namespace_param(request)
    cited = ui.browser.most_cited(namespace, _TOP_CITED)
    results, problems = [], []
    for path in ui.results:
        try:
            results.append(eval_figures(path))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problems.append(f"{path.name}: {exc.__class__.__name__}: {exc}")
    return render(
        request,
        "plots.html",
        namespace=namespace,
        growth=_growth(ui.browser.minted_per_day(namespace)),
        cited=charts.bars("citations per behavior (most cited)", [(n, float(c)) for n, c, _ in cited])
        if cited
        else None,
        results=results,
        problems=problems,
    )


async def plots(request: Request) -> Response:
    return await run_in_threadpool(_plots, request)


routes = [Route("/plots", plots, name="plots")]
