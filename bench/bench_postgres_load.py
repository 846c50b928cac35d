#!/usr/bin/env python3
"""Many processes on one PostgreSQL handbook, with a worker killed and the server stopped mid-run.

For ``--seconds`` (default 60) it runs, as separate OS processes on one PostgreSQL server:

- ``--agents`` (24) agents: retrieve behaviors (hybrid, searched on the server), save a trace that
  shows and cites them (``TraceBook``: spooled when the store does not answer), think for 50 ms;
- ``--workers`` (4) ``bmem worker`` processes reflecting the traces with a fake model server
  (``tests/faults/fake_openai.py``: every trace mints its own behavior, as candidate);
- ``--editors`` (4) editors: ``modify_behavior`` adds a tag of their own to a random behavior and
  approves it when it is a candidate.

Faults: at ``--kill-at`` s one worker gets SIGKILL (a replacement starts; its claims come back after
``--lease-s``), at ``--outage-at`` s PostgreSQL stops for ``--outage-s`` s and starts again. At the
end the workers get SIGTERM, the remaining traces are reflected, and the handbook is checked:
every trace an agent saved is stored once; every behavior's ``shown`` equals the number of stored
traces that showed it (no lost or doubled increment); every edit an editor saw succeed is there;
every trace is reflected, and none twice except those a dead worker was holding (the reflection
prompt names each trace once).

    python bench/bench_postgres_load.py                              # 32 processes, 60 s, faults
    python bench/bench_postgres_load.py --agents 6 --seconds 20      # smaller
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "faults"))

NAMESPACE = "default"
WORDS = "units bounds parity cases modulus symmetry invariants extremes residues gaps".split()  # noqa: SIM905


def config_for(dsn: str, llm_url: str, spool: Path) -> dict[str, Any]:
    return {
        "store": {
            "backend": "postgres",
            "dsn": dsn,
            "pool_size": 3,
            "connect_timeout_s": 2.0,
            "spool_path": str(spool),
        },
        "embeddings": {"provider": "hashing"},
        "retrieval": {"strategy": "hybrid", "k": 5, "floor": -1.0},
        "llm": {"base_url": llm_url, "model": "fake-model", "timeout_s": 5.0, "max_retries": 2, "retry_budget_s": 2.0},
        "reflection": {"mode": "manual", "concurrency": 2, "lease_s": 10.0},
        "curation": {"dedup_threshold": 0.99, "approval": "evidence", "min_support": 2},
    }


# --- the roles, each in its own process ---------------------------------------------------------------
def run_agent(config_path: str, index: int, until: float, out: Path) -> None:
    from behavior_memory import BehaviorMemory
    from behavior_memory.errors import BehaviorMemoryError
    from behavior_memory.types import Trace

    memory = BehaviorMemory.from_yaml(config_path)
    rng = random.Random(index)
    saved, latencies, failed = [], [], 0
    while time.time() < until:
        query = " ".join(rng.sample(WORDS, 3))
        started = time.perf_counter()
        try:
            hits = memory.retrieve(query)
            latencies.append((time.perf_counter() - started) * 1000)
        except BehaviorMemoryError:  # what BlockFetcher does: the task runs without behaviors
            hits, failed = [], failed + 1
        trace_id = uuid.uuid4().hex
        names = [h.name for h in hits]
        answer = f"I used {names[0]}." if names else "done"
        memory.traces.save(Trace(id=trace_id, task=f"problem-{trace_id} about {query}", shown=names, answer=answer))
        saved.append(trace_id)
        time.sleep(0.05)
    spooled_at_end = memory.traces.spooled()
    deadline = time.time() + 90
    while memory.traces.spooled() and time.time() < deadline:
        memory.traces.drain_spool()
        time.sleep(0.5)
    out.write_text(
        json.dumps(
            {
                "saved": saved,
                "latencies": latencies,
                "failed": failed,
                "spooled_at_end": spooled_at_end,
                "left_in_spool": memory.traces.spooled(),
            }
        )
    )
    memory.close()


def run_editor(config_path: str, index: int, until: float, out: Path) -> None:
    from behavior_memory import BehaviorMemory
    from behavior_memory.errors import BehaviorMemoryError
    from behavior_memory.store.edits import modify_behavior
    from behavior_memory.types import BehaviorStatus

    memory = BehaviorMemory.from_yaml(config_path)
    store, rng = memory.store, random.Random(1000 + index)
    done, failed, approved, names, n = [], 0, 0, [], 0
    while time.time() < until:
        try:
            if n % 25 == 0 or not names:
                names = [b.name for b in store.list_behaviors(NAMESPACE)]
            name, tag = rng.choice(names), f"e{index}x{n}"
            n += 1

            def change(b: Any, tag: str = tag) -> Any:
                status = BehaviorStatus.ACTIVE if b.status == BehaviorStatus.CANDIDATE else b.status
                return b.model_copy(update={"tags": [*b.tags, tag], "status": status})

            before = store.get_behavior(NAMESPACE, name).status
            modify_behavior(store, NAMESPACE, name, change)
            approved += before == BehaviorStatus.CANDIDATE
            done.append([name, tag])
        except BehaviorMemoryError:
            failed += 1
            time.sleep(0.5)
        time.sleep(0.02)
    out.write_text(json.dumps({"done": done, "failed": failed, "approved": approved}))
    memory.close()


# --- the conductor -------------------------------------------------------------------------------------
def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=24)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--editors", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--kill-at", type=float, default=15.0)
    parser.add_argument("--outage-at", type=float, default=25.0)
    parser.add_argument("--outage-s", type=float, default=20.0)
    parser.add_argument("--role", choices=["agent", "editor"], help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--until", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "agent":
        return run_agent(args.config, args.index, args.until, Path(args.out))
    if args.role == "editor":
        return run_editor(args.config, args.index, args.until, Path(args.out))

    from bench_postgres_common import fresh_schema, postgres_server
    from fake_openai import FakeOpenAI

    from behavior_memory import BehaviorMemory
    from behavior_memory.config.settings import load_config
    from behavior_memory.store.postgres import PostgresStore
    from behavior_memory.types import ReflectionStatus

    work = Path(tempfile.mkdtemp(prefix="bmem-load-"))
    bmem = str(Path(sys.executable).parent / "bmem")
    with postgres_server() as (server_dsn, handle), FakeOpenAI() as fake:
        dsn = fresh_schema(server_dsn, "load")
        cfg = work / "behavior-memory.yaml"
        cfg.write_text(yaml.safe_dump(config_for(dsn, fake.url, work / "spool")))
        seed = BehaviorMemory(load_config(cfg))
        for i in range(200):
            a, b = WORDS[i % 10], WORDS[(i // 10) % 10]
            seed.handbook.add(f"behavior_seed_{i:03d}_{a}", f"Check the {a} and then the {b} (case {i}).", topic=a)
        seed.close()

        start = time.time() + 8.0  # every process imported and connected before the clock starts
        until = start + args.seconds
        procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        me = str(Path(__file__).resolve())
        for role, count in (("agent", args.agents), ("editor", args.editors)):
            for i in range(count):
                out = work / f"{role}-{i}.json"
                cmd = [sys.executable, me, "--role", role, "--config", str(cfg), "--index", str(i)]
                procs.append((role, _spawn([*cmd, "--until", str(until), "--out", str(out)], work / f"{role}-{i}.log")))
        worker_cmd = [bmem, "-c", str(cfg), "worker", "--idle-s", "5", "--grace-s", "2"]
        workers = [_spawn(worker_cmd, work / f"worker-{i}.log") for i in range(args.workers)]
        print(f"{len(procs) + len(workers)} processes; clock starts in {start - time.time():.0f} s; logs in {work}")
        time.sleep(max(start - time.time(), 0))

        events = []
        if args.kill_at < args.seconds:
            time.sleep(max(start + args.kill_at - time.time(), 0))
            os.kill(workers[0].pid, signal.SIGKILL)
            workers.append(_spawn(worker_cmd, work / "worker-replacement.log"))
            events.append(f"t={time.time() - start:.0f}s: SIGKILL to a worker (a replacement started)")
        if handle is not None and args.outage_at < args.seconds:
            time.sleep(max(start + args.outage_at - time.time(), 0))
            handle.stop()
            events.append(f"t={time.time() - start:.0f}s: PostgreSQL stopped")
            time.sleep(args.outage_s)
            handle.ensure_postgres_running()
            events.append(f"t={time.time() - start:.0f}s: PostgreSQL started again")
        for _, p in procs:
            p.wait()
        ended = time.time()
        for w in workers[1:]:
            w.send_signal(signal.SIGTERM)
        for w in workers[1:]:
            w.wait(60)
        events.append(f"t={ended - start:.0f}s: agents and editors done; workers stopped with SIGTERM")

        # what is left: reflect it here (the killed worker's claims come back after the lease)
        memory = BehaviorMemory(load_config(cfg))
        store = memory.store
        deadline = time.time() + 180
        while time.time() < deadline:
            memory.reflect_pending()
            if (
                store.count_traces(status=ReflectionStatus.PENDING)
                + store.count_traces(status=ReflectionStatus.RUNNING)
                == 0
            ):
                break
            time.sleep(1.0)
        report(work, store, fake, events, args, ended - start)
        memory.close()
        assert isinstance(store, PostgresStore)


def report(work: Path, store: Any, fake: Any, events: list[str], args: Any, elapsed: float) -> None:
    import numpy as np

    from behavior_memory.types import ReflectionStatus

    agents = [json.loads(p.read_text()) for p in sorted(work.glob("agent-*.json"))]
    editors = [json.loads(p.read_text()) for p in sorted(work.glob("editor-*.json"))]
    saved = [t for a in agents for t in a["saved"]]
    latencies = [x for a in agents for x in a["latencies"]]

    def q(sql: str, *params: Any) -> Any:
        return store._read(lambda conn: conn.execute(sql, params).fetchall())

    stored = {row[0] for row in q("SELECT id FROM traces")}
    lost_traces = len(set(saved) - stored)
    duplicate_saves = len(saved) - len(set(saved))
    bad_counts = q(
        "SELECT count(*) FROM behaviors b WHERE b.shown <> (SELECT count(*) FROM traces t "
        "WHERE t.namespace = b.namespace AND t.shown ? b.name)"
    )[0][0]
    lost_shown = q(
        "SELECT coalesce(sum(greatest(c - b.shown, 0)), 0), coalesce(sum(greatest(b.shown - c, 0)), 0) FROM "
        "(SELECT b.name, b.shown, (SELECT count(*) FROM traces t WHERE t.shown ? b.name) c FROM behaviors b) b"
    )[0]
    tags = {row[0]: set(row[1]) for row in q("SELECT name, tags FROM behaviors")}
    edits = [e for ed in editors for e in ed["done"]]
    lost_edits = sum(1 for name, tag in edits if tag not in tags.get(name, set()))
    status = Counter(row[0] for row in q("SELECT reflection_status FROM traces"))
    attempts = Counter(row[0] for row in q("SELECT reflection_attempts FROM traces"))
    per_trace: Counter[str] = Counter()
    for body in fake.bodies:
        for trace_id in set(re.findall(r"problem-([0-9a-f]{32})", json.dumps(body))):
            per_trace[trace_id] += 1
    asked = Counter(per_trace.values())
    twice_minted = q(
        "SELECT count(*) FROM (SELECT s FROM behaviors, jsonb_array_elements_text(sources) s "
        "GROUP BY s HAVING count(*) > 1) x"
    )[0][0]
    print()
    for e in events:
        print("  " + e)
    print(
        f"\nprocesses: {args.agents} agents, {args.workers} workers (+1 replacement), {args.editors} editors; "
        f"{elapsed:.0f} s; 2 cores"
    )
    rows = [
        ("traces saved by agents", len(saved)),
        ("traces stored", len(stored)),
        ("traces lost / saved twice", f"{lost_traces} / {duplicate_saves}"),
        (
            "traces spooled when the run ended, left unwritten",
            f"{sum(a['spooled_at_end'] for a in agents)}, {sum(a['left_in_spool'] for a in agents)}",
        ),
        ("retrievals ok / failed open (no behaviors)", f"{len(latencies)} / {sum(a['failed'] for a in agents)}"),
        (
            "retrieval under load p50 / p99 ms",
            f"{np.percentile(latencies, 50):.1f} / {np.percentile(latencies, 99):.1f}",
        ),
        ("behaviors whose shown != traces showing them", bad_counts),
        ("shown increments lost / doubled", f"{int(lost_shown[0])} / {int(lost_shown[1])}"),
        (
            "edits applied / lost / failed (store down)",
            f"{len(edits)} / {lost_edits} / {sum(e['failed'] for e in editors)}",
        ),
        ("candidates approved by editors", sum(e["approved"] for e in editors)),
        ("behaviors in the handbook", len(tags)),
        ("trace ids minted into two behaviors", twice_minted),
        ("reflection status of the traces", dict(status)),
        ("reflection attempts (count of traces)", dict(sorted(attempts.items()))),
        ("model requests naming the trace (1 = reflected once)", dict(sorted(asked.items()))),
    ]
    for name, value in rows:
        print(f"  {name:<52} {value}")
    ok = (
        lost_traces == 0 and bad_counts == 0 and lost_edits == 0 and status.get(ReflectionStatus.DONE, 0) == len(stored)
    )
    print("\nRESULT:", "ok" if ok else "PROBLEMS (see above)")


if __name__ == "__main__":
    main()
