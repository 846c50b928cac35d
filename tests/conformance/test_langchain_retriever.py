"""LangChain's published standard tests (``langchain-tests``) for ``BehaviorRetriever``."""

from __future__ import annotations

import pytest
from langchain_tests.integration_tests import RetrieversIntegrationTests

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig
from behavior_memory.adapters.langchain import BehaviorRetriever

BEHAVIORS = {
    "behavior_inclusion_exclusion": "Count a union of sets by adding their sizes and subtracting overlaps.",
    "behavior_count_complement": "Count what you want by counting the sets you do not want and subtracting.",
    "behavior_count_multiples": "Count multiples of n below N as the floor of (N - 1) / n.",
    "behavior_sets_venn_diagram": "Draw a Venn diagram of the sets to see each overlap before counting.",
    "behavior_angle_sum": "The interior angles of a triangle sum to 180 degrees.",
}


class TestBehaviorRetriever(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _memory(self, tmp_path):
        cfg = BehaviorMemoryConfig.model_validate(
            {
                "store": {"path": str(tmp_path / "h.db")},
                "embeddings": {"provider": "hashing"},
                "reflection": {"mode": "off"},
            }
        )
        with BehaviorMemory(cfg) as memory:
            for name, instruction in BEHAVIORS.items():
                memory.handbook.add(name, instruction, topic="counting")
            self.memory = memory
            yield

    @property
    def retriever_constructor(self) -> type[BehaviorRetriever]:
        return BehaviorRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"memory": self.memory, "k": 4}

    @property
    def retriever_query_example(self) -> str:
        return "count the sets in a union and subtract the overlaps"


def test_documents_carry_name_status_and_score(tmp_path):
    cfg = BehaviorMemoryConfig.model_validate(
        {"store": {"path": str(tmp_path / "h.db")}, "embeddings": {"provider": "hashing"}}
    )
    with BehaviorMemory(cfg) as memory:
        memory.handbook.add("behavior_inclusion_exclusion", BEHAVIORS["behavior_inclusion_exclusion"])
        [doc] = BehaviorRetriever(memory=memory).invoke("count a union of sets, subtract overlaps", k=1)
    assert doc.page_content.startswith("behavior_inclusion_exclusion: Count a union")
    assert doc.metadata["name"] == "behavior_inclusion_exclusion" and doc.metadata["status"] == "active"
    assert doc.metadata["score"] > 0 and doc.id
