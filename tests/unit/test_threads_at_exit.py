"""A process waits, at exit, for native calls under way in daemon threads (else it aborts with -6)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from behavior_memory import _threads


def _run(source: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(source)], capture_output=True, text=True, timeout=60)


def test_exit_waits_for_a_native_call_under_way_in_a_daemon_thread():
    done = _run(
        """
        import threading, time
        from behavior_memory._threads import native_call
        entered = threading.Event()
        def work():
            with native_call():
                entered.set()
                time.sleep(0.5)
                print("native call finished", flush=True)
        threading.Thread(target=work, daemon=True).start()
        entered.wait()
        print("main ends", flush=True)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["main ends", "native call finished"]


def test_a_native_call_starting_during_exit_is_refused():
    done = _run(
        """
        import atexit
        def late():
            from behavior_memory._threads import native_call, ProcessExiting
            try:
                with native_call():
                    print("ran")
            except ProcessExiting as exc:
                print("refused:", exc)
        atexit.register(late)  # registered first, so it runs last (atexit is last-in, first-out)
        import behavior_memory._threads
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "refused: the process is exiting"


def test_exit_joins_background_threads_and_tells_them_to_stop():
    done = _run(
        """
        import time
        from behavior_memory._threads import start_background, stopping
        def loop():
            while not stopping():
                time.sleep(0.01)
            print("loop saw the exit", flush=True)
        start_background(loop, "test-loop")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "loop saw the exit"


def test_native_call_in_a_live_process_runs_the_body():
    if _threads.stopping():
        pytest.skip("this interpreter is exiting")
    with _threads.native_call():
        ran = True
    assert ran
