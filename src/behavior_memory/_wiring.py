"""How ``BehaviorMemory`` is put together: configuration -> store, embedder, retriever, LLM client, reflection.

The facade (``memory.py``) only delegates; the construction lives here. Every builder imports its
implementation when called (pydantic-ai style registries with lazy imports), so importing the
library loads neither numpy nor openai, and a command that only lists behaviors loads no model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config.settings import BehaviorMemoryConfig
    from .embeddings.base import Embedder
    from .guard.guard import Guard
    from .handbook import Handbook
    from .llm.client import LLMClient
    from .recording.traces import TraceBook
    from .reflection.worker import ReflectionService, ReflectionWorker
    from .retrieval.base import Retriever
    from .review import BehaviorGuard
    from .store.base import HandbookStore

__all__ = [
    "STORE_BACKENDS",
    "build_embedder",
    "build_guard",
    "build_handbook",
    "build_llm",
    "build_reflection",
    "build_retriever",
    "build_store",
    "build_tracebook",
    "build_worker",
]


def _sqlite_store(config: BehaviorMemoryConfig) -> HandbookStore:
    from .store.sqlite import SQLiteStore

    path = config.store_path()
    if config.store.path is None:  # our own default location: create it
        path.parent.mkdir(parents=True, exist_ok=True)
    return SQLiteStore(path, busy_timeout_s=config.store.busy_timeout_s)


def _postgres_store(config: BehaviorMemoryConfig) -> HandbookStore:
    from ._optional import require

    require("psycopg", "postgres", what="store.backend: postgres")
    require("psycopg_pool", "postgres", what="store.backend: postgres")
    from .store.postgres import PostgresStore
    from .store.postgres_search import HnswSettings

    assert config.store.dsn is not None  # StoreConfig refuses postgres without a dsn
    return PostgresStore(
        config.store.dsn,
        pool_size=config.store.pool_size,
        connect_timeout_s=config.store.connect_timeout_s,
        hnsw=HnswSettings.from_config(config.store),
    )


#: ``store.backend`` -> factory; a new back-end adds one entry and its config fields.
STORE_BACKENDS: dict[str, Callable[[BehaviorMemoryConfig], HandbookStore]] = {
    "sqlite": _sqlite_store,
    "postgres": _postgres_store,
}


def build_store(config: BehaviorMemoryConfig) -> HandbookStore:
    """The store ``config.store`` describes."""
    return STORE_BACKENDS[config.store.backend](config)


def build_tracebook(config: BehaviorMemoryConfig, store: HandbookStore, namespace: str) -> TraceBook:
    """The trace book over ``store``, with the write budget and a spool: beside a file store, and for a
    database store (``dsn``) in the user's data folder, one folder per database (the DSN without its
    password, hashed), so every process of this user on this machine drains the same one."""
    from pathlib import Path

    from .recording.spool import TraceSpool
    from .recording.traces import TraceBook

    spool = None
    store_file = getattr(store, "path", None)
    store_dsn = getattr(store, "dsn", None)
    if config.store.spool_path is not None:
        spool = TraceSpool(config.spool_path())
    elif isinstance(store_file, Path):  # a store in one file: the spool lies beside it
        spool = TraceSpool(Path(f"{store_file}.spool"))
    elif isinstance(store_dsn, str):
        from .config.settings import default_data_dir
        from .store.postgres import spool_name

        spool = TraceSpool(default_data_dir() / "spool" / spool_name(store_dsn))
    return TraceBook(store, namespace=namespace, spool=spool, write_budget_s=config.store.write_budget_s)


def build_embedder(config: BehaviorMemoryConfig) -> Embedder | None:
    """The embedder of ``config.embeddings`` (no model is loaded before the first vector), or None."""
    from .embeddings.config import build_embedder as build_from_section

    return build_from_section(config.embeddings)


def build_guard(config: BehaviorMemoryConfig) -> Guard:
    """The guard's deterministic rules, as ``curation.guard`` configures them."""
    from .guard.guard import Guard

    return Guard(config.curation.guard)


def build_handbook(
    store: HandbookStore, embedder: Embedder | None, namespace: str, guard: BehaviorGuard | None = None
) -> Handbook:
    """The handbook over ``store``, embedding with ``embedder``; ``guard`` checks what people add."""
    from .handbook import Handbook

    return Handbook(store, embedder, namespace=namespace, guard=guard)


def build_retriever(config: BehaviorMemoryConfig, store: HandbookStore, embedder: Embedder | None) -> Retriever:
    """The retriever of ``config.retrieval`` over ``store``."""
    from .retrieval.config import build_retriever as build_from_section

    return build_from_section(config.retrieval, store, embedder)


def build_llm(config: BehaviorMemoryConfig, model: str | None = None) -> LLMClient:
    """A client of the configured model server (openai loads with its first request); ``model`` overrides."""
    from .llm.client import LLMClient

    llm_config = (
        config.llm if not model or model == config.llm.model else config.llm.model_copy(update={"model": model})
    )
    return LLMClient(llm_config)


def build_reflection(
    config: BehaviorMemoryConfig, store: HandbookStore, embedder: Embedder | None, llm: LLMClient
) -> ReflectionService:
    """Reflector (on ``llm``, or on ``reflection.model`` when it names another model) + curator + service."""
    from .reflection.curator import Curator
    from .reflection.reflector import Reflector
    from .reflection.worker import ReflectionService

    cfg = config.reflection
    same = cfg.llm == "agent" or not cfg.model or cfg.model == config.llm.model  # agent: the agent's model
    client = llm if same else build_llm(config, cfg.model)
    reflector = Reflector(
        client,
        max_trace_tokens=cfg.max_trace_tokens,
        max_behaviors=cfg.max_behaviors_per_trace,
        min_behaviors=cfg.min_behaviors_per_trace,
        reflection_max_tokens=cfg.reflection_max_tokens,
        extraction_max_tokens=cfg.extraction_max_tokens,
        extra_body=cfg.extra_body,
        reflection_prompt=config.resolve(cfg.reflection_prompt),
        extraction_prompt=config.resolve(cfg.extraction_prompt),
    )
    guard: BehaviorGuard = build_guard(config)
    if config.curation.judge.enabled:  # the model judges what passed the rules, on the same server
        from .guard.judge import Judge

        guard = Judge(client, config.curation.judge, guard=build_guard(config))
    curator = Curator(
        store,
        embedder,
        guard=guard,
        threshold=config.curation.dedup_threshold,
        approval=config.curation.approval,
        min_support=config.curation.min_support,
    )
    return ReflectionService(store, reflector, curator, max_attempts=cfg.max_attempts)


def build_worker(config: BehaviorMemoryConfig, reflection: ReflectionService) -> ReflectionWorker:
    """The background reflection worker, started."""
    from .reflection.curation import CurationPass
    from .reflection.worker import ReflectionWorker

    curation = CurationPass(reflection.store, reflection.curator.embedder, config.curation)
    worker = ReflectionWorker(
        reflection,
        concurrency=config.reflection.concurrency,
        lease_s=config.reflection.lease_s,
        maintenance=curation.run_all,
        maintenance_every_s=config.curation.interval_s,
    )
    worker.start()
    from .store.claims import PendingTraceEvents

    if isinstance(reflection.store, PendingTraceEvents):  # PostgreSQL: NOTIFY wakes it, no polling
        reflection.store.on_pending_traces(worker.notify)
    return worker
