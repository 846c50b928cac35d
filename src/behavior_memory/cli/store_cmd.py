"""``bmem store migrate|copy``: the handbook's schema, and moving a handbook between SQLite and PostgreSQL.

``copy SRC DST`` moves everything a handbook holds (behaviors with their vectors, metadata,
counters, versions and timestamps; traces with their steps; meta such as the embedder's name) and
then verifies it: per namespace the same behaviors with the same counters and versions, and the
same traces. SRC and DST are each a SQLite file or a PostgreSQL DSN (``postgresql://...`` or
``host=... dbname=...``). A destination that already holds anything is refused unless ``--force``
(then records with the same id are replaced). A trace that was being reflected in SRC arrives
pending: its claim belonged to a process of the old store.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import InvalidInputError, NotFoundError, StoreError
from .context import CliContext, pass_ctx

if TYPE_CHECKING:
    from ..store.base import HandbookStore

__all__ = ["CopyReport", "copy_handbook", "open_store", "store"]

_BATCH = 500
_ALL = 1 << 62  # "no limit" for list_traces


def is_dsn(spec: str) -> bool:
    """True when ``spec`` names a PostgreSQL database rather than a SQLite file."""
    return spec.startswith(("postgresql://", "postgres://")) or (("=" in spec and "dbname" in spec) or "host=" in spec)


def open_store(spec: str, *, must_exist: bool = False) -> HandbookStore:
    """The store ``spec`` names: a PostgreSQL DSN, else a SQLite file (``must_exist``: refuse a missing one)."""
    if is_dsn(spec):
        from .._optional import require

        require("psycopg", "postgres", what="a PostgreSQL handbook")
        from ..store.postgres import PostgresStore

        pg = PostgresStore(spec, listen=False, pool_size=2)
        pg.migrate()  # unreachable: the error now, not at the first read
        return pg
    from ..store.sqlite import SQLiteStore

    path = Path(spec).expanduser()
    if must_exist and not path.is_file():
        raise InvalidInputError(f"{path} is not a handbook file (nothing to copy from)")
    return SQLiteStore(path)


def meta_items(st: HandbookStore) -> dict[str, str]:
    """Every meta key of a SQLite or PostgreSQL handbook (the contract reads keys one at a time)."""
    items = getattr(st, "meta_items", None)
    if callable(items):
        return dict(items())
    path = getattr(st, "path", None)
    if isinstance(path, Path):
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            return {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}
    return {}


@dataclass
class CopyReport:
    """What ``copy_handbook`` moved, per namespace, and what the verification found."""

    behaviors: dict[str, int] = field(default_factory=dict)
    vectors: dict[str, int] = field(default_factory=dict)
    traces: dict[str, int] = field(default_factory=dict)
    meta: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _traces(src: HandbookStore, namespace: str) -> Iterator[Any]:
    from ..types import ReflectionStatus

    for listed in src.list_traces(namespace, limit=_ALL):
        trace = src.get_trace(listed.id)
        if trace.reflection_status == ReflectionStatus.RUNNING:  # the claim belonged to the old store
            trace.reflection_status = ReflectionStatus.PENDING
        yield trace


def copy_handbook(
    src: HandbookStore, dst: HandbookStore, *, force: bool = False, progress: Callable[[str, int], None] | None = None
) -> CopyReport:
    """Copy every namespace of ``src`` into ``dst``, then verify; ``progress(kind, n)`` hears of each batch."""
    if not force and (dst.count_behaviors() or dst.count_traces()):
        raise InvalidInputError(
            f"the destination {dst!r} is not empty ({dst.count_behaviors()} behaviors, {dst.count_traces()} traces); "
            "nothing was written (--force copies into it, replacing records with the same id)"
        )
    bulk = getattr(dst, "bulk_load", None)
    with bulk() if callable(bulk) else contextlib.nullcontext():
        report = _copy(src, dst, force=force, progress=progress)
    report.problems = verify_copy(src, dst, exact=not force)
    return report


def _copy(
    src: HandbookStore, dst: HandbookStore, *, force: bool, progress: Callable[[str, int], None] | None
) -> CopyReport:
    report = CopyReport()
    for key, value in meta_items(src).items():
        dst.set_meta(key, value)
        report.meta += 1
    for namespace in src.namespaces():
        behaviors = src.list_behaviors(namespace)
        ids, matrix = src.vectors(namespace)
        vector_of = {bid: matrix[i] for i, bid in enumerate(ids)}
        for start in range(0, len(behaviors), _BATCH):
            batch = behaviors[start : start + _BATCH]
            if force:
                for b in batch:
                    for key in (b.id, b.name):
                        try:
                            dst.delete_behavior(namespace, key)
                        except NotFoundError:
                            pass
            dst.put_behaviors([(b, vector_of.get(b.id)) for b in batch])
            if progress:
                progress("behaviors", len(batch))
        report.behaviors[namespace], report.vectors[namespace] = len(behaviors), len(ids)
        count, pending = 0, []
        put_many = getattr(dst, "put_traces", None)
        for trace in _traces(src, namespace):
            pending.append(trace)
            if len(pending) >= _BATCH:
                count += _flush(dst, pending, put_many, progress)
        count += _flush(dst, pending, put_many, progress)
        report.traces[namespace] = count
    return report


def _flush(dst: HandbookStore, pending: list[Any], put_many: Any, progress: Callable[[str, int], None] | None) -> int:
    n = len(pending)
    if callable(put_many):
        put_many(pending)
    else:
        for trace in pending:
            dst.put_trace(trace)
    pending.clear()
    if progress and n:
        progress("traces", n)
    return n


def verify_copy(src: HandbookStore, dst: HandbookStore, *, exact: bool = True) -> list[str]:
    """Differences between ``src`` and (what was copied into) ``dst``; empty when the copy is whole."""
    problems = []
    fields = ("name", "instruction", "status", "pinned", "shown", "cited", "helped", "hurt", "version", "metadata")
    for namespace in src.namespaces():
        theirs = {b.id: b for b in dst.list_behaviors(namespace)}
        mine = src.list_behaviors(namespace)
        if exact and len(theirs) != len(mine):
            problems.append(f"{namespace}: {len(mine)} behaviors in the source, {len(theirs)} in the destination")
        for b in mine:
            other = theirs.get(b.id)
            if other is None:
                problems.append(f"{namespace}: behavior {b.name} missing")
            elif any(getattr(b, f) != getattr(other, f) for f in fields):
                problems.append(f"{namespace}: behavior {b.name} differs")
        if len(src.vectors(namespace)[0]) != len(dst.vectors(namespace)[0]) and exact:
            problems.append(f"{namespace}: vector counts differ")
        counts = (src.count_traces(namespace), dst.count_traces(namespace))
        if counts[0] != counts[1] if exact else counts[0] > counts[1]:
            problems.append(f"{namespace}: {counts[0]} traces in the source, {counts[1]} in the destination")
    return problems[:50]


@click.group()
def store() -> None:
    """Migrate a handbook's schema, or copy a handbook between SQLite and PostgreSQL."""


