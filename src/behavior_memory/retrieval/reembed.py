"""Re-embedding the handbook when the embedder changed: in batches, in the background, resumable by rerun.

The store's meta records which embedder made the vectors (``embedder``: ``"<name>:<dim>"``). When
the configured embedder differs, ``Reembedding`` embeds every behavior again, a batch at a time
(one transaction each), and records the new embedder only at the end. Meanwhile ``reembedding``
names the target, and ``vectors_match`` tells retrievers that the stored vectors are not (all) the
configured embedder's: vector search steps aside and retrieval stays lexical until the last batch
is written. ``Handbook.ensure_embedder`` starts one in a background thread; ``bmem behaviors
reembed`` runs one in the foreground with a progress bar. A run that is stopped leaves the old
embedder recorded, so the next run starts over (re-embedding is idempotent).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..embeddings.base import Embedder
from ..store.base import ChangeFeed, HandbookStore

__all__ = ["EMBEDDER_KEY", "REEMBEDDING_KEY", "Reembedding", "embedder_id", "needs_reembedding", "vectors_match"]

log = logging.getLogger(__name__)

#: meta key: the embedder that made the stored vectors
EMBEDDER_KEY = "embedder"
#: meta key: the embedder a re-embedding under way is writing vectors for ("" when none)
REEMBEDDING_KEY = "embedder.reembedding"


def embedder_id(embedder: Embedder) -> str:
    """How the meta names an embedder: vectors of different ids never mix."""
    return f"{embedder.name}:{embedder.dim}"


def vectors_match(store: HandbookStore, embedder: Embedder) -> bool:
    """Whether the stored vectors can be searched with ``embedder``'s queries.

    True when the recorded embedder is this one or none is recorded (vectors put by hand), and no
    re-embedding is under way; False while one is, or when another embedder made them.
    """
    current = embedder_id(embedder)
    if store.get_meta(REEMBEDDING_KEY):
        return False
    recorded = store.get_meta(EMBEDDER_KEY)
    return recorded is None or recorded == current


def needs_reembedding(store: HandbookStore, embedder: Embedder | None) -> bool:
    """Whether the stored vectors were made by another embedder (or by none that was recorded).

    An empty handbook never needs it: the embedder is simply recorded.
    """
    if embedder is None:
        return False
    current = embedder_id(embedder)
    recorded = store.get_meta(EMBEDDER_KEY)
    if recorded == current and not store.get_meta(REEMBEDDING_KEY):
        return False
    if recorded is None and store.count_behaviors() == 0:
        store.set_meta(EMBEDDER_KEY, current)
        return False
    return True


def _ids_and_texts(store: HandbookStore, namespace: str) -> list[tuple[str, str]]:
    """Every behavior of the namespace as ``(id, Behavior.text)``, without a pydantic object per row."""
    if isinstance(store, ChangeFeed):
        rows = store.retrieval_rows(namespace)
        from .snapshot import behavior_text

        return [
            (i, behavior_text(n, text, t))
            for i, n, text, t in zip(rows.ids, rows.names, rows.instructions, rows.topics, strict=True)
        ]
    return [(b.id, b.text) for b in store.list_behaviors(namespace)]


class Reembedding:
    """One pass that embeds every behavior of every namespace with ``embedder``, ``batch`` at a time.

    ``progress(done, total)`` is called after each batch. ``run`` does it in the caller's thread;
    ``start`` in a background thread (``join`` waits for it; the process waits for it before exiting);
    ``done``, ``total`` and ``error`` tell how it went.
    """

    def __init__(
        self,
        store: HandbookStore,
        embedder: Embedder,
        *,
        batch: int = 256,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.store, self.embedder, self.batch, self.progress = store, embedder, max(int(batch), 1), progress
        self.done = self.total = 0
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def run(self) -> int:
        """Re-embed everything now; returns how many behaviors were embedded."""
        import numpy as np

        target = embedder_id(self.embedder)
        previous = self.store.get_meta(EMBEDDER_KEY)
        log.info("embedder changed (%s -> %s): re-embedding the handbook in batches", previous, target)
        self.store.set_meta(REEMBEDDING_KEY, target)  # vector search steps aside from now on
        work = [(ns, _ids_and_texts(self.store, ns)) for ns in self.store.namespaces()]
        self.total = sum(len(items) for _, items in work)
        for namespace, items in work:
            for start in range(0, len(items), self.batch):
                part = items[start : start + self.batch]
                matrix = np.asarray(self.embedder.embed([text for _, text in part]), dtype=np.float32)
                self.store.set_vectors(namespace, {i: matrix[j] for j, (i, _) in enumerate(part)})
                self.done += len(part)
                if self.progress is not None:
                    self.progress(self.done, self.total)
        self.store.set_meta(EMBEDDER_KEY, target)
        self.store.set_meta(REEMBEDDING_KEY, "")
        log.info("re-embedded %d behaviors with %s", self.done, target)
        return self.done

    def start(self) -> Reembedding:
        """Run in a background thread (an error is logged and kept in ``error``; the next run retries)."""

        self.store.set_meta(REEMBEDDING_KEY, embedder_id(self.embedder))  # before this call returns

        def work() -> None:
            try:
                self.run()
            except BaseException as exc:
                self.error = exc
                log.exception("re-embedding the handbook failed; retrieval stays lexical until a run succeeds")

        # not a daemon: a process that ends meanwhile finishes the batches first (an embedding model's
        # native threads must not be cut off at exit) and records the new embedder
        self._thread = threading.Thread(target=work, name="bmem-reembed", daemon=False)
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> bool:
        """Wait for a background run; True when it has ended."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True
