"""``Reflector``: the paper's curation pipeline, run on one saved trace.

1. solution: the trace itself (model outputs, tool calls, final answer), long ones cut in the middle;
2. reflection: the model judges correctness, names missing behaviors, proposes new ones;
3. extraction: the model returns the behaviors as JSON under a schema (vLLM enforces it).

The output is a list of candidate behaviors; ``Curator`` decides what enters the handbook.
Nothing here raises into an agent: the worker turns failures into a reason on the trace.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from functools import cache

from pydantic import BaseModel, ConfigDict, Field, create_model

from ..errors import InvalidBehaviorError
from ..injection.tokens import count_tokens
from ..llm.client import ChatResult, LLMClient
from ..prompts import load_prompt
from ..types import Behavior, Trace, normalize_behavior_name, validate_instruction

__all__ = ["Candidate", "ExtractedBehavior", "Extraction", "ReflectionResult", "Reflector", "render_solution"]

log = logging.getLogger(__name__)


class ExtractedBehavior(BaseModel):
    """One behavior as the extraction stage returns it; the schema constrains the model's output."""

    # additionalProperties: false in the schema, so constrained decoding cannot wander into extra keys.
    model_config = ConfigDict(extra="forbid")

    # Tight bounds: constrained decoding follows them, so a small model cannot ramble past its budget.
    # The name starts with a word (behavior_1_1 is no name). A string gets a pattern or length
    # bounds, never both: vLLM hands such a schema to its "guidance" backend instead of xgrammar,
    # and that choice then sticks for the whole engine, breaking later tool_choice="required" calls.
    name: str = Field(pattern=r"^behavior_[a-z]{3,20}(_[a-z0-9]{1,20}){0,4}$", description="behavior_snake_case")
    instruction: str = Field(min_length=8, max_length=200, description="one sentence: what to do and when")


class Extraction(BaseModel):
    """The extraction stage's whole answer."""

    model_config = ConfigDict(extra="forbid")

    behaviors: list[ExtractedBehavior] = Field(default_factory=list)


@cache
def extraction_schema(min_behaviors: int, max_behaviors: int) -> type[Extraction]:
    """``Extraction`` with the count bounds in its JSON Schema, so vLLM enforces them while decoding.

    A minimum of one keeps small models from answering every reflection with an empty list; the
    curator then merges or the operator quarantines what is not worth keeping.
    """
    return create_model(
        f"Extraction_{min_behaviors}_{max_behaviors}",
        __base__=Extraction,
        behaviors=(list[ExtractedBehavior], Field(min_length=min_behaviors, max_length=max_behaviors)),
    )


@dataclass
class Candidate:
    """A behavior proposed by reflection, not yet in the handbook."""

    name: str
    instruction: str


@dataclass
class ReflectionResult:
    """What one reflection produced; ``notes`` say what was dropped and why."""

    candidates: list[Candidate]
    reflection: str
    model: str
    notes: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0


_WORD = re.compile(r"[A-Za-z]{2,}")


def implausible(name: str, instruction: str) -> str | None:
    """Why a candidate is not worth storing (digits for a name, symbols for an instruction), or None."""
    if not re.search(r"[a-z]{3,}", name.removeprefix("behavior_")):
        return "the name has no word in it"
    words = _WORD.findall(instruction)
    letters = sum(ch.isalpha() or ch.isspace() for ch in instruction)
    if len(words) < 3 or letters < 0.7 * len(instruction):
        return "the instruction is not a sentence"
    return None


def _cut_middle(text: str, max_tokens: int) -> str:
    """Keep the start and the end of ``text`` within about ``max_tokens``; mark what was cut."""
    tokens = count_tokens(text)
    if tokens <= max_tokens:
        return text
    chars_per_token = max(len(text) / max(tokens, 1), 1.0)
    keep = int(max_tokens * chars_per_token)
    head, tail = keep // 3, keep - keep // 3
    omitted = tokens - max_tokens
    return f"{text[:head]}\n[... about {omitted} tokens omitted ...]\n{text[-tail:]}"


def render_solution(trace: Trace, max_tokens: int) -> str:
    """The trace as the 'solution' of the paper's reflection prompt.

    The task is shown separately; here come the model outputs (with reasoning), the tool calls and
    the final answer. Long traces lose their middle: the start and, above all, the end are kept.
    """
    lines: list[str] = []
    for step in trace.steps:
        if step.kind == "model":
            if step.reasoning:
                lines.append(f"[reasoning] {step.reasoning.strip()}")
            if step.output:
                lines.append(step.output.strip())
            if step.error:
                lines.append(f"[model error] {step.error}")
        else:
            outcome = step.result if step.error is None else f"error: {step.error}"
            lines.append(f"[tool {step.name}({step.args})] -> {outcome}")
    if trace.answer:
        lines.append(f"Final answer: {trace.answer}")
    return _cut_middle("\n".join(lines) or "(the agent produced no output)", max_tokens)


