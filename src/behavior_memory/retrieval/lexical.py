"""``BM25Retriever``: Okapi BM25 over ``Behavior.text``, our own, in numpy.

Works with no embedder at all, and catches what embeddings blur: exact names of tools, functions,
error messages. Words come from ``split_words`` (lower-case, stop words dropped). The index is the
snapshot's "bm25" attachment, built on the first lexical query (not when the snapshot loads): for
each term the rows holding it and how often (a compressed sparse layout), plus the rows added since
in small per-term lists that are merged in when they grow. Document frequencies, lengths and the
average length follow every change, and the BM25 weights are computed per query from them, so
a write never rebuilds anything and scores equal a fresh build's.
A store with full-text search on its server (``store.search.TextSearch``: PostgreSQL) is asked
instead: its ranking (``ts_rank``) replaces BM25 there, and no process builds the index.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ..embeddings.words import split_words
from ..store.base import HandbookStore, RetrievalRows
from ..store.search import TextSearch
from ..types import INJECTABLE_STATUSES
from .base import Retriever, ScoredBehavior, rank
from .registry import SnapshotCache
from .snapshot import Snapshot, behavior_text, top_rows

__all__ = ["BM25Retriever", "Postings"]


class Postings:
    """The snapshot's "bm25" attachment: term statistics that follow every change (module docstring)."""

    def __init__(self, snapshot: Snapshot, rows: list[int] | None = None) -> None:
        """Postings of ``rows`` (the live ones when ``None``)."""
        self.snapshot = snapshot
        self.vocabulary: dict[str, int] = {}
        self.df = np.zeros(0, dtype=np.int64)
        self.lengths = np.zeros(0, dtype=np.float32)
        self.live_rows = 0
        self.total_length = 0.0
        self._extra: dict[int, tuple[list[int], list[int]]] = {}  # term -> rows, counts added since the merge
        self._extra_count = 0
        rows = np.flatnonzero(snapshot.live).tolist() if rows is None else rows
        self._grow_rows(max(rows, default=-1) + 1)
        terms: list[int] = []
        owners: list[int] = []
        for row in rows:
            words = self._words(row)
            self.lengths[row] = len(words)
            terms += [self._term(w) for w in words]
            owners += [row] * len(words)
        self.live_rows, self.total_length = len(rows), float(self.lengths.sum())
        self._set_base(np.asarray(terms, dtype=np.int64), np.asarray(owners, dtype=np.int64))

    def _words(self, row: int) -> list[str]:
        s = self.snapshot
        return split_words(behavior_text(s.names[row], s.instructions[row], s.topic_names[row]))

    def _term(self, word: str) -> int:
        term = self.vocabulary.get(word)
        if term is None:
            term = self.vocabulary[word] = len(self.vocabulary)
            if term >= self.df.shape[0]:
                self.df = np.concatenate([self.df, np.zeros(max(64, self.df.shape[0]), dtype=np.int64)])
        return term

    def _grow_rows(self, n: int) -> None:
        if n > self.lengths.shape[0]:
            grown = np.zeros(max(n, 2 * self.lengths.shape[0], 64), dtype=np.float32)
            grown[: self.lengths.shape[0]] = self.lengths
            self.lengths = grown

    def _set_base(
        self, terms: npt.NDArray[np.int64], rows: npt.NDArray[np.int64], counts: npt.NDArray[np.int64] | None = None
    ) -> None:
        """The compressed layout from (term, row[, count]) triples; the document frequencies from it."""
        size = max(int(rows.max()) + 1 if rows.shape[0] else 1, 1)
        keys = terms * size + rows
        if counts is None:  # one triple per occurrence: count them
            keys, counts = np.unique(keys, return_counts=True)
        else:
            order = np.argsort(keys, kind="stable")
            keys, counts = keys[order], counts[order]
        terms, rows = np.divmod(keys, size)
        self.df = np.bincount(terms, minlength=max(len(self.vocabulary), self.df.shape[0])).astype(np.int64)
        indptr = np.zeros(self.df.shape[0] + 1, dtype=np.int64)
        np.cumsum(self.df, out=indptr[1:])
        self._base = (indptr, rows.astype(np.int32), counts.astype(np.float32))
        self._extra, self._extra_count = {}, 0

    # --- changes ------------------------------------------------------------------------------
    def apply(self, dead: Sequence[int], dead_ids: Sequence[str], added: Sequence[int], fetched: RetrievalRows) -> None:
        for row in dead:
            for term in {self.vocabulary[w] for w in self._words(row)}:
                self.df[term] -= 1
            self.live_rows -= 1
            self.total_length -= float(self.lengths[row])
        self._grow_rows(self.snapshot.n)
        for row in added:
            words = self._words(row)
            for word, count in Counter(words).items():
                term = self._term(word)
                rows, counts = self._extra.setdefault(term, ([], []))
                counts.append(count)
                rows.append(row)  # last: a reader takes the rows first, then as many counts
                self.df[term] += 1
            self.lengths[row] = len(words)
            self.live_rows += 1
            self.total_length += len(words)
            self._extra_count += len(words)
        if self._extra_count > max(4096, self._base[1].shape[0] // 4):
            self._merge()

    def _merge(self) -> None:
        """Fold the added rows into the compressed layout and drop the dead rows' postings."""
        indptr, rows, counts = self._base
        terms = np.repeat(np.arange(indptr.shape[0] - 1, dtype=np.int64), np.diff(indptr))
        extra_terms = [t for t, (r, _) in self._extra.items() for _ in r]
        extra_rows = [x for r, _ in self._extra.values() for x in r]
        extra_counts = [x for _, c in self._extra.values() for x in c]
        all_terms = np.concatenate([terms, np.asarray(extra_terms, dtype=np.int64)])
        all_rows = np.concatenate([rows.astype(np.int64), np.asarray(extra_rows, dtype=np.int64)])
        all_counts = np.concatenate([counts.astype(np.int64), np.asarray(extra_counts, dtype=np.int64)])
        keep = self.snapshot.live[all_rows]
        self._set_base(all_terms[keep], all_rows[keep], all_counts[keep])

    # --- scoring ------------------------------------------------------------------------------
    def scores(self, query: str, k1: float, b: float) -> npt.NDArray[np.float32]:
        """BM25 score of every row for ``query`` (0 for dead rows and rows sharing no term)."""
        (indptr, base_rows, base_counts), extra = self._base, self._extra
        snapshot = self.snapshot
        n = snapshot.n  # read after the postings: every row they name is below it
        scores = np.zeros(n, dtype=np.float32)
        if self.live_rows <= 0:
            return scores
        lengths = self.lengths
        avg = self.total_length / self.live_rows or 1.0
        for word in dict.fromkeys(split_words(query)):
            term = self.vocabulary.get(word)
            if term is None or self.df[term] <= 0:
                continue
            df = float(self.df[term])
            idf = np.log1p((self.live_rows - df + 0.5) / (df + 0.5))  # Lucene's variant: never negative
            start, stop = (indptr[term], indptr[term + 1]) if term + 1 < indptr.shape[0] else (0, 0)
            rows, tf = base_rows[start:stop], base_counts[start:stop]
            more = extra.get(term)
            if more is not None:
                more_rows = np.asarray(more[0][:], dtype=np.int32)
                more_rows = more_rows[more_rows < n]
                rows = np.concatenate([rows, more_rows])
                tf = np.concatenate([tf, np.asarray(more[1][: more_rows.shape[0]], dtype=np.float32)])
            norm = k1 * (1.0 - b + b * lengths[rows] / avg)
            scores[rows] += (idf * (k1 + 1.0)) * tf / (tf + norm)
        dead = snapshot.dead_rows()
        scores[dead[dead < n]] = 0.0
        return scores


class BM25Retriever(Retriever):
    """Okapi BM25 (``k1``, ``b``) over each behavior's name words, instruction and topic.

    ``topic``, when given, restricts the candidates to behaviors of that topic.
    """

    source = "lexical"

    def __init__(
        self,
        store: HandbookStore,
        k1: float = 1.5,
        b: float = 0.75,
        *,
        snapshots: SnapshotCache | None = None,
    ) -> None:
        if k1 < 0 or not 0.0 <= b <= 1.0:
            raise ValueError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        self.store, self.k1, self.b = store, k1, b
        self.snapshots = snapshots or SnapshotCache.shared(store)
        #: from this many behaviors a namespace's first lexical query starts the index in the background
        #: and answers nothing meanwhile (a hybrid retriever sets it: its embedding half answers alone)
        self.build_aside_from: int | None = None
        self._server = store if isinstance(store, TextSearch) else None  # checked once: it is slow

    def scores(self, query: str, namespace: str) -> tuple[Snapshot, npt.NDArray[np.float32]]:
        """BM25 score of every row of ``namespace``'s snapshot (0 for rows no longer current)."""
        snapshot = self.snapshots.get(namespace)
        postings = snapshot.attachments.get("bm25")
        if postings is None:
            aside = self.build_aside_from is not None and len(snapshot) >= self.build_aside_from
            if aside and snapshot.attach_in_background("bm25", Postings):
                return snapshot, np.zeros(snapshot.n, dtype=np.float32)
            postings = snapshot.attach("bm25", Postings)
        assert isinstance(postings, Postings)
        return snapshot, postings.scores(query, self.k1, self.b)

    def ranked_rows(
        self, query: str, *, namespace: str, k: int, topic: str | None = None
    ) -> tuple[Snapshot, list[tuple[int, float]]] | None:
        """``retrieve`` as rows of the shared snapshot (``None`` when the store searches on its server)."""
        if self._server is not None:
            return None
        snapshot, scores = self.scores(query, namespace)
        mask = snapshot.topic_mask(topic)
        if mask is not None:
            scores[~mask[: scores.shape[0]]] = 0.0
        # a score of 0 shares no term with the query (a float32 bound: a float64 one would round to 0)
        rows = top_rows(scores, k, floor=float(np.finfo(np.float32).tiny), names=snapshot.names)
        return snapshot, [(r, float(scores[r])) for r in rows.tolist()]

    def retrieve(self, query: str, *, namespace: str, k: int, topic: str | None = None) -> list[ScoredBehavior]:
        if k <= 0:
            return []
        if self._server is not None:
            return self._search_on_server(self._server, query, namespace=namespace, k=k, topic=topic)
        ranked = self.ranked_rows(query, namespace=namespace, k=k, topic=topic)
        assert ranked is not None
        snapshot, found = ranked
        scores = dict(found)
        return [ScoredBehavior(b, scores[r], self.source) for r, b in snapshot.materialized([r for r, _ in found])]

    def _search_on_server(
        self, store: TextSearch, query: str, *, namespace: str, k: int, topic: str | None
    ) -> list[ScoredBehavior]:
        found = store.search_text(namespace, query, k, statuses=INJECTABLE_STATUSES, topic=topic)
        return rank((ScoredBehavior(b, score, self.source) for b, score in found if score > 0.0), k)
