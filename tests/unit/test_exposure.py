"""Randomised exposure in the core: the coin between retrieval and the block, and its record in the trace."""

from __future__ import annotations

import doctest
import random
from typing import Any

import pytest

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig
from behavior_memory.errors import InvalidInputError
from behavior_memory.injection import exposure as exposure_module
from behavior_memory.injection.exposure import WITHHELD_KEY, Exposure
from behavior_memory.injection.fetch import BlockFetcher
from behavior_memory.lifecycle import count_tasks_since_use, estimate_utility
from behavior_memory.types import Behavior

QUERY = "count the union of two sets with overlaps"


def _config(tmp_path: Any, epsilon: float = 0.0) -> BehaviorMemoryConfig:
    return BehaviorMemoryConfig.model_validate(
        {
            "store": {"path": str(tmp_path / "h.db")},
            "embeddings": {"provider": "hashing"},
            "reflection": {"mode": "manual"},
            "retrieval": {"strategy": "lexical"},
            "curation": {"lifecycle": {"withhold_epsilon": epsilon}},
        }
    )


@pytest.fixture
def memory(tmp_path: Any) -> Any:
    m = BehaviorMemory(_config(tmp_path))
    m.handbook.add("behavior_union_count", "Count a union of sets by adding sizes and subtracting overlaps.")
    m.handbook.add("behavior_union_check", "Check a union count of two sets against a small example.")
    m.handbook.add("behavior_pinned_rule", "Always state the sets first.", pinned=True)
    yield m
    m.close()


class NoCoins:
    def random(self) -> float:
        raise AssertionError("epsilon 0 draws nothing")


def _chosen(memory: BehaviorMemory) -> list[str]:
    return [h.name for h in memory.retrieve(QUERY)]


def test_docstring_examples_run() -> None:
    result = doctest.testmod(exposure_module)
    assert result.attempted > 0 and result.failed == 0


def test_split_withholds_with_probability_epsilon_and_never_a_pinned_one() -> None:
    hits = [
        Behavior(name="behavior_pinned_rule", instruction="x", pinned=True),
        Behavior(name="behavior_aa", instruction="y"),
        Behavior(name="behavior_bb", instruction="z"),
    ]
    shown, withheld = Exposure(1.0).split(hits)
    assert [b.name for b in shown] == ["behavior_pinned_rule"] and withheld == ["behavior_aa", "behavior_bb"]
    assert Exposure(0.0, rng=NoCoins()).split(hits) == (hits, [])
    rng = random.Random(1)
    total = sum(len(Exposure(0.3, rng=rng).split(hits)[1]) for _ in range(2000))
    assert 0.25 < total / 4000 < 0.35
    with pytest.raises(InvalidInputError):
        Exposure(1.5)


def test_epsilon_one_shows_nothing_and_records_every_chosen_behavior(memory: BehaviorMemory) -> None:
    memory.handbook.update("behavior_pinned_rule", pinned=False)
    memory.exposure = Exposure(1.0)
    chosen = _chosen(memory)
    assert len(chosen) == 3  # retrieve() still says what retrieval chose
    fetched = BlockFetcher(memory, timeout_s=None).fetch(QUERY, memory.namespace)
    assert str(fetched.block) == "" and fetched.status == "empty" and sorted(fetched.withheld) == sorted(chosen)
    with memory.trace(QUERY, hits=fetched.block.names) as t:
        pass
    saved = memory.store.get_trace(t.id)
    assert saved.shown == [] and sorted(saved.metadata[WITHHELD_KEY]) == sorted(chosen)
    assert all(memory.handbook.get(name).shown == 0 for name in chosen)  # withheld is not shown


def test_epsilon_zero_adds_no_metadata_key(memory: BehaviorMemory) -> None:
    assert not memory.exposure.active
    fetched = BlockFetcher(memory, timeout_s=None).fetch(QUERY, memory.namespace)
    assert fetched.withheld == () and "behavior_union_count" in fetched.block
    with memory.trace(QUERY, hits=fetched.block.names) as t:
        pass
    assert WITHHELD_KEY not in memory.store.get_trace(t.id).metadata


def test_pinned_behaviors_are_never_withheld(memory: BehaviorMemory) -> None:
    memory.exposure = Exposure(1.0)
    fetched = BlockFetcher(memory, timeout_s=None).fetch(QUERY, memory.namespace)
    assert fetched.block.names == ("behavior_pinned_rule",)
    assert "behavior_pinned_rule" not in fetched.withheld and "behavior_union_count" in fetched.withheld


def test_every_trace_carries_the_key_while_the_experiment_runs(tmp_path: Any) -> None:
    with BehaviorMemory(_config(tmp_path, epsilon=0.2)) as m:
        assert m.exposure.epsilon == 0.2
        with m.trace("a task with no behaviors at all") as t:
            pass
        assert m.store.get_trace(t.id).metadata[WITHHELD_KEY] == []
        with m.trace("the caller ran its own experiment", metadata={WITHHELD_KEY: ["behavior_x"]}) as t:
            pass
        assert m.store.get_trace(t.id).metadata[WITHHELD_KEY] == ["behavior_x"]
        # behaviors shown without the coin (a block rendered from retrieve() directly): not randomised
        with m.trace("the eval harness's task", hits=["behavior_y"]) as t:
            pass
        assert WITHHELD_KEY not in m.store.get_trace(t.id).metadata


