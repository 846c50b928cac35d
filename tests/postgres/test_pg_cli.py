"""The configuration of the PostgreSQL store, ``bmem store copy`` and ``bmem worker`` against a real server."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from behavior_memory import _wiring
from behavior_memory.cli.main import cli
from behavior_memory.config.settings import load_config_text
from behavior_memory.errors import ConfigError, MissingDependencyError
from behavior_memory.store.postgres import PostgresStore, redact_dsn
from behavior_memory.store.sqlite import SQLiteStore
from behavior_memory.types import Behavior, ReflectionStatus, Step, Trace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
from fake_openai import FakeOpenAI

T0 = datetime(2025, 1, 1, tzinfo=UTC)


# --- configuration ------------------------------------------------------------------------------
def test_postgres_without_a_dsn_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"store\.dsn is not set"):
        load_config_text("store:\n  backend: postgres\n")


def test_the_dsn_comes_from_the_environment_and_the_spool_from_the_data_dir(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    config = load_config_text(
        "store:\n  backend: postgres\n  dsn: ${BMEM_PG_DSN}\n  pool_size: 3\n", env={"BMEM_PG_DSN": pg_dsn}
    )
    store = _wiring.build_store(config)
    assert isinstance(store, PostgresStore) and store.dsn == pg_dsn
    book = _wiring.build_tracebook(config, store, "default")
    assert book.spool is not None and book.spool.path.parent == tmp_path / "behavior-memory" / "spool"
    assert book.spool.path.name.startswith("pg-")
    store.close()


def test_a_missing_extra_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg_pool", None)
    config = load_config_text("store: {backend: postgres, dsn: 'postgresql://u@h/db'}\n")
    with pytest.raises(MissingDependencyError, match=r'pip install "behavior-memory\[postgres\]"'):
        _wiring.build_store(config)


def test_passwords_stay_out_of_messages() -> None:
    assert "s3cret" not in redact_dsn("postgresql://bmem:s3cret@db.internal:5432/handbook")
    assert "s3cret" not in repr(PostgresStore("postgresql://bmem:s3cret@127.0.0.1:1/x", connect_timeout_s=1))


# --- bmem store copy ----------------------------------------------------------------------------
def _handbook(path: Path) -> SQLiteStore:
    store = SQLiteStore(path)
    rng = np.random.default_rng(3)
    for ns in ("default", "acme/bot"):
        for i in range(30):
            b = Behavior(
                name=f"behavior_b{i:02d}",
                instruction=f"do step {i}",
                namespace=ns,
                topic="t" if i % 2 else None,
                tags=["x", str(i)],
                pinned=i == 3,
                sources=[f"{i:032x}"],
                metadata={"history": [{"to": "active", "by": "alice"}], "n": i},
            )
            vector = rng.standard_normal(8).astype(np.float32) if i % 5 else None
            store.put_behavior(b, vector)
        store.increment(ns, ["behavior_b01", "behavior_b02"], "shown", 7)
        store.increment(ns, ["behavior_b02"], "helped", 2)
        b = store.get_behavior(ns, "behavior_b04")
        store.update_behavior(b.model_copy(update={"instruction": "edited"}))
        for i in range(12):
            steps = [Step(kind="model", messages=[{"role": "user", "content": "q"}], output=f"a{i}")]
            store.put_trace(Trace(task=f"t{i}", namespace=ns, steps=steps, created_at=T0 + timedelta(minutes=i)))
    store.claim_pending_traces(2)  # running traces arrive pending
    store.set_meta("embedder", "hashing:8")
    return store


def test_copy_sqlite_to_postgres_and_back_keeps_everything(pg_dsn: str, tmp_path: Path) -> None:
    source = _handbook(tmp_path / "a.db")
    runner = CliRunner()
    result = runner.invoke(cli, ["store", "copy", str(tmp_path / "a.db"), pg_dsn])
    assert result.exit_code == 0, result.output
    assert "copied 60 behaviors, 24 traces and 1 meta keys" in result.output and "verified" in result.output
    again = runner.invoke(cli, ["store", "copy", str(tmp_path / "a.db"), pg_dsn])
    assert again.exit_code == 1 and "not empty" in again.output and "nothing was written" in again.output
    forced = runner.invoke(cli, ["store", "copy", "--force", str(tmp_path / "a.db"), pg_dsn])
    assert forced.exit_code == 0, forced.output
    back = runner.invoke(cli, ["store", "copy", pg_dsn, str(tmp_path / "b.db")])
    assert back.exit_code == 0, back.output
    copy = SQLiteStore(tmp_path / "b.db")
    for ns in ("default", "acme/bot"):
        assert copy.list_behaviors(ns) == source.list_behaviors(ns)  # counters, versions, metadata, times
        ids, matrix = source.vectors(ns)
        ids2, matrix2 = copy.vectors(ns)
        assert ids == ids2 and np.array_equal(matrix, matrix2)
        for t in source.list_traces(ns, limit=100):
            original, copied = source.get_trace(t.id), copy.get_trace(t.id)
            if original.reflection_status == ReflectionStatus.RUNNING:
                assert copied.reflection_status == ReflectionStatus.PENDING
                original.reflection_status = ReflectionStatus.PENDING
            assert copied == original
    assert copy.get_meta("embedder") == "hashing:8"


# --- bmem worker --------------------------------------------------------------------------------
def _worker_config(tmp_path: Path, dsn: str, fake: FakeOpenAI) -> Path:
    config = {
        "store": {"backend": "postgres", "dsn": dsn},
        "embeddings": {"provider": "hashing"},
        "llm": {"base_url": fake.url, "model": "fake-model", "timeout_s": 60, "max_retries": 0},
        "reflection": {"mode": "manual", "concurrency": 2},
        "curation": {"dedup_threshold": 0.99, "approval": "auto"},
    }
    path = tmp_path / "behavior-memory.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _start_worker(config: Path, *extra: str) -> subprocess.Popen[str]:
    bmem = Path(sys.executable).parent / "bmem"
    return subprocess.Popen(
        [str(bmem), "-c", str(config), "worker", "--idle-s", "60", "--grace-s", "0.5", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_workers_reflect_each_trace_once_wake_on_notify_and_give_back_claims(pg_dsn: str, tmp_path: Path) -> None:
    store = PostgresStore(pg_dsn)
    with FakeOpenAI() as fake:
        config = _worker_config(tmp_path, pg_dsn, fake)
        store.put_traces([Trace(task=f"problem {i}", created_at=T0 + timedelta(seconds=i)) for i in range(16)])
        workers = [_start_worker(config), _start_worker(config)]
        try:
            assert _wait(lambda: store.count_traces(status=ReflectionStatus.DONE) == 16, 60)
            # idle now (--idle-s 60): only a notification can make a worker look again this soon
            time.sleep(1.0)
            store.save_trace(Trace(task="late problem"))
            assert _wait(lambda: store.count_traces(status=ReflectionStatus.DONE) == 17, 5)
            traces = store.list_traces(limit=100)
            assert all(t.reflection_attempts == 1 for t in traces)  # each claimed once, by one worker
            assert store.count_behaviors() == 17  # one behavior per trace, none minted twice
            fake.answer_delay_s = 4.0  # a slow model: the next traces stay claimed while the workers stop
            store.put_traces([Trace(task=f"slow {i}") for i in range(2)])
            assert _wait(lambda: store.count_traces(status=ReflectionStatus.RUNNING) == 2, 10)
        finally:
            for w in workers:  # both at once: a worker still running would claim what the other gives back
                w.send_signal(signal.SIGTERM)
            outputs = [w.communicate(timeout=30)[0] for w in workers]
        assert all(w.returncode == 0 for w in workers), outputs
        assert sum(int(o.rsplit("released ", 1)[1].split()[0]) for o in outputs) == 2, outputs
        pending = store.list_traces(status=ReflectionStatus.PENDING)
        assert len(pending) == 2 and all(t.reflection_attempts == 0 for t in pending)
    store.close()
