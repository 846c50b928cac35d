"""``BehaviorRetriever``: the handbook as a LangChain ``BaseRetriever``.

Each behavior comes back as a ``Document`` whose text is the paper's ``name: instruction`` line,
with its name, status, score and counters in ``metadata``, ready for any RAG chain::

    retriever = BehaviorRetriever(memory=memory, k=4)
    docs = retriever.invoke("count the integers divisible by 3 or 5")
    docs[0].metadata["name"], docs[0].metadata["score"]
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import Field

from ...retrieval.base import ScoredBehavior

__all__ = ["BehaviorRetriever", "behavior_document"]


def behavior_document(hit: ScoredBehavior) -> Document:
    """One retrieved behavior as a ``Document`` (id, line as text, fields in metadata)."""
    b = hit.behavior
    return Document(
        id=b.id,
        page_content=b.line,
        metadata=hit.metadata(),
    )


class BehaviorRetriever(BaseRetriever):
    """Behaviors of ``memory``'s handbook for a query, best first (active ones only).

    ``k``, ``namespace`` and ``topic`` may also be given per call: ``retriever.invoke(query, k=3)``.
    """

    memory: Any = Field(description="The BehaviorMemory whose handbook is searched.")
    k: int = Field(default=4, ge=1, description="Behaviors returned per query.")
    namespace: str | None = Field(default=None, description="Namespace searched; default: the memory's.")
    topic: str | None = Field(default=None, description="Topic filter for the topic retriever.")

    def _args(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {
            "k": int(kwargs.get("k", self.k)),
            "namespace": kwargs.get("namespace", self.namespace),
            "topic": kwargs.get("topic", self.topic),
        }

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        return [behavior_document(hit) for hit in self.memory.retrieve(query, **self._args(kwargs))]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        hits = await self.memory.aretrieve(query, **self._args(kwargs))
        return [behavior_document(hit) for hit in hits]
