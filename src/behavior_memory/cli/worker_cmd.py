"""``bmem worker``: a standalone reflection worker in the foreground, for as many machines as you like.

It claims pending traces of every namespace (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so workers on
many machines never share one), reflects them with the configured model, and sleeps when there is
nothing to do: woken at once by LISTEN/NOTIFY on PostgreSQL, by polling every ``--idle-s`` on SQLite.
SIGTERM or SIGINT stops it cleanly: the traces it still holds go back to pending (their attempt
returned) instead of waiting out their lease; a worker killed with SIGKILL leaves them to the lease.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

import click

from .context import CliContext, pass_ctx

__all__ = ["worker"]


@click.command()
@click.option("--concurrency", "-j", type=int, help="Traces reflected at once (default: reflection.concurrency).")
@click.option("--lease-s", type=float, help="A claim older than this is taken over (default: reflection.lease_s).")
@click.option("--idle-s", type=float, default=5.0, show_default=True, help="Poll interval when nothing wakes it.")
@click.option(
    "--grace-s",
    type=float,
    default=30.0,
    show_default=True,
    help="On SIGTERM/SIGINT, how long reflections under way may take to finish before their traces are released.",
)
@click.option("--max-runtime-s", type=float, help="Stop by itself after this long (benches, batch jobs).")
@pass_ctx
def worker(
    obj: CliContext,
    concurrency: int | None,
    lease_s: float | None,
    idle_s: float,
    grace_s: float,
    max_runtime_s: float | None,
) -> None:
    """Run a reflection worker in the foreground until SIGTERM or Ctrl-C."""
    from .. import _wiring
    from ..reflection.worker import ReflectionWorker
    from ..store.claims import ClaimTracker, PendingTraceEvents

    config = obj.config()
    store = _wiring.build_store(config)
    tracker = ClaimTracker(store)
    llm = None
    stop = threading.Event()
    previous = _on_signals(lambda: stop.set())
    try:
        embedder = _wiring.build_embedder(config)
        _wiring.build_handbook(tracker.as_store(), embedder, config.namespace).ensure_embedder()
        llm = _wiring.build_llm(config)
        service = _wiring.build_reflection(config, tracker.as_store(), embedder, llm)
        width = concurrency or config.reflection.concurrency
        lease = lease_s or config.reflection.lease_s
        runner = ReflectionWorker(service, concurrency=width, lease_s=lease, idle_s=idle_s)
        unsubscribe = store.on_pending_traces(runner.notify) if isinstance(store, PendingTraceEvents) else None
        wake = "LISTEN/NOTIFY" if unsubscribe is not None else f"polling every {idle_s:g} s"
        obj.err.print(
            f"worker reflecting the traces of {store!r} (concurrency {width}, lease {lease:g} s, woken by {wake}); "
            "Ctrl-C or SIGTERM stops it"
        )
        runner.start()
        deadline = None if max_runtime_s is None else time.monotonic() + max_runtime_s
        while not stop.wait(0.5):
            if deadline is not None and time.monotonic() >= deadline:
                break
        obj.err.print("stopping: waiting for the reflections under way")
        runner.stop(timeout=grace_s)
        if unsubscribe is not None:
            unsubscribe()
        released = tracker.release()
        stats = service.stats
        obj.console.print(
            f"worker stopped: reflected {stats['reflected']}, added {stats['added']}, merged {stats['merged']}, "
            f"failed {stats['failed']}, waited for the model {stats['server_down']}; "
            f"released {released} claimed trace(s) back to pending"
        )
    finally:
        _restore(previous)
        if llm is not None:
            llm.close()
        store.close()
    if previous and _lingering():
        # A reflection still waits on the model: its trace was given back above, so nothing is lost by
        # not waiting for it (the interpreter would join its thread at exit, for as long as the model takes).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _lingering() -> bool:
    main = threading.main_thread()
    return any(t is not main and not t.daemon and t.is_alive() for t in threading.enumerate())


def _on_signals(handler: Any) -> dict[int, Any]:
    """Route SIGTERM and SIGINT to ``handler``; returns the handlers to restore."""
    if threading.current_thread() is not threading.main_thread():  # CliRunner in a thread: no signals
        return {}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        handler()

    return {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}


def _restore(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
