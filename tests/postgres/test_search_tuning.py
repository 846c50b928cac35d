"""The tuned vector search (``HnswSettings``): the exact top-k under the filters, ties broken by name,
the settings on the server, and the bulk load by binary COPY."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from behavior_memory.errors import InvalidBehaviorError
from behavior_memory.store.postgres import PostgresStore
from behavior_memory.store.postgres_search import HnswSettings
from behavior_memory.types import Behavior, BehaviorStatus
from postgres.pg_harness import scratch_store

DIM = 16
TOPICS = ["Number  Theory", "algebra", "geometry", "combinatorics"]


def unit(rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def handbook(
    n: int = 1200, ties: int = 40
) -> tuple[list[tuple[Behavior, npt.NDArray[np.float32]]], npt.NDArray[np.float32]]:
    """``n`` behaviors around 12 centres (statuses and topics at random), then ``ties`` active ones
    sharing one vector, inserted in shuffled name order; returns them and that shared vector."""
    rng = np.random.default_rng(11)
    centres = rng.standard_normal((12, DIM)).astype(np.float32)
    matrix = unit(centres[rng.integers(0, 12, n)] + 0.5 * rng.standard_normal((n, DIM)).astype(np.float32))
    statuses = [BehaviorStatus.ACTIVE] * 3 + [BehaviorStatus.CANDIDATE, BehaviorStatus.ARCHIVED]
    items = [
        (
            Behavior(
                name=f"behavior_r{i:05d}",
                instruction=f"instruction number {i}",
                topic=TOPICS[int(rng.integers(0, len(TOPICS)))],
                status=statuses[int(rng.integers(0, len(statuses)))],
            ),
            matrix[i],
        )
        for i in range(n)
    ]
    shared = unit(rng.standard_normal((1, DIM)).astype(np.float32))[0]
    for i in rng.permutation(ties):
        items.append(
            (Behavior(name=f"behavior_tie{i:03d}", instruction=f"the same advice {i}", topic="algebra"), shared)
        )
    return items, shared


def exact(
    items: list[tuple[Behavior, npt.NDArray[np.float32]]],
    q: npt.NDArray[np.float32],
    k: int,
    statuses: list[BehaviorStatus] | None = None,
    topic: str | None = None,
) -> list[str]:
    """The contract's answer: cosine similarity descending, then name, over the filtered rows."""
    key = None if topic is None else " ".join(topic.split()).lower()
    scored = [
        (-float(np.dot(v.astype(np.float64), q.astype(np.float64))), b.name)
        for b, v in items
        if (statuses is None or b.status in statuses)
        and (key is None or " ".join((b.topic or "").split()).lower() == key)
    ]
    return [name for _, name in sorted(scored)[:k]]


@pytest.fixture(scope="module")
def tuned() -> object:
    store = scratch_store(hnsw=HnswSettings())
    items, shared = handbook()
    with store.bulk_load():  # COPY, the index built once, fresh statistics: the planner walks the index
        store.put_behaviors(items)
    yield store, items, shared
    store.close()


def test_the_tuned_search_returns_the_exact_top_k_under_filters(tuned: tuple[PostgresStore, list, np.ndarray]) -> None:
    store, items, _ = tuned
    rng = np.random.default_rng(5)
    active = [BehaviorStatus.ACTIVE]
    for i in rng.integers(0, 1200, 12):
        q = unit(items[int(i)][1][None, :] + 0.1 * rng.standard_normal((1, DIM)).astype(np.float32))[0]
        for statuses, topic in ((active, None), (active, "number theory"), (None, "GEOMETRY "), (None, None)):
            found = store.search_vectors("default", q, 5, statuses=statuses, topic=topic)
            assert [b.name for b, _ in found] == exact(items, q, 5, statuses, topic)
            scores = [s for _, s in found]
            assert scores == sorted(scores, reverse=True)
            assert scores[0] == pytest.approx(float(items[int(i)][1] @ q), abs=0.5)  # a similarity, not a distance
    assert store.exact_searches == 0  # every answer came from a walk of the index


def test_ties_beyond_the_candidates_are_broken_by_name(tuned: tuple[PostgresStore, list, np.ndarray]) -> None:
    store, items, shared = tuned
    # 40 rows at distance 0, more than the 20 candidates one walk takes: still the first names
    found = store.search_vectors("default", shared, 5, statuses=[BehaviorStatus.ACTIVE])
    assert [b.name for b, _ in found] == [f"behavior_tie{i:03d}" for i in range(5)]
    assert [s for _, s in found] == pytest.approx([1.0] * 5, abs=1e-6)
    found = store.search_vectors("default", shared, 45, topic="Algebra")
    assert [b.name for b, _ in found] == exact(items, shared, 45, topic="algebra")