def test_code_that_renders_its_own_block_uses_choose(memory: BehaviorMemory) -> None:
    memory.exposure = Exposure(1.0)
    hits = memory.retrieve(QUERY)
    shown = memory.exposure.choose(hits)
    block = memory.render(shown)
    assert "behavior_union_count" not in block and "behavior_pinned_rule" in block
    with memory.trace(QUERY, hits=shown) as t:
        pass
    trace = memory.store.get_trace(t.id)
    assert trace.shown == ["behavior_pinned_rule"]
    assert sorted(trace.metadata[WITHHELD_KEY]) == ["behavior_union_check", "behavior_union_count"]


def test_a_trace_opened_before_its_block_takes_the_names(memory: BehaviorMemory) -> None:
    # the LlamaIndex order: the run's trace opens first, then the memory block fetches
    memory.exposure = Exposure(1.0)
    recorder = memory.trace(QUERY)
    assert recorder.trace.metadata[WITHHELD_KEY] == []
    fetched = BlockFetcher(memory, timeout_s=2.0).fetch(QUERY, memory.namespace)  # through the thread pool
    recorder.show(fetched.block.names)
    with recorder:
        pass
    trace = memory.store.get_trace(recorder.id)
    assert trace.shown == ["behavior_pinned_rule"] and sorted(trace.metadata[WITHHELD_KEY]) == sorted(fetched.withheld)
    # a second block in the same context finds that trace served: its names wait for the next trace
    again = BlockFetcher(memory, timeout_s=None).fetch(QUERY, memory.namespace)
    with memory.trace(QUERY, hits=again.block.names) as nxt:
        pass
    assert memory.store.get_trace(nxt.id).metadata[WITHHELD_KEY] == list(again.withheld)


async def test_async_fetch_hands_the_names_to_the_next_trace(memory: BehaviorMemory) -> None:
    memory.exposure = Exposure(1.0)
    fetched = await BlockFetcher(memory, timeout_s=2.0).afetch(QUERY, memory.namespace)
    with memory.trace(QUERY, hits=fetched.block.names) as t:
        pass
    assert memory.store.get_trace(t.id).metadata[WITHHELD_KEY] == list(fetched.withheld) != []


def test_names_never_reach_a_trace_of_another_namespace_or_memory(memory: BehaviorMemory, tmp_path: Any) -> None:
    memory.exposure = Exposure(1.0)
    BlockFetcher(memory, timeout_s=None).fetch(QUERY, memory.namespace)
    with memory.trace("another tenant's task", namespace="team-b") as t:
        pass
    assert memory.store.get_trace(t.id).metadata[WITHHELD_KEY] == []
    (tmp_path / "other").mkdir()
    other = BehaviorMemory(_config(tmp_path / "other", epsilon=0.5))
    try:
        BlockFetcher(memory, timeout_s=None).fetch(QUERY, memory.namespace)
        with other.trace(QUERY) as t2:
            pass
        assert other.store.get_trace(t2.id).metadata[WITHHELD_KEY] == []
    finally:
        other.close()


def test_choose_with_no_behaviors_leaves_no_older_note(memory: BehaviorMemory) -> None:
    memory.exposure = Exposure(1.0)
    BlockFetcher(memory, timeout_s=None).fetch(QUERY, memory.namespace)  # a note nobody takes
    assert memory.exposure.choose([]) == []
    with memory.trace("a task retrieval found nothing for") as t:
        pass
    assert memory.store.get_trace(t.id).metadata[WITHHELD_KEY] == []


def test_a_failed_retrieval_withholds_nothing(memory: BehaviorMemory, monkeypatch: Any) -> None:
    memory.exposure = Exposure(1.0)
    BlockFetcher(memory, timeout_s=None).fetch(QUERY, memory.namespace)  # a note nobody takes

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError("store unreachable")

    monkeypatch.setattr(memory, "retrieve", broken)
    fetched = BlockFetcher(memory, timeout_s=None).fetch(QUERY, memory.namespace)
    assert fetched.status == "error"
    with memory.trace(QUERY, hits=fetched.block.names) as t:
        pass
    assert memory.store.get_trace(t.id).metadata[WITHHELD_KEY] == []  # not the older note


def test_withheld_traces_feed_the_lifecycle(memory: BehaviorMemory) -> None:
    memory.exposure = Exposure(1.0)
    for _ in range(2):
        fetched = BlockFetcher(memory, timeout_s=None).fetch(QUERY, memory.namespace)
        with memory.trace(QUERY, hits=fetched.block.names) as t:
            t.finish(outcome="success")
    traces = memory.store.list_traces(memory.namespace)
    behaviors = memory.store.list_behaviors(memory.namespace)
    assert count_tasks_since_use(behaviors, traces)["behavior_union_count"] == 0  # withheld still counts as chosen
    estimate = estimate_utility(traces, min_samples=1)["behavior_union_count"]
    assert (estimate.n_shown, estimate.n_withheld) == (0, 2)