def _outcome_text(trace: Trace) -> str:
    text = str(trace.outcome)
    if trace.score is not None:
        text += f" (score {trace.score})"
    if trace.feedback:
        text += f"; feedback: {trace.feedback}"
    if trace.outcome == "unknown" and not trace.feedback:
        text += " (not known: judge the solution yourself)"
    return text


class Reflector:
    """Runs reflection and extraction for one trace with an ``LLMClient``."""

    def __init__(
        self,
        client: LLMClient,
        *,
        max_trace_tokens: int = 3000,
        max_behaviors: int = 5,
        min_behaviors: int = 1,
        reflection_prompt: str | None = None,
        extraction_prompt: str | None = None,
        reflection_max_tokens: int = 512,
        extraction_max_tokens: int = 400,
        extra_body: dict[str, object] | None = None,
    ) -> None:
        self.client = client
        self.model = client.config.model
        self.max_trace_tokens = max_trace_tokens
        self.max_behaviors = max_behaviors
        self.schema = extraction_schema(min(min_behaviors, max_behaviors), max_behaviors)
        self.system = load_prompt("reflection_system")
        self.reflection_template = load_prompt(
            "reflection", reflection_prompt, required=("task", "solution", "outcome")
        )
        self.extraction_template = load_prompt("extraction", extraction_prompt, required=("reflection",))
        self.extra_body = dict(extra_body or {})
        self.reflection_max_tokens = reflection_max_tokens
        self.extraction_max_tokens = extraction_max_tokens

    def _fill(self, template: str, **values: str) -> str:
        # str.format would trip over the JSON braces in the prompts; replace named slots only.
        for key, value in values.items():
            template = template.replace("{" + key + "}", value)
        return template

    def reflection_messages(self, trace: Trace) -> list[dict[str, str]]:
        task = _cut_middle(trace.task, max(self.max_trace_tokens // 3, 50))
        prompt = self._fill(
            self.reflection_template,
            task=task,
            solution=render_solution(trace, self.max_trace_tokens),
            outcome=_outcome_text(trace),
            max_behaviors=str(self.max_behaviors),
        )
        return [{"role": "system", "content": self.system}, {"role": "user", "content": prompt}]

    def extraction_messages(self, reflection: str) -> list[dict[str, str]]:
        prompt = self._fill(
            self.extraction_template, reflection=reflection.strip(), max_behaviors=str(self.max_behaviors)
        )
        return [{"role": "system", "content": self.system}, {"role": "user", "content": prompt}]

    def reflect(self, trace: Trace) -> ReflectionResult:
        """Run both stages; LLM errors propagate (the worker decides to retry or give up)."""
        first = self.client.chat(
            self.reflection_messages(trace), max_tokens=self.reflection_max_tokens, extra_body=self.extra_body
        )
        parsed, second = self.client.chat_json(
            self.extraction_messages(first.content),
            self.schema,
            name="behaviors",
            max_tokens=self.extraction_max_tokens,
            extra_body=self.extra_body,
        )
        return self._result(first, parsed, second)

    def _result(self, first: ChatResult, parsed: Extraction, second: ChatResult) -> ReflectionResult:
        notes: list[str] = []
        candidates: list[Candidate] = []
        seen: set[str] = set()
        for item in parsed.behaviors[: self.max_behaviors]:
            try:
                name = normalize_behavior_name(item.name)
                instruction = validate_instruction(item.instruction)
            except InvalidBehaviorError as exc:
                notes.append(f"dropped {item.name!r}: {exc}")
                continue
            reason = implausible(name, instruction)
            if reason:
                notes.append(f"dropped {name!r}: {reason}")
                continue
            if name in seen:
                continue
            seen.add(name)
            candidates.append(Candidate(name, instruction))
        if not candidates:
            notes.append("reflection proposed no valid behavior")
        usages = [u for u in (first.usage, second.usage) if u is not None]
        return ReflectionResult(
            candidates=candidates,
            reflection=first.content,
            model=self.model,
            notes=notes,
            prompt_tokens=sum(u.prompt_tokens for u in usages),
            completion_tokens=sum(u.completion_tokens for u in usages),
        )


def candidate_to_behavior(candidate: Candidate, trace: Trace, model: str, *, status: str) -> Behavior:
    """A minted behavior with its provenance: the trace's id, namespace and topic, and the model."""
    return Behavior(
        name=candidate.name,
        instruction=candidate.instruction,
        namespace=trace.namespace,
        topic=trace.topic,
        status=status,
        sources=[trace.id],
        model=model,
    )
