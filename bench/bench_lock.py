"""Agent runs while another process holds the handbook's write lock: delay per run and traces kept.

    .venv/bin/python bench/bench_lock.py [--hold 60] [--every 0.5]

A child process takes SQLite's write lock (BEGIN IMMEDIATE) and keeps it for ``--hold`` seconds;
meanwhile this process runs one recorded task every ``--every`` seconds (retrieve, trace, save), as
an agent would. Prints the slowest and median run, how many traces were spooled, and how many are
in the store once the lock is gone (all of them, counted once).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig

HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hold", type=float, default=60.0, help="seconds the other process holds the lock")
    parser.add_argument("--every", type=float, default=0.5, help="seconds between agent runs")
    parser.add_argument("--budget", type=float, default=0.2, help="store.write_budget_s")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "handbook.db"
        cfg = BehaviorMemoryConfig.model_validate(
            {
                "store": {"path": str(db), "write_budget_s": args.budget},
                "embeddings": {"provider": "hashing"},
                "reflection": {"mode": "manual"},
            }
        )
        memory = BehaviorMemory(cfg)
        memory.handbook.add("behavior_check_units", "Check that both sides of an equation carry the same units.")
        memory.retrieve("warm up")
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(db), str(args.hold)], stdout=subprocess.PIPE, text=True
        )
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        delays: list[float] = []
        ids: list[str] = []
        started = time.monotonic()
        while holder.poll() is None:
            question = f"units question {len(ids)}"
            t0 = time.monotonic()
            with memory.trace(task=question, hits=memory.retrieve(question)) as t:
                t.model_call(messages=[{"role": "user", "content": question}], output="behavior_check_units: 4")
                t.finish(answer="4")
            delays.append(time.monotonic() - t0)
            ids.append(t.id)
            time.sleep(args.every)
        held = time.monotonic() - started
        spooled_at_release = memory.traces.spooled()
        deadline = time.monotonic() + 60
        while memory.traces.spooled() and time.monotonic() < deadline:
            time.sleep(0.2)
        stored = sum(1 for i in ids if memory.traces.get(i).answer == "4")
        shown = memory.handbook.get("behavior_check_units").shown
        memory.close()
    print(f"| lock held by another process | {held:.0f} s |")
    print(f"| agent runs during the hold | {len(ids)} |")
    print(
        f"| slowest run / median run | {max(delays) * 1000:.0f} ms / {statistics.median(delays) * 1000:.0f} ms "
        f"(budget {args.budget * 1000:.0f} ms) |"
    )
    print(f"| traces spooled when the lock was released | {spooled_at_release} |")
    print(f"| traces in the store after draining | {stored}/{len(ids)} (shown counter {shown}) |")


if __name__ == "__main__":
    main()
