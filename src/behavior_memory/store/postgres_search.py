"""The searches of ``PostgresStore`` on the server (``store.search``), and the HNSW settings they use.

Vector search walks pgvector's HNSW graph (cosine). What buys recall, and what it costs:

- ``ef_search``: the candidate list of one walk. Larger finds more of the true neighbours and costs
  time roughly in proportion; it is set once per connection, and per query (``SET LOCAL``) when
  ``k`` is larger.
- ``iterative_scan``: when the filters (namespace, statuses, topic) throw candidates away, the walk
  goes on until enough rows pass, or ``max_scan_tuples`` were visited. ``relaxed_order`` may hand
  rows back slightly out of order, so the candidates are re-ranked exactly (below); ``strict_order``
  drops late finds that would break the order, at some recall.
- ``m`` and ``ef_construction``: the graph's degree and the build's candidate list. Larger builds a
  better graph (more recall at the same ``ef_search``) and takes longer to build and more memory.

Every search takes ``candidates`` rows that pass the filters from the index (``k + 1`` if more), then
orders them exactly by ``(score desc, name)`` in the same statement, the order the retrievers
promise; ties between identical vectors are broken by name, not by the graph's walk. Should the walk
stop before ``k`` rows pass, an exact scan of the filtered rows answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ..embeddings.words import split_words
from ..types import Behavior, BehaviorStatus
from .postgres_behaviors import Conn, PostgresBase
from .postgres_rows import BEHAVIOR_COLUMNS, behavior_from_row

__all__ = ["HnswSettings", "IterativeScan", "SearchQueries"]

IterativeScan = Literal["off", "strict_order", "relaxed_order"]

_PREFIXED = ", ".join(f"b.{column.strip()}" for column in BEHAVIOR_COLUMNS.split(","))
_EF_SEARCH_MAX = 1000  # pgvector's bound on hnsw.ef_search


@dataclass(frozen=True)
class HnswSettings:
    """How the HNSW indexes are built and walked (``store.hnsw_*`` in the configuration).

    On the bench's clustered 384-d vectors (``bench/bench_postgres_retrieval.py``) the defaults give
    a recall@5 of 0.99 or more at 100k behaviors under the retrievers' filters; at 1M the same graph
    needs ``ef_search`` 800 for 0.98 (0.85 at 100), at several times the latency (README). ``m`` and
    ``ef_construction`` apply to indexes built afterwards; the others to connections opened afterwards.
    """

    ef_search: int = 100
    iterative_scan: IterativeScan = "relaxed_order"
    max_scan_tuples: int = 20_000
    candidates: int = 10
    m: int = 16
    ef_construction: int = 128
    build_memory_mb: int = 1024
    build_workers: int = 2

    def __post_init__(self) -> None:
        # pgvector ignores a bad value with a warning and falls back to its default: refuse it here
        checks = {
            "ef_search": 1 <= self.ef_search <= _EF_SEARCH_MAX,
            "iterative_scan": self.iterative_scan in ("off", "strict_order", "relaxed_order"),
            "max_scan_tuples": self.max_scan_tuples >= 1,
            "candidates": 1 <= self.candidates <= _EF_SEARCH_MAX,
            "m": 2 <= self.m <= 100,
            "ef_construction": 2 * self.m <= self.ef_construction <= 1000,
            "build_memory_mb": self.build_memory_mb >= 64,
            "build_workers": 0 <= self.build_workers <= 64,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid HNSW settings: {', '.join(f'{n}={getattr(self, n)!r}' for n in bad)}")

    @classmethod
    def from_config(cls, section: object) -> HnswSettings:
        """The settings named by a configuration section's ``hnsw_*`` fields (``StoreConfig``)."""
        names = (f"hnsw_{f.name}" for f in fields(cls))
        return cls(**{name[5:]: getattr(section, name) for name in names if hasattr(section, name)})

    def session_sql(self) -> str:
        """What every pooled connection runs once: the walk's settings, so a search is one statement.

        JIT is off: it compiles a plan in tens of milliseconds to save microseconds on these small
        queries (an exact scan of many rows would otherwise trigger it).
        """
        return (
            f"SET hnsw.ef_search = {int(self.ef_search)}; SET hnsw.iterative_scan = {self.iterative_scan}; "
            f"SET hnsw.max_scan_tuples = {int(self.max_scan_tuples)}; SET jit = off"
        )

    def build_sql(self) -> str:
        """Settings of the transaction that builds an index: the graph held in memory, parallel workers."""
        return (
            f"SET LOCAL maintenance_work_mem = '{int(self.build_memory_mb)}MB'; "
            f"SET LOCAL max_parallel_maintenance_workers = {int(self.build_workers)}"
        )


def _unit(query: npt.ArrayLike) -> npt.NDArray[np.float32] | None:
    vector = np.asarray(query, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector)) if vector.size else 0.0
    if norm == 0.0 or not np.isfinite(norm):
        return None
    return vector / norm


