"""Ordered schema migrations of the PostgreSQL handbook; the ``schema_version`` table records which ran.

Append a new script to ``MIGRATIONS`` to change the schema; never edit one that has shipped. The
scripts run in one transaction under an advisory lock, so two processes starting on a fresh
database at once migrate it once. Tables live in the first schema of the connection's
``search_path`` (``options=-csearch_path=myschema,public`` in the DSN picks another one).

Text keys (ids, namespaces, names) use the ``"C"`` collation: bytewise order, the order SQLite and
the contract give, whatever locale the database was created with. The vectors live in one
``vector`` column of any size; an HNSW index per size is created on first use (``hnsw_index_sql``),
since pgvector indexes only columns of a fixed size.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "MIGRATION_LOCK", "hnsw_index_name", "hnsw_index_sql"]

#: ``pg_advisory_xact_lock`` key held while migrating or creating an index ("bmem" in ASCII).
MIGRATION_LOCK = 0x626D656D

#: pgvector's HNSW index takes vectors of at most this many dimensions.
HNSW_MAX_DIMS = 2000

MIGRATIONS: list[str] = [
    # 1: behaviors (vector, full-text document and normalised topic beside them), traces and their
    # steps, per-namespace change counters, meta
    r"""
    CREATE TABLE behaviors (
        id           text COLLATE "C" PRIMARY KEY,
        namespace    text COLLATE "C" NOT NULL,
        name         text COLLATE "C" NOT NULL,
        instruction  text NOT NULL,
        topic        text,
        tags         jsonb NOT NULL DEFAULT '[]',
        status       text NOT NULL,
        pinned       boolean NOT NULL DEFAULT false,
        sources      jsonb NOT NULL DEFAULT '[]',
        model        text,
        shown        bigint NOT NULL DEFAULT 0,
        cited        bigint NOT NULL DEFAULT 0,
        helped       bigint NOT NULL DEFAULT 0,
        hurt         bigint NOT NULL DEFAULT 0,
        version      integer NOT NULL DEFAULT 1,
        created_at   timestamptz NOT NULL,
        updated_at   timestamptz NOT NULL,
        last_used_at timestamptz,
        metadata     jsonb NOT NULL DEFAULT '{}',
        embedding    vector,
        topic_key    text COLLATE "C" GENERATED ALWAYS AS
                     (lower(btrim(regexp_replace(topic, '\s+', ' ', 'g')))) STORED,
        document     tsvector GENERATED ALWAYS AS (to_tsvector('simple'::regconfig,
                     replace(name, '_', ' ') || ' ' || instruction || ' ' || coalesce(topic, ''))) STORED,
        UNIQUE (namespace, name)
    );
    CREATE INDEX behaviors_by_topic ON behaviors (namespace, topic_key);
    CREATE INDEX behaviors_document ON behaviors USING gin (document);

    CREATE TABLE traces (
        id                  text COLLATE "C" PRIMARY KEY,
        namespace           text COLLATE "C" NOT NULL,
        task                text NOT NULL,
        topic               text,
        answer              text,
        outcome             text NOT NULL,
        score               double precision,
        feedback            text,
        shown               jsonb NOT NULL DEFAULT '[]',
        cited               jsonb NOT NULL DEFAULT '[]',
        reflection_status   text NOT NULL,
        reflection_error    text,
        reflection_attempts integer NOT NULL DEFAULT 0,
        claimed_at          timestamptz,
        claimed_by          text,
        minted              jsonb NOT NULL DEFAULT '[]',
        metadata            jsonb NOT NULL DEFAULT '{}',
        created_at          timestamptz NOT NULL,
        finished_at         timestamptz
    );
    CREATE INDEX traces_claimable ON traces (created_at, id) WHERE reflection_status IN ('pending', 'running');
    CREATE INDEX traces_by_status ON traces (reflection_status, created_at);
    CREATE INDEX traces_newest ON traces (namespace, created_at DESC, id);

    CREATE TABLE steps (
        trace_id text COLLATE "C" NOT NULL REFERENCES traces (id) ON DELETE CASCADE,
        idx      integer NOT NULL,
        data     text NOT NULL,
        PRIMARY KEY (trace_id, idx)
    );

    CREATE TABLE namespace_versions (
        namespace text COLLATE "C" PRIMARY KEY,
        version   bigint NOT NULL
    );

    CREATE TABLE meta (
        key   text PRIMARY KEY,
        value text NOT NULL
    );
    """,
    # 2: the change feed (``postgres_feed``): which behaviors each write touched (the token that moved,
    # the ids, whether deleted), and feed_floor: the oldest token it reaches back to
    """
    CREATE TABLE behavior_changes (
        namespace   text COLLATE "C" NOT NULL,
        token       bigint NOT NULL,
        behavior_id text COLLATE "C" NOT NULL,
        deleted     boolean NOT NULL,
        PRIMARY KEY (namespace, token, behavior_id)
    );
    ALTER TABLE namespace_versions ADD COLUMN feed_floor bigint NOT NULL DEFAULT 0;
    UPDATE namespace_versions SET feed_floor = version;
    """,
]


def hnsw_index_name(dims: int) -> str:
    return f"behaviors_hnsw_{int(dims)}"


def hnsw_index_sql(dims: int, *, m: int = 16, ef_construction: int = 64) -> str:
    """The partial HNSW (cosine) index over the vectors of ``dims`` dimensions.

    ``m`` and ``ef_construction`` are the graph's build parameters (``HnswSettings``); an index
    that exists keeps the ones it was built with.
    """
    d = int(dims)
    return (
        f"CREATE INDEX IF NOT EXISTS {hnsw_index_name(d)} ON behaviors "
        f"USING hnsw ((embedding::vector({d})) vector_cosine_ops) WITH (m = {int(m)}, "
        f"ef_construction = {int(ef_construction)}) WHERE vector_dims(embedding) = {d}"
    )
