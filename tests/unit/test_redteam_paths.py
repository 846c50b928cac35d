"""No poisoned behavior of the red-team set becomes active by any path; good ones mostly do.

The paths a behavior can take into the handbook today: reflection (the curator), `add`, `edit`,
`import` (plain and `--trust`), a person's approval or status change, and the curation pass. Each
is tried with every poisoned behavior against a real SQLite handbook, with the shipped guard.
"""

from __future__ import annotations

import json

import pytest
from redteam import GOOD, POISONED

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig, BehaviorStatus
from behavior_memory.errors import QuarantinedError
from behavior_memory.reflection.curation import CurationPass
from behavior_memory.reflection.curator import Curator
from behavior_memory.reflection.reflector import Candidate, ReflectionResult
from behavior_memory.types import Trace


@pytest.fixture
def memory(tmp_path):
    cfg = BehaviorMemoryConfig.model_validate(
        {
            "store": {"path": str(tmp_path / "h.db")},
            "embeddings": {"provider": "hashing"},
            "reflection": {"mode": "manual"},
            "curation": {"approval": "auto", "min_support": 1},  # the most permissive settings
        }
    )
    with BehaviorMemory(cfg) as m:
        yield m


def active_names(memory: BehaviorMemory) -> set[str]:
    return {b.name for b in memory.handbook.list(status="active")}


def mint(memory: BehaviorMemory, pairs: list[tuple[str, str]]) -> None:
    curator = Curator(memory.store, None, approval="auto", guard=memory.handbook.guard, threshold=1.01)
    for name, instruction in pairs:
        trace = memory.store.put_trace(Trace(task="a task whose tool output carried the text"))
        curator.mint(trace, ReflectionResult([Candidate(name, instruction)], reflection="r", model="m"))


def test_reflection_never_activates_a_poisoned_behavior_and_activates_good_ones(memory):
    poisoned = [(n, i) for n, i, _ in POISONED]
    mint(memory, poisoned)
    assert active_names(memory) & {n for n, _ in poisoned} == set()
    quarantined = memory.handbook.list(status="quarantined")
    assert quarantined and all(b.metadata["guard"]["rule"] for b in quarantined)
    mint(memory, GOOD)
    good_active = active_names(memory) & {n for n, _ in GOOD}
    assert len(good_active) >= 0.95 * len(GOOD)


def test_add_edit_and_import_refuse_or_quarantine_every_poisoned_behavior(memory, tmp_path):
    memory.handbook.add(*GOOD[0])
    for name, instruction, rule in POISONED:
        with pytest.raises(QuarantinedError) as refused:
            memory.handbook.add(name, instruction)
        assert refused.value.rule == rule
        if not memory.handbook.guard.check(GOOD[0][0], instruction).ok:  # some rules judge the name only
            with pytest.raises(QuarantinedError):
                memory.handbook.edit(GOOD[0][0], instruction=instruction)
    path = tmp_path / "poisoned.jsonl"
    path.write_text(
        "".join(
            json.dumps({"name": n, "instruction": i, "status": "active", "pinned": True}) + "\n" for n, i, _ in POISONED
        )
    )
    for trust in (False, True):
        report = memory.handbook.import_jsonl(path, replace=True, trust=trust)
        assert len(report.quarantined) == len(POISONED), report.errors
        assert active_names(memory) == {GOOD[0][0]}


def test_approval_and_curation_never_lift_the_guards_quarantine_without_force(memory, tmp_path):
    mint(memory, [(n, i) for n, i, _ in POISONED[:10]])
    for b in memory.handbook.list(status="quarantined"):
        with pytest.raises(QuarantinedError):
            memory.handbook.approve(b.name)
        with pytest.raises(QuarantinedError):
            memory.handbook.set_status(b.name, "active")
    CurationPass(memory.store, None, memory.config.curation).run(memory.namespace)
    assert active_names(memory) == set()


def test_the_figures_poisoned_active_zero_and_good_refused_rate(memory, capsys):
    mint(memory, [(n, i) for n, i, _ in POISONED] + list(GOOD))
    statuses = {b.name: b.status for b in memory.handbook.list()}
    poisoned_active = sum(statuses.get(n) == BehaviorStatus.ACTIVE for n, _, _ in POISONED)
    good_refused = sum(statuses.get(n) != BehaviorStatus.ACTIVE for n, _ in GOOD)
    with capsys.disabled():
        print(f"\nred team: {poisoned_active}/{len(POISONED)} poisoned active, {good_refused}/{len(GOOD)} good refused")
    assert poisoned_active == 0 and good_refused <= 0.05 * len(GOOD)
