"""``bmem behaviors utility``: what showing each behavior does to success and tokens, as measured.

The measure comes from the exposure experiment (``curation.lifecycle.withhold_epsilon``): tasks
that chose a behavior but had it withheld are compared with tasks that were shown it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from .context import CliContext, pass_ctx
from .render import cell, safe

if TYPE_CHECKING:
    from ..lifecycle import Difference, UtilityEstimate

__all__ = ["utility"]


def _effect(effect: Difference | None) -> dict[str, float] | None:
    if effect is None:
        return None
    return {"estimate": effect.estimate, "low": effect.low, "high": effect.high}


def utility_record(estimate: UtilityEstimate) -> dict[str, Any]:
    """One behavior's estimate as a JSON object (effects are ``shown - withheld``, 95% intervals)."""
    return {
        "name": estimate.name,
        "n_shown": estimate.n_shown,
        "n_withheld": estimate.n_withheld,
        "success_effect": _effect(estimate.success),
        "token_effect": _effect(estimate.tokens),
        "enough_data": estimate.enough_data,
        "verdict": estimate.verdict,
    }


@click.command("utility")
@click.option("--min-samples", type=click.IntRange(min=1), help="Tasks per arm before a verdict (default: config).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per behavior.")
@pass_ctx
def utility(obj: CliContext, min_samples: int | None, as_json: bool) -> None:
    """Measured effect of each behavior: success (points) and output tokens, shown vs withheld, 95% intervals."""
    from ..lifecycle import UTILITY_TABLE_COLUMNS, format_utility_table
    from ..reflection.curation import CurationPass

    memory = obj.memory()
    curation = CurationPass(memory.store, memory.embedder, memory.config.curation)
    estimates, read = curation.utility(memory.namespace, min_samples=min_samples)
    if as_json:
        for estimate in estimates.values():
            click.echo(json.dumps(utility_record(estimate)))
        return
    if not estimates:
        epsilon = memory.config.curation.lifecycle.withhold_epsilon
        hint = "" if epsilon else ": set curation.lifecycle.withhold_epsilon (e.g. 0.1) and run tasks"
        where = safe(memory.namespace)
        obj.console.print(f"no measured behaviors in '{where}' ({read} traces of the experiment){hint}")
        return
    table = Table(title=cell(f"Measured utility in '{memory.namespace}' ({read} traces of the experiment)"))
    for name in UTILITY_TABLE_COLUMNS:
        table.add_column(name, overflow="fold", justify="right" if name.startswith("n ") else "left")
    for row in format_utility_table(estimates):
        table.add_row(*map(cell, row))
    obj.console.print(table)
    obj.err.print("[dim]effects are shown - withheld: success in percentage points, tokens per task[/dim]")
