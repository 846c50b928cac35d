"""LISTEN/NOTIFY (change tokens served locally, idle workers woken) and the searches on the server."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from behavior_memory.retrieval.embedding import EmbeddingRetriever
from behavior_memory.retrieval.lexical import BM25Retriever
from behavior_memory.store.in_memory import InMemoryStore
from behavior_memory.store.postgres import PostgresStore
from behavior_memory.store.search import TextSearch, VectorSearch
from behavior_memory.types import Behavior, BehaviorStatus, Trace


def wait_for(predicate: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


def behavior(name: str, **fields: object) -> Behavior:
    return Behavior(name=f"behavior_{name}", instruction=f"instruction of {name}", **fields)  # type: ignore[arg-type]


def test_change_tokens_follow_another_process_without_asking_the_server(pg_dsn: str) -> None:
    writer, reader = PostgresStore(pg_dsn), PostgresStore(pg_dsn)
    assert wait_for(lambda: reader.listening)
    assert reader.change_token("default") == 0
    asked = reader.token_queries
    for _ in range(50):  # what a retriever does before each task: nothing changed, nothing asked
        assert reader.change_token("default") == 0
    assert reader.token_queries == asked
    writer.put_behavior(behavior("one"))
    assert wait_for(lambda: reader.change_token("default") == 1)
    writer.increment("default", ["behavior_one"], "shown")  # counters are statistics: no token moves
    assert reader.change_token("default") == 1
    assert reader.token_queries == asked  # the notification brought the new token
    writer.close()
    reader.close()


def test_a_saved_trace_wakes_subscribers_in_other_processes(pg_dsn: str) -> None:
    saver, worker = PostgresStore(pg_dsn), PostgresStore(pg_dsn)
    assert wait_for(lambda: worker.listening)
    woken = threading.Event()
    unsubscribe = worker.on_pending_traces(woken.set)
    saver.save_trace(Trace(task="2+2?"))
    assert woken.wait(5.0)
    unsubscribe()
    woken.clear()
    saver.save_trace(Trace(task="3+3?"))
    assert not woken.wait(0.3)
    saver.close()
    worker.close()


def test_without_a_listener_every_token_is_read(pg_dsn: str) -> None:
    store = PostgresStore(pg_dsn, listen=False)
    store.put_behavior(behavior("one"))
    assert store.change_token("default") == 1 and store.token_queries == 1
    assert not store.listening
    store.close()


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    m = rng.standard_normal((n, d)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def test_vector_search_is_complete_under_filters_and_matches_brute_force(pg_store: PostgresStore) -> None:
    rng = np.random.default_rng(7)
    matrix = _unit(rng, 600, 32)
    statuses = [BehaviorStatus.ACTIVE, BehaviorStatus.CANDIDATE, BehaviorStatus.ARCHIVED]
    items = [
        (behavior(f"b{i:04d}", topic=("Number  Theory" if i % 10 == 0 else "algebra"), status=statuses[i % 3]), v)
        for i, v in enumerate(matrix)
    ]
    pg_store.put_behaviors(items)
    assert isinstance(pg_store, VectorSearch) and isinstance(pg_store, TextSearch)
    hits, total = 0, 0
    for q in _unit(rng, 20, 32):
        found = pg_store.search_vectors("default", q, 5, statuses=[BehaviorStatus.ACTIVE])
        exact = sorted((float(v @ q), b.name) for b, v in items if b.status == BehaviorStatus.ACTIVE)[::-1][:5]
        assert len(found) == 5 and [s for _, s in found] == sorted((s for _, s in found), reverse=True)
        hits += len({b.name for b, _ in found} & {name for _, name in exact})
        total += 5
        topical = pg_store.search_vectors("default", q, 50, topic="number theory")  # 60 rows, any status
        assert len(topical) == 50 and all(b.topic == "Number  Theory" for b, _ in topical)
    assert hits / total >= 0.95  # HNSW is approximate; at this size it is all but exact


def test_retrievers_use_the_server_and_keep_their_order(pg_store: PostgresStore) -> None:
    local = InMemoryStore()
    items = [
        (behavior("check_units", topic="physics"), np.array([1, 0, 0], np.float32)),
        (behavior("count_cases", topic="combinatorics"), np.array([0.6, 0.8, 0], np.float32)),
        (behavior("count_twice", topic="combinatorics"), np.array([0.6, 0.8, 0], np.float32)),  # a tie
        (behavior("quarantined_one", status=BehaviorStatus.QUARANTINED), np.array([1, 0, 0], np.float32)),
    ]
    for store in (local, pg_store):
        store.put_behaviors(items)
    query = np.array([0.6, 0.8, 0.01], np.float32)
    ours = EmbeddingRetriever(pg_store, embedder=None, floor=0.1).retrieve_by_vector(query, namespace="default", k=3)  # type: ignore[arg-type]
    theirs = EmbeddingRetriever(local, embedder=None, floor=0.1).retrieve_by_vector(query, namespace="default", k=3)  # type: ignore[arg-type]
    assert [h.name for h in ours] == [h.name for h in theirs]
    assert [h.name for h in ours] == ["behavior_count_cases", "behavior_count_twice", "behavior_check_units"]
    assert ours[0].score == pytest.approx(theirs[0].score, abs=1e-5)
    lexical = BM25Retriever(pg_store).retrieve("how to count cases", namespace="default", k=5)
    assert [h.name for h in lexical][:1] == ["behavior_count_cases"]
    assert "behavior_quarantined_one" not in [h.name for h in lexical]
    assert BM25Retriever(pg_store).retrieve("units", namespace="default", k=5, topic="Physics")[0].name == (
        "behavior_check_units"
    )
