"""Background threads that may be inside native code (an embedding model, usearch) when the process ends.

Such a thread must not still be running while the interpreter tears down: a daemon thread caught in
native code then aborts the whole process ("terminate called without an active exception", exit
-6), after the user's program has already finished. Threads started here are daemons (a hung
store never keeps a process alive for ever) but are joined, for a bounded time, at exit; long
loops check ``stopping()`` and end early.

Any other thread (the reflection worker, a pool) enters native code through ``native_call()``: at
exit the process waits for the calls under way to return, and a call that would start afterwards
raises ``ProcessExiting`` instead.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["EXIT_JOIN_S", "ProcessExiting", "native_call", "start_background", "stopping"]

#: How long the process waits at exit for each background thread still running.
EXIT_JOIN_S = 10.0

_STOPPING = threading.Event()
_THREADS: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
_NATIVE = threading.Condition()
_native_calls = 0


class ProcessExiting(RuntimeError):
    """A native call was refused because the process is exiting."""


def start_background(target: Callable[[], object], name: str) -> threading.Thread:
    """Start ``target`` in a daemon thread that the process waits for (bounded) at exit."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    _THREADS.add(thread)
    thread.start()
    return thread


def stopping() -> bool:
    """True once the process is exiting: a long background loop should end."""
    return _STOPPING.is_set()


@contextmanager
def native_call() -> Iterator[None]:
    """Run a call into native code that the process must let finish before it exits."""
    global _native_calls
    with _NATIVE:
        if _STOPPING.is_set():
            raise ProcessExiting("the process is exiting")
        _native_calls += 1
    try:
        yield
    finally:
        with _NATIVE:
            _native_calls -= 1
            _NATIVE.notify_all()


@atexit.register
def _join_at_exit() -> None:
    with _NATIVE:
        _STOPPING.set()
        _NATIVE.wait_for(lambda: _native_calls == 0, timeout=EXIT_JOIN_S)
    for thread in list(_THREADS):
        if thread is not threading.current_thread():
            thread.join(timeout=EXIT_JOIN_S)