@store.command()
@click.argument("target", required=False)
@pass_ctx
def migrate(obj: CliContext, target: str | None) -> None:
    """Bring a handbook's schema up to date (default: the configured store)."""
    from .. import _wiring

    opened = open_store(target) if target else _wiring.build_store(obj.config())
    try:
        version = getattr(opened, "schema_version", None)
        if callable(getattr(opened, "migrate", None)):
            opened.migrate()  # type: ignore[attr-defined]
        number = version() if callable(version) else _sqlite_version(opened)
        obj.console.print(f"{opened!r}: schema version {number}, up to date")
    finally:
        opened.close()


def _sqlite_version(opened: HandbookStore) -> int | str:
    path = getattr(opened, "path", None)
    if not isinstance(path, Path):
        return "?"
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


@store.command()
@click.argument("src")
@click.argument("dst")
@click.option("--force", is_flag=True, help="Copy into a destination that is not empty (same ids are replaced).")
@pass_ctx
def copy(obj: CliContext, src: str, dst: str, force: bool) -> None:
    """Copy a handbook with its traces from SRC to DST (each a SQLite file or a postgresql:// DSN)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    source = open_store(src, must_exist=True)
    try:
        target = open_store(dst)
        try:
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*columns, console=obj.err) as bar:
                tasks = {
                    "behaviors": bar.add_task("behaviors", total=source.count_behaviors()),
                    "traces": bar.add_task("traces", total=source.count_traces()),
                }

                def advance(kind: str, n: int) -> None:
                    bar.update(tasks[kind], advance=n)

                report = copy_handbook(source, target, force=force, progress=advance)
            for namespace in sorted(report.behaviors):
                obj.console.print(
                    f"{namespace}: {report.behaviors[namespace]} behaviors ({report.vectors[namespace]} with vectors), "
                    f"{report.traces[namespace]} traces"
                )
            if not report.ok:
                raise StoreError("the copy does not match its source: " + "; ".join(report.problems))
            obj.console.print(
                f"copied {sum(report.behaviors.values())} behaviors, {sum(report.traces.values())} traces and "
                f"{report.meta} meta keys from {source!r} to {target!r}; verified"
            )
        finally:
            target.close()
    finally:
        source.close()
