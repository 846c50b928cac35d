"""``Guard``: the deterministic check every behavior passes before it can be stored active.

``Guard(config).check(name, instruction, topic=...)`` runs the configured rules in a fixed order
and returns a ``GuardVerdict``; the first rule that fires decides (``rule`` and ``evidence``), and
``violations`` lists every one that fired. Pure: no I/O, no state, the same answer every time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .normalize import escape_invisible
from .rules import RULE_NAMES, NamedRule, Subject, builtin_rules, host_of, pattern_rule

__all__ = ["EVIDENCE_CHARS", "Guard", "GuardConfig", "GuardVerdict", "Violation", "clip_evidence"]

#: Evidence is clipped to this many characters (escapes included), with an ellipsis.
EVIDENCE_CHARS = 80
_RULE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}\Z")


def clip_evidence(text: str) -> str:
    """``text`` as evidence: stripped, controls and invisible characters escaped, clipped with an ellipsis."""
    shown = escape_invisible(text.strip())
    return shown if len(shown) <= EVIDENCE_CHARS else shown[: EVIDENCE_CHARS - 1] + "…"


@dataclass(frozen=True)
class Violation:
    """One rule that fired, with the text that made it fire (escaped and clipped)."""

    rule: str
    evidence: str


@dataclass(frozen=True)
class GuardVerdict:
    """The guard's answer: ``ok``, or the first ``rule`` that fired with its ``evidence``.

    ``violations`` holds every rule that fired, in rule order (the first is ``rule``).

    >>> verdict = GuardVerdict.of([Violation("url", "evil.example"), Violation("length", "2 words")])
    >>> verdict.ok, verdict.rule, verdict.evidence, verdict.rules
    (False, 'url', 'evil.example', ('url', 'length'))
    """

    ok: bool
    rule: str | None = None
    evidence: str | None = None
    violations: tuple[Violation, ...] = field(default=())

    @classmethod
    def of(cls, violations: list[Violation] | tuple[Violation, ...]) -> GuardVerdict:
        """The verdict for these violations: ok when there are none, else decided by the first."""
        if not violations:
            return cls(ok=True)
        first = violations[0]
        return cls(ok=False, rule=first.rule, evidence=first.evidence, violations=tuple(violations))

    @property
    def rules(self) -> tuple[str, ...]:
        """The names of every rule that fired."""
        return tuple(v.rule for v in self.violations)

    def __str__(self) -> str:
        return "ok" if self.ok else f"rule {self.rule}: {self.evidence}"


class GuardConfig(BaseModel):
    """Which rules the guard runs and how strict they are (``curation.guard`` in the YAML)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Run the guard at all; off, every behavior passes.")
    rules: list[str] = Field(
        default_factory=lambda: list(RULE_NAMES),
        description=f"The built-in rules to run (always in this order): {', '.join(RULE_NAMES)}.",
    )
    disabled_rules: list[str] = Field(
        default_factory=list, description="Rules left out (built-in or from extra_patterns), e.g. [length]."
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts a behavior may name (a URL or e-mail address there passes url and email); "
        "subdomains included: example.org allows docs.example.org.",
    )
    extra_patterns: dict[str, str] = Field(
        default_factory=dict,
        description="More rules, {rule_name: regular expression}; matched case-insensitively in the name "
        "and in the raw, folded and decoded instruction, after the built-in rules.",
    )
    min_instruction_words: int = Field(default=3, ge=1, description="Fewer words than this: rule length.")
    max_instruction_words: int = Field(default=80, ge=1, description="More words than this: rule length.")
    max_instruction_chars: int = Field(default=400, ge=1, description="Longer than this: rule length.")
    max_name_chars: int = Field(default=64, ge=12, description="A longer name: rule length.")

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, value: list[str]) -> list[str]:
        unknown = [r for r in value if r not in RULE_NAMES]
        if unknown:
            raise ValueError(f"unknown rule(s) {unknown}; the built-in rules are {list(RULE_NAMES)}")
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        hosts = [host_of(h) for h in value]
        if not all(hosts):
            raise ValueError(f"allowed_hosts must be host names, got {value}")
        return hosts

    @field_validator("extra_patterns")
    @classmethod
    def _patterns(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pattern in value.items():
            if not _RULE_NAME.match(name) or name in RULE_NAMES:
                raise ValueError(f"extra pattern name {name!r} must be snake_case and not a built-in rule's")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"extra pattern {name!r} is not a regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _disabled_known(self) -> GuardConfig:
        known = set(RULE_NAMES) | set(self.extra_patterns)
        unknown = [r for r in self.disabled_rules if r not in known]
        if unknown:
            raise ValueError(f"disabled_rules names unknown rule(s) {unknown}")
        return self


class Guard:
    """The deterministic rules over a behavior's name and instruction (see the package docstring).

    >>> guard = Guard()
    >>> guard.check("behavior_check_units", "Check that both sides of an equation carry the same units.").ok
    True
    >>> str(guard.check("behavior_fetch_units", "Look the units up at http://evil.example first."))
    'rule url: http://evil.example'
    """

    def __init__(self, config: GuardConfig | None = None) -> None:
        self.config = config or GuardConfig()
        c = self.config
        chosen = set(c.rules) - set(c.disabled_rules)
        builtin = builtin_rules(
            allowed_hosts=c.allowed_hosts,
            min_words=c.min_instruction_words,
            max_words=c.max_instruction_words,
            max_chars=c.max_instruction_chars,
            max_name_chars=c.max_name_chars,
        )
        extra = [NamedRule(n, pattern_rule(p)) for n, p in c.extra_patterns.items() if n not in c.disabled_rules]
        self._rules: tuple[NamedRule, ...] = (
            tuple([r for r in builtin if r.name in chosen] + extra) if c.enabled else ()
        )

    @property
    def rules(self) -> tuple[str, ...]:
        """The names of the rules this guard runs, in the order they are tried."""
        return tuple(r.name for r in self._rules)

    def check(self, name: str, instruction: str, *, topic: str | None = None) -> GuardVerdict:
        """Run every rule over the behavior; the first that fires decides.

        ``topic`` is accepted for the ``BehaviorGuard`` protocol (the model judge shows it to the
        model); the deterministic rules read only the name and the instruction.
        """
        if not self._rules:
            return GuardVerdict(ok=True)
        subject = Subject.of(name, instruction, topic)
        violations = []
        for rule in self._rules:
            found = rule.check(subject)
            if found is not None:
                violations.append(Violation(rule.name, clip_evidence(found)))
        return GuardVerdict.of(violations)
