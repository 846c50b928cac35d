"""An embedder change: re-embedded in the background, in batches; retrieval stays lexical meanwhile."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from click.testing import CliRunner

from behavior_memory.cli.main import cli
from behavior_memory.embeddings import HashingEmbedder
from behavior_memory.handbook import Handbook
from behavior_memory.retrieval import EmbeddingRetriever, RetrievalConfig, build_retriever
from behavior_memory.retrieval.reembed import EMBEDDER_KEY, REEMBEDDING_KEY, Reembedding, vectors_match
from behavior_memory.store.in_memory import InMemoryStore
from behavior_memory.store.sqlite import SQLiteStore

TEXTS = {
    "behavior_inclusion_exclusion": "count a union by adding set sizes and subtracting the overlaps",
    "behavior_retry_backoff": "retry failed http requests with exponential backoff and a cap",
    "behavior_angle_sum": "the angles of a triangle sum to one hundred eighty degrees",
}


class Gated(HashingEmbedder):
    """A hashing embedder whose batches of more than one text wait for ``gate`` (queries do not)."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim=dim)
        self.gate = threading.Event()
        self.batches: list[int] = []

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if len(texts) > 1:
            assert self.gate.wait(10)
            self.batches.append(len(texts))
        return super().embed(texts)


def filled(store: InMemoryStore | SQLiteStore) -> None:
    book = Handbook(store, HashingEmbedder(dim=8), namespace="default")
    for name, text in TEXTS.items():
        book.add(name, text)
    book.add("behavior_other_space", "an unrelated behavior of another namespace", namespace="elsewhere")
    assert store.get_meta(EMBEDDER_KEY) == "hashing-8:8"


def test_a_new_embedder_reembeds_in_the_background_while_retrieval_stays_lexical() -> None:
    store = InMemoryStore()
    filled(store)
    embedder = Gated(dim=16)
    book = Handbook(store, embedder, namespace="default")
    retriever = build_retriever(RetrievalConfig(strategy="embedding", floor=-1.0, pinned_first=False), store, embedder)
    assert isinstance(retriever, EmbeddingRetriever)
    retriever.recheck_s = (0.0, 0.0)
    hybrid = build_retriever(RetrievalConfig(floor=-1.0), store, embedder)

    started = time.perf_counter()
    book.ensure_embedder()  # returns at once: the batches wait for the gate
    assert time.perf_counter() - started < 1.0
    assert not vectors_match(store, embedder) and store.get_meta(REEMBEDDING_KEY) == "hashing-16:16"
    hits = retriever.retrieve("union of set sizes", namespace="default", k=2)
    assert [h.behavior.name for h in hits][:1] == ["behavior_inclusion_exclusion"]
    assert {h.source for h in hits} == {"lexical"}  # no dimension error: the vectors are not searched
    assert hybrid.retrieve("http backoff", namespace="default", k=2)[0].behavior.name == "behavior_retry_backoff"

    embedder.gate.set()
    book.ensure_embedder(wait=True)
    assert book.reembedding is not None and book.reembedding.done == 4 and book.reembedding.error is None
    assert store.get_meta(EMBEDDER_KEY) == "hashing-16:16" and not store.get_meta(REEMBEDDING_KEY)
    assert store.vectors("default")[1].shape == (3, 16) and store.vectors("elsewhere")[1].shape == (1, 16)
    hits = retriever.retrieve("union of set sizes", namespace="default", k=1)
    assert hits[0].source == "embedding" and hits[0].behavior.name == "behavior_inclusion_exclusion"


def test_batches_and_progress(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "h.db")
    filled(store)
    embedder = Gated(dim=16)
    embedder.gate.set()
    seen: list[tuple[int, int]] = []
    assert Reembedding(store, embedder, batch=2, progress=lambda d, t: seen.append((d, t))).run() == 4
    assert seen == [(2, 4), (3, 4), (4, 4)] and embedder.batches == [2]  # a batch of one is not gated
    assert vectors_match(store, embedder)


def test_an_empty_handbook_records_the_embedder_without_work() -> None:
    store = InMemoryStore()
    book = Handbook(store, HashingEmbedder(dim=8), namespace="default")
    book.ensure_embedder()
    assert book.reembedding is None and store.get_meta(EMBEDDER_KEY) == "hashing-8:8"


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    runner = CliRunner()
    assert runner.invoke(cli, ["init"], catch_exceptions=False).exit_code == 0
    cfg = tmp_path / "behavior-memory.yaml"
    cfg.write_text(cfg.read_text().replace("provider: sentence-transformers", "provider: hashing"))
    return lambda *args: runner.invoke(cli, list(args), catch_exceptions=False)


def test_cli_reembed(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert run("behaviors", "add", "behavior_angle_sum", "Triangle angles sum to 180 degrees.").exit_code == 0
    done = run("behaviors", "reembed")
    assert done.exit_code == 0 and "nothing to do" in done.output
    forced = run("behaviors", "reembed", "--force", "--batch", "1")
    assert forced.exit_code == 0 and "re-embedded 1 behaviors" in forced.output