def test_k_beyond_ef_search_widens_the_walk_for_that_query() -> None:
    store = scratch_store(hnsw=HnswSettings(ef_search=8, candidates=4, iterative_scan="strict_order"))
    try:
        items, _ = handbook(n=600, ties=0)
        store.put_behaviors(items)  # inserts, the index grown row by row
        store._run(lambda conn: conn.execute("ANALYZE behaviors"))
        q = items[7][1]
        assert [b.name for b, _ in store.search_vectors("default", q, 30)] == exact(items, q, 30)
        assert store._read(lambda conn: conn.execute("SHOW hnsw.ef_search").fetchone()) == ("8",)
    finally:
        store.close()


def test_the_settings_reach_the_server_and_the_index(tuned: tuple[PostgresStore, list, np.ndarray]) -> None:
    store, _, shared = tuned
    shown = store._read(
        lambda conn: [
            conn.execute(f"SHOW {name}").fetchone()
            for name in ("hnsw.ef_search", "hnsw.iterative_scan", "hnsw.max_scan_tuples", "jit")
        ]
    )
    defaults = HnswSettings()
    assert shown == [(str(defaults.ef_search),), (defaults.iterative_scan,), (str(defaults.max_scan_tuples),), ("off",)]
    options = store._read(
        lambda conn: conn.execute(
            "SELECT reloptions FROM pg_class WHERE relname = 'behaviors_hnsw_16' "
            "AND relnamespace = current_schema()::regnamespace"
        ).fetchone()
    )
    assert options == ([f"m={defaults.m}", f"ef_construction={defaults.ef_construction}"],)
    plan = store._read(
        lambda conn: conn.execute(
            "EXPLAIN SELECT id FROM behaviors b WHERE b.namespace = 'default' AND b.status = ANY(%s) "
            "AND vector_dims(b.embedding) = 16 ORDER BY b.embedding::vector(16) <=> %s LIMIT 20",
            (["active"], shared),
        ).fetchall()
    )
    assert "Index Scan using behaviors_hnsw_16" in "\n".join(row[0] for row in plan)


def test_a_bulk_load_copies_every_field_and_refuses_a_taken_name() -> None:
    store = scratch_store()
    try:
        odd = Behavior(
            name="behavior_odd",
            instruction="keep the \x00 out and the ünïcode in",
            topic=None,
            tags=["a", "b"],
            status=BehaviorStatus.CANDIDATE,
            pinned=True,
            sources=["0" * 32],
            model="m",
            shown=3,
            metadata={"guard": {"verdict": "clean"}, "n": [1, 2]},
        )
        plain = Behavior(name="behavior_plain", instruction="no vector for this one")
        vector = unit(np.arange(1, DIM + 1, dtype=np.float32)[None, :])[0]
        with store.bulk_load():
            store.put_behaviors([(odd, vector), (plain, None)])
        got = store.get_behavior("default", "behavior_odd")
        assert got.model_dump(exclude={"instruction"}) == odd.model_dump(exclude={"instruction"})
        assert got.instruction == "keep the \ufffd out and the ünïcode in"
        assert store.get_behavior("default", plain.id) == plain
        ids, matrix = store.vectors("default")
        assert ids == [odd.id] and np.array_equal(matrix[0], vector)
        with pytest.raises(InvalidBehaviorError, match="behavior_plain"), store.bulk_load():
            store.put_behaviors([(Behavior(name="behavior_plain", instruction="a second one by that name"), None)])
        assert store.count_behaviors("default") == 2
    finally:
        store.close()


@pytest.mark.parametrize(
    "fields",
    [{"ef_search": 0}, {"ef_search": 1001}, {"m": 16, "ef_construction": 20}, {"iterative_scan": "fast"}],
)
def test_settings_pgvector_would_ignore_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="invalid HNSW settings"):
        HnswSettings(**fields)  # type: ignore[arg-type]


def test_the_configuration_names_every_setting_with_the_same_defaults() -> None:
    from behavior_memory.config.settings import StoreConfig

    assert HnswSettings.from_config(StoreConfig()) == HnswSettings()
    tuned = StoreConfig(hnsw_ef_search=64, hnsw_iterative_scan="strict_order", hnsw_m=24, hnsw_ef_construction=96)
    assert HnswSettings.from_config(tuned) == HnswSettings(
        ef_search=64, iterative_scan="strict_order", m=24, ef_construction=96
    )
    assert all(f"hnsw_{name}" in StoreConfig.model_fields for name in HnswSettings.__dataclass_fields__)
    with pytest.raises(ValueError, match="at least twice"):
        StoreConfig(hnsw_m=32, hnsw_ef_construction=40)


def test_the_yaml_hnsw_settings_reach_the_store(pg_dsn: str) -> None:
    from behavior_memory._wiring import build_store
    from behavior_memory.config import BehaviorMemoryConfig

    config = BehaviorMemoryConfig.model_validate(
        {"store": {"backend": "postgres", "dsn": pg_dsn, "hnsw_ef_search": 37, "hnsw_m": 24}}
    )
    store = build_store(config)
    try:
        assert isinstance(store, PostgresStore)
        assert (store.hnsw.ef_search, store.hnsw.m) == (37, 24)
        assert store._read(lambda conn: conn.execute("SHOW hnsw.ef_search").fetchone()) == ("37",)
    finally:
        store.close()