class SearchQueries(PostgresBase):
    """``store.search.VectorSearch`` and ``TextSearch`` on PostgreSQL."""

    hnsw: HnswSettings
    #: searches a walk could not answer, answered by an exact scan (tests, stats)
    exact_searches = 0

    def search_vectors(
        self,
        namespace: str,
        query: npt.ArrayLike,
        k: int,
        *,
        statuses: Iterable[BehaviorStatus] | None = None,
        topic: str | None = None,
    ) -> list[tuple[Behavior, float]]:
        """The ``k`` behaviors nearest ``query`` by cosine, with their similarity, by ``(-score, name)``.

        See the module docstring. Only vectors of the query's size are searched.
        """
        vector = None if k <= 0 else _unit(query)
        if vector is None:
            return []
        k = int(k)
        d = int(vector.size)
        where, params = search_filters(namespace, statuses, topic)
        where += f" AND vector_dims(b.embedding) = {d}"
        distance = f"b.embedding::vector({d}) <=> %s"
        # the inner ORDER BY is the index's; the outer one re-ranks its candidates exactly, and says
        # how far the farthest candidate was and how many there were (to see ties cut off at the edge)
        walk = (
            f"SELECT {BEHAVIOR_COLUMNS}, distance, max(distance) OVER (), count(*) OVER (), 1 - distance AS score "
            f"FROM (SELECT {_PREFIXED}, {distance} AS distance FROM behaviors b WHERE {where} "
            "ORDER BY distance LIMIT %s) c ORDER BY score DESC, name LIMIT %s"
        )
        # 1 - distance is no operator the index serves: this one is an exact scan of the filtered rows
        exact = (
            f"SELECT {_PREFIXED}, 1 - ({distance}) AS score FROM behaviors b WHERE {where} "
            "ORDER BY score DESC, b.name LIMIT %s"
        )
        widen = min(k, _EF_SEARCH_MAX) if k > self.hnsw.ef_search else None

        def search(conn: Conn) -> list[Any]:
            if widen is not None:  # inside the transaction _run opened: back to the session's value after
                conn.execute(f"SET LOCAL hnsw.ef_search = {widen}")
            limit = max(k + 1, self.hnsw.candidates)  # one past k at least: a tie at the k-th shows
            while True:
                rows = conn.execute(walk, (vector, *params, limit, k)).fetchall()
                if len(rows) < k:  # the walk stopped early (max_scan_tuples): ask every filtered row
                    self.exact_searches += 1
                    return conn.execute(exact, (vector, *params, k)).fetchall()
                distance_k, edge, found = rows[-1][-4], rows[-1][-3], rows[-1][-2]
                # the k-th is as far as the farthest candidate and more may lie there: take more, so
                # that a tie is broken by name over all of its rows, not by the walk
                if distance_k < edge or found < limit:
                    return rows
                if limit >= _EF_SEARCH_MAX:
                    self.exact_searches += 1
                    return conn.execute(exact, (vector, *params, k)).fetchall()
                limit = min(limit * 4, _EF_SEARCH_MAX)

        rows = self._run(search) if widen is not None else self._read(search)
        return [(behavior_from_row(row), float(row[-1])) for row in rows]

    def search_text(
        self,
        namespace: str,
        query: str,
        k: int,
        *,
        statuses: Iterable[BehaviorStatus] | None = None,
        topic: str | None = None,
    ) -> list[tuple[Behavior, float]]:
        """The ``k`` behaviors whose name words, instruction or topic best match ``query`` (full-text search).

        Any of the query's words may match (as BM25 would); the score is ``ts_rank`` with length
        normalisation. Words are split the way the BM25 retriever splits them.
        """
        words = list(dict.fromkeys(split_words(query or "")))
        if k <= 0 or not words:
            return []
        terms = " | ".join("'" + w.replace("'", "") + "'" for w in words)
        where, params = search_filters(namespace, statuses, topic)
        sql = (
            f"SELECT {_PREFIXED}, ts_rank(b.document, q, 1) AS score FROM behaviors b, "
            f"to_tsquery('simple', %s) q WHERE b.document @@ q AND {where} ORDER BY score DESC, b.name LIMIT %s"
        )
        rows = self._read(lambda conn: conn.execute(sql, (terms, *params, int(k))).fetchall())
        return [(behavior_from_row(row), float(row[-1])) for row in rows]


def search_filters(
    namespace: str, statuses: Iterable[BehaviorStatus] | None, topic: str | None
) -> tuple[str, list[Any]]:
    """WHERE clause of a search: namespace, statuses, topic as retrieval normalises it."""
    where = "b.namespace = %s"
    params: list[Any] = [namespace]
    if statuses is not None:
        where += " AND b.status = ANY(%s)"
        params.append([str(s) for s in statuses])
    key = topic_key(topic)
    if key is not None:
        where += " AND b.topic_key = %s"
        params.append(key)
    return where, params


def topic_key(topic: str | None) -> str | None:
    """Retrieval's topic matching (``retrieval.snapshot.normalize_topic``), as the stored ``topic_key`` has it."""
    if topic is None:
        return None
    text = " ".join(topic.split()).lower()
    return text or None
