"""``TraceSpool``: where a finished trace waits when the store cannot take it within the write budget.

The agent must never wait on another process's write lock, and no trace may be dropped. So the
hot path writes with a budget (``store.write_budget_s``); past it, the trace goes here: a folder
beside the store with one JSON file per trace, each written to a temporary name and renamed, so a
crash leaves either the whole trace or nothing. Files are only added here and removed once the
trace is in the store; draining is idempotent (a trace already stored is not counted again), so
two processes draining at once do no harm.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from ..types import Trace, new_id

__all__ = ["SpoolDrainer", "TraceSpool"]

log = logging.getLogger(__name__)

_SUFFIX = ".trace.json"


class TraceSpool:
    """A folder of traces waiting to be written to the store (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"TraceSpool({str(self.path)!r})"

    def append(self, trace: Trace) -> Path:
        """Write ``trace`` durably into the spool and return its file."""
        self.path.mkdir(parents=True, exist_ok=True)
        final = self.path / f"{trace.id}{_SUFFIX}"
        temporary = self.path / f".{trace.id}.{new_id()}.tmp"
        data = trace.model_dump_json().encode("utf-8")
        with open(temporary, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, final)
        return final

    def __len__(self) -> int:
        return sum(1 for _ in self._files())

    def _files(self) -> Iterator[Path]:
        if not self.path.is_dir():
            return iter(())
        return iter(sorted(self.path.glob(f"*{_SUFFIX}")))

    def drain(self, write: Callable[[Trace], object]) -> int:
        """Hand each waiting trace to ``write`` (oldest file name order) and remove it once written.

        Stops at the first trace ``write`` cannot take (the store is still busy) and leaves it and
        the rest for the next drain. A file that is not a trace is set aside as ``*.bad``, with a
        log line, never deleted. Returns how many traces were written.
        """
        written = 0
        for file in self._files():
            try:
                trace = Trace.model_validate_json(file.read_bytes())
            except FileNotFoundError:  # another process drained it meanwhile
                continue
            except ValueError:
                log.error("spooled trace file %s is not a trace; kept as %s.bad", file, file.name)
                file.replace(file.with_name(file.name + ".bad"))
                continue
            try:
                write(trace)
            except Exception as exc:
                log.info("spooled trace %s still cannot be written (%s); it waits", trace.id, exc)
                break
            file.unlink(missing_ok=True)
            written += 1
        return written


class SpoolDrainer:
    """A daemon thread that drains a spool until it is empty, retrying every ``interval_s``.

    Started when a trace is spooled and when a process finds a spool left by another; it ends on
    its own once the spool is empty, so an idle process keeps no thread.
    """

    def __init__(self, drain: Callable[[], int], pending: Callable[[], int], *, interval_s: float = 2.0) -> None:
        self._drain, self._pending, self.interval_s = drain, pending, interval_s
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="bmem-spool-drainer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._drain()
                if self._pending() == 0:
                    return
            except Exception:  # the store is gone for now; the spool keeps the traces
                log.warning("draining the trace spool failed; retrying", exc_info=True)
            self._stop.wait(self.interval_s)
