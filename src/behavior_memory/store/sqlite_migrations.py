"""Ordered schema migrations of the SQLite handbook; ``PRAGMA user_version`` records how many ran.

Append a new script to ``MIGRATIONS`` to change the schema; never edit one that has shipped.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: behaviors (with their vectors), traces and their steps, per-namespace change counters
    """
    CREATE TABLE behaviors (
        id          TEXT PRIMARY KEY,
        namespace   TEXT NOT NULL,
        name        TEXT NOT NULL,
        instruction TEXT NOT NULL,
        topic       TEXT,
        tags        TEXT NOT NULL DEFAULT '[]',
        status      TEXT NOT NULL,
        pinned      INTEGER NOT NULL DEFAULT 0,
        sources     TEXT NOT NULL DEFAULT '[]',
        model       TEXT,
        shown       INTEGER NOT NULL DEFAULT 0,
        cited       INTEGER NOT NULL DEFAULT 0,
        helped      INTEGER NOT NULL DEFAULT 0,
        hurt        INTEGER NOT NULL DEFAULT 0,
        version     INTEGER NOT NULL DEFAULT 1,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        vector      BLOB,
        UNIQUE (namespace, name)
    );
    CREATE INDEX behaviors_by_topic ON behaviors (namespace, topic);

    CREATE TABLE traces (
        id                  TEXT PRIMARY KEY,
        namespace           TEXT NOT NULL,
        task                TEXT NOT NULL,
        topic               TEXT,
        answer              TEXT,
        outcome             TEXT NOT NULL,
        score               REAL,
        feedback            TEXT,
        shown               TEXT NOT NULL DEFAULT '[]',
        cited               TEXT NOT NULL DEFAULT '[]',
        reflection_status   TEXT NOT NULL,
        reflection_error    TEXT,
        reflection_attempts INTEGER NOT NULL DEFAULT 0,
        claimed_at          REAL,
        minted              TEXT NOT NULL DEFAULT '[]',
        metadata            TEXT NOT NULL DEFAULT '{}',
        created_at          TEXT NOT NULL,
        finished_at         TEXT
    );
    CREATE INDEX traces_by_status ON traces (reflection_status, created_at);
    CREATE INDEX traces_by_namespace ON traces (namespace, created_at);

    CREATE TABLE steps (
        trace_id TEXT NOT NULL REFERENCES traces (id) ON DELETE CASCADE,
        idx      INTEGER NOT NULL,
        data     TEXT NOT NULL,
        PRIMARY KEY (trace_id, idx)
    );

    CREATE TABLE namespace_versions (
        namespace TEXT PRIMARY KEY,
        version   INTEGER NOT NULL
    );

    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 2: review and lifecycle per behavior (guard verdicts, approvals, status history; last use),
    # and the index that serves "newest traces first" without sorting a namespace's every trace
    """
    ALTER TABLE behaviors ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE behaviors ADD COLUMN last_used_at TEXT;
    CREATE INDEX traces_newest ON traces (namespace, created_at DESC, id);
    """,
    # 3: the change feed (which behaviors each write touched, so retrieval applies changes instead of
    # rebuilding); feed_floor: the oldest token the feed still reaches back to. Namespaces written
    # before this migration start with an empty feed: followers older than now rebuild once.
    """
    CREATE TABLE behavior_changes (
        namespace   TEXT NOT NULL,
        token       INTEGER NOT NULL,
        behavior_id TEXT NOT NULL,
        deleted     INTEGER NOT NULL,
        PRIMARY KEY (namespace, token, behavior_id)
    ) WITHOUT ROWID;
    ALTER TABLE namespace_versions ADD COLUMN feed_floor INTEGER NOT NULL DEFAULT 0;
    UPDATE namespace_versions SET feed_floor = version;
    """,
    # 4: "newest traces first" across every namespace (bmem traces list --all-namespaces) without
    # sorting them all: 15 ms at 100k traces before, well under 1 ms after
    """
    CREATE INDEX traces_all_newest ON traces (created_at DESC, id);
    """,
    # 5: retrieval's columns of a namespace without reading the table's pages (each holds a vector):
    # a covering index, so a process that opens a large handbook reads a third as much
    """
    CREATE INDEX behaviors_retrieval ON behaviors (namespace, status, id, name, instruction, topic, pinned);
    """,
]
