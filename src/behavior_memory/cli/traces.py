"""``bmem traces list|show``."""

from __future__ import annotations

import json

import click
from rich.text import Text

from ..types import ReflectionStatus
from .context import CliContext, pass_ctx
from .render import cell, plain, trace_table

__all__ = ["traces"]


@click.group()
def traces() -> None:
    """Inspect recorded traces."""


@traces.command("list")
@click.option("--status", type=click.Choice([s.value for s in ReflectionStatus]), help="Reflection status.")
@click.option("--all-namespaces", is_flag=True, help="Traces of every namespace.")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (steps left out).")
@pass_ctx
def list_(obj: CliContext, status: str | None, all_namespaces: bool, limit: int, as_json: bool) -> None:
    """List traces, newest first."""
    items = obj.memory().traces.list(all_namespaces=all_namespaces, status=status, limit=limit)
    if as_json:
        for t in items:
            click.echo(t.model_dump_json(exclude={"steps"}))
        return
    obj.console.print(trace_table(items))


@traces.command("show")
@click.argument("trace_id")
@click.option("--json", "as_json", is_flag=True, help="The whole trace as JSON.")
@pass_ctx
def show(obj: CliContext, trace_id: str, as_json: bool) -> None:
    """Show one trace: its steps, usage, behaviors shown and cited, and its reflection."""
    t = obj.memory().traces.get(trace_id)
    if as_json:
        click.echo(json.dumps(t.model_dump(mode="json"), indent=2))
        return
    c = obj.console

    def line(text: str) -> None:
        # Every value below is stored text (a model's, a tool's): shown literally, never as markup.
        c.print(plain(text), markup=False, emoji=False, highlight=False)

    c.print(Text.assemble((f"trace {t.id}", "bold"), f"  namespace {t.namespace}  topic ", cell(t.topic or "-")))
    line(f"task: {t.task}")
    line(f"answer: {t.answer!r}  outcome: {t.outcome}" + (f"  score: {t.score}" if t.score is not None else ""))
    if t.feedback:
        line(f"feedback: {t.feedback}")
    u = t.usage
    line(
        f"usage: prompt {u.prompt_tokens}, completion {u.completion_tokens}, "
        f"cached {u.cached_tokens if u.cached_tokens is not None else '-'}, "
        f"reasoning {u.reasoning_tokens if u.reasoning_tokens is not None else '-'}"
    )
    line(f"behaviors shown: {', '.join(t.shown) or '-'}")
    line(f"behaviors cited: {', '.join(t.cited) or '-'}")
    line(
        f"reflection: {t.reflection_status} (attempts {t.reflection_attempts})"
        + (f"  reason: {t.reflection_error}" if t.reflection_error else "")
    )
    if t.minted:
        line(f"minted: {', '.join(t.minted)}")
    reflection = t.metadata.get("reflection") or {}
    if reflection.get("text"):
        text = " ".join(str(reflection["text"]).split())
        line(
            f"reflection ({reflection.get('model')}, {reflection.get('completion_tokens')} output tokens): "
            f"{text[:400]}{'...' if len(text) > 400 else ''}"
        )
    for i, step in enumerate(t.steps, 1):
        if step.kind == "model":
            out = (step.output or "").strip().replace("\n", " ")
            line(
                f"  {i}. model {step.model or ''} -> {out[:200]!r}"
                + (f" [{step.usage.prompt_tokens}+{step.usage.completion_tokens} tokens]" if step.usage else "")
            )
        else:
            line(
                f"  {i}. tool {step.name}({json.dumps(step.args)[:120]}) -> {(step.result or step.error or '')[:200]!r}"
            )
