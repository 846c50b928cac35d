"""Behaviors as LlamaIndex nodes: a ``BaseRetriever`` and a ``BaseNodePostprocessor``.

::

    retriever = LlamaIndexBehaviorRetriever(memory, k=8)
    nodes = BehaviorNodePostprocessor(floor=0.2, token_budget=300).postprocess_nodes(
        retriever.retrieve("How many primes are below 30?")
    )

Each node's text is the paper's ``name: instruction`` line; its metadata has the same keys as the
LangChain ``BehaviorRetriever``'s documents (``name``, ``instruction``, ``status``, ``score``,
``retriever``, ``namespace``, ``topic``, ``tags``, ``pinned``, the counters and ``version``); only
``name`` and ``topic`` reach the embedding text and only ``name`` the LLM text. The postprocessor
also works on nodes from anywhere else (a ``VectorMemoryBlock``, a query engine) that carry
``status``.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from pydantic import Field

from ...injection.tokens import count_tokens
from ...retrieval.base import ScoredBehavior
from ...types import INJECTABLE_STATUSES

__all__ = ["BehaviorNodePostprocessor", "LlamaIndexBehaviorRetriever", "behavior_node"]


def behavior_node(hit: ScoredBehavior) -> NodeWithScore:
    """One retrieved behavior as a scored ``TextNode`` (id: the behavior's id)."""
    b = hit.behavior
    metadata = hit.metadata()
    node = TextNode(
        id_=b.id,
        text=b.line,
        metadata=metadata,
        excluded_embed_metadata_keys=[key for key in metadata if key not in ("name", "topic")],
        excluded_llm_metadata_keys=[key for key in metadata if key != "name"],
    )
    return NodeWithScore(node=node, score=hit.score)


class LlamaIndexBehaviorRetriever(BaseRetriever):
    """Retrieve a ``BehaviorMemory``'s behaviors as ``TextNode``s, best first (injectable ones only)."""

    def __init__(
        self,
        memory: Any,
        *,
        k: int | None = None,
        namespace: str | None = None,
        topic: str | None = None,
        **kwargs: Any,
    ) -> None:
        self._memory = memory
        self._k = k
        self._namespace = namespace
        self._topic = topic
        super().__init__(**kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self._memory.retrieve(query_bundle.query_str, k=self._k, namespace=self._namespace, topic=self._topic)
        return [behavior_node(hit) for hit in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = await self._memory.aretrieve(
            query_bundle.query_str, k=self._k, namespace=self._namespace, topic=self._topic
        )
        return [behavior_node(hit) for hit in hits]


class BehaviorNodePostprocessor(BaseNodePostprocessor):
    """Keep what may reach a prompt: allowed status, score at or above the floor, within the budget.

    Nodes keep their order; one that would overflow ``token_budget`` is skipped whole (never cut),
    and a later, shorter one may still fit. Nodes without a ``status`` are kept; nodes without a
    score pass the floor.
    """

    floor: float | None = Field(default=None, description="Minimum score; None keeps every score.")
    token_budget: int | None = Field(default=None, ge=0, description="Most tokens the kept texts may take.")
    statuses: tuple[str, ...] = Field(
        default=tuple(str(s) for s in INJECTABLE_STATUSES),
        description="Statuses that may be injected (quarantined, stale and archived ones never are).",
    )

    @classmethod
    def class_name(cls) -> str:
        return "BehaviorNodePostprocessor"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        kept: list[NodeWithScore] = []
        used = 0
        for item in nodes:
            status = item.node.metadata.get("status")
            if status is not None and str(status) not in self.statuses:
                continue
            if self.floor is not None and item.score is not None and item.score < self.floor:
                continue
            if self.token_budget is not None:
                cost = count_tokens(item.node.get_content() + "\n")
                if used + cost > self.token_budget:
                    continue
                used += cost
            kept.append(item)
        return kept
