"""``ChangeListener``: one connection per store that LISTENs, so nobody asks the database what did not change.

Every write to a namespace's behaviors bumps its change token and, in the same transaction,
NOTIFYs ``<channel>`` with ``version<TAB>namespace``; a trace that becomes pending NOTIFYs
``<channel>_traces``. PostgreSQL delivers a notification when (and only if) its transaction
commits, in commit order. The listener thread keeps the newest token it heard of per namespace, so
``change_token`` is a dictionary lookup while the listener is connected; when its connection drops
the tokens it kept are forgotten (a notification may have been missed) and the store asks the
database until it is back. Callbacks registered with ``on_traces`` (idle reflection workers) run
for each trace notification.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

__all__ = ["ChangeListener"]

log = logging.getLogger(__name__)

_PING_S = 5.0  # a silent connection is probed this often, so a half-open one is noticed
_POLL_S = 0.25  # how soon the thread notices stop(): close() must not wait long


class ChangeListener:
    """A daemon thread holding a LISTEN connection (see the module docstring)."""

    def __init__(self, conninfo: str, channel: str, **kwargs: Any) -> None:
        self.conninfo, self.channel, self.kwargs = conninfo, channel, kwargs
        self._tokens: dict[str, int] = {}
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self._connected = False
        self._generation = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bmem-pg-listener", daemon=True)
        self.notifications = 0  # how many arrived (tests, stats)

    def start(self, wait_s: float = 0.0) -> None:
        self._thread.start()
        if wait_s:
            self._ready.wait(wait_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    @property
    def connected(self) -> bool:
        return self._connected

    # --- the token cache ------------------------------------------------------------------------
    def token(self, namespace: str) -> tuple[int | None, int]:
        """``(cached token or None, generation)``; pass the generation back to ``remember``."""
        with self._lock:
            if not self._connected:
                return None, -1
            return self._tokens.get(namespace), self._generation

    def remember(self, namespace: str, token: int, generation: int) -> None:
        """Keep a token read from the database, when the listener was connected all along since."""
        with self._lock:
            if self._connected and generation == self._generation:
                self._tokens[namespace] = max(self._tokens.get(namespace, 0), token)

    def wrote(self, namespace: str, token: int) -> None:
        """This process committed ``token``: its own reads see it at once, before the notification."""
        with self._lock:
            if self._connected:
                self._tokens[namespace] = max(self._tokens.get(namespace, 0), token)

    def on_traces(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` whenever a trace becomes pending anywhere; returns the unsubscribe function."""
        with self._lock:
            self._callbacks.append(callback)

        def unsubscribe() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return unsubscribe

    # --- the thread -------------------------------------------------------------------------------
    def _set_connected(self, value: bool) -> None:
        with self._lock:
            self._connected = value
            self._tokens.clear()
            self._generation += 1

    def _run(self) -> None:
        delay = 0.2
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, **{**self.kwargs, "autocommit": True}) as conn:
                    conn.execute(f'LISTEN "{self.channel}"')
                    conn.execute(f'LISTEN "{self.channel}_traces"')
                    self._set_connected(True)
                    self._ready.set()
                    delay = 0.2
                    log.debug("listening on %s", self.channel)
                    self._listen(conn)
            except psycopg.Error as exc:
                if not self._stop.is_set():
                    log.info("change listener lost its connection (%s); retrying in %.1f s", exc, delay)
            except Exception:  # never let the thread die: without it every change_token is a query
                log.exception("change listener failed; restarting it in %.1f s", delay)
            finally:
                if self._connected:
                    self._set_connected(False)
                self._ready.set()  # start(wait_s) must not wait for a server that is down
            self._stop.wait(delay)
            delay = min(delay * 2, 5.0)

    def _listen(self, conn: psycopg.Connection[Any]) -> None:
        silent_since = time.monotonic()
        while not self._stop.is_set():
            for note in conn.notifies(timeout=_POLL_S, stop_after=64):
                silent_since = time.monotonic()
                self._handle(note)
            if time.monotonic() - silent_since >= _PING_S:
                conn.execute("SELECT 1")  # raises when the server went away without a word
                silent_since = time.monotonic()

    def _handle(self, note: psycopg.Notify) -> None:
        self.notifications += 1
        if note.channel == self.channel:
            version, _, namespace = note.payload.partition("\t")
            with self._lock:
                self._tokens[namespace] = max(self._tokens.get(namespace, 0), int(version))
            return
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback()
            except Exception:  # a subscriber's bug must not stop the listener
                log.exception("a trace-notification callback failed")
