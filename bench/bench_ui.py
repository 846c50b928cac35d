"""``make bench-ui``: how long the web UI's pages take to render over a large SQLite handbook.

Fills a temporary handbook with N behaviors (default 100,000; 384-float vectors, as MiniLM's, so
rows are their real size) and a few thousand traces, then asks every page through Starlette's
TestClient (in process: routing, the store's queries, the templates; no network) and prints the
median and p95 of each. The goal: every page under 200 ms at 100k behaviors. The first search builds
retrieval's index of the namespace, so it is shown apart from the warm ones.

``--screenshot PATH`` also takes a PNG of the handbook page over the small demo handbook of the UI's
tests, in headless chromium (the README's picture: ``docs/ui-handbook.png``).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from behavior_memory import BehaviorMemory
from behavior_memory.config.settings import load_config_text
from behavior_memory.store.base import HandbookStore
from behavior_memory.store.sqlite import SQLiteStore
from behavior_memory.types import Behavior, BehaviorStatus, Step, TokenUsage, Trace

ROOT = Path(__file__).resolve().parents[1]
TOPICS = ["algebra", "geometry", "counting", "probability", "units", "number theory", "sql", "parsing"]
WORDS = [
    "check",
    "draw",
    "count",
    "convert",
    "factor",
    "bound",
    "simplify",
    "verify",
    "estimate",
    "divide",
    "list",
    "compare",
    "sort",
    "test",
]
STATUSES = [BehaviorStatus.ACTIVE] * 16 + [BehaviorStatus.CANDIDATE] * 2
STATUSES += [BehaviorStatus.QUARANTINED, BehaviorStatus.ARCHIVED]


def fill(store: HandbookStore, n: int, n_traces: int, *, vectors: bool = True) -> float:
    rng = random.Random(0)
    t0 = time.perf_counter()
    for start in range(0, n, 20_000):
        batch = []
        for i in range(start, min(n, start + 20_000)):
            topic = TOPICS[i % len(TOPICS)]
            a, b, c = rng.sample(WORDS, 3)
            shown = rng.randint(0, 500)
            behavior = Behavior(
                name=f"behavior_{topic.replace(' ', '_')}_{a}_{i}",
                instruction=f"To {a} a {topic} problem, {b} each part first, then {c} the result against the question.",
                topic=topic,
                status=STATUSES[i % len(STATUSES)],
                pinned=i % 997 == 0,
                shown=shown,
                cited=rng.randint(0, shown),
                helped=rng.randint(0, 50),
                hurt=rng.randint(0, 10),
            )
            vector = np.random.default_rng(i).standard_normal(384).astype(np.float32) if vectors else None
            batch.append((behavior, None if vector is None else vector / np.linalg.norm(vector)))
        store.put_behaviors(batch)
    for i in range(n_traces):
        usage = TokenUsage(prompt_tokens=300, completion_tokens=80 + i % 50, total_tokens=380 + i % 50)
        step = Step(kind="model", messages=[{"role": "user", "content": f"task {i}"}], output="done", usage=usage)
        store.save_trace(
            Trace(task=f"task {i}: {rng.choice(WORDS)} the {rng.choice(TOPICS)} question", steps=[step],
                  outcome=rng.choice(["success", "failure", "unknown"]), shown=[], cited=[])
        )  # fmt: skip
    return time.perf_counter() - t0


def _rss_mb() -> float:
    """This process's resident memory now (Linux), in MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def timed(client: Any, url: str, repeat: int) -> tuple[float, float, int]:
    times = []
    status = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = client.get(url)
        times.append((time.perf_counter() - t0) * 1000)
        status = r.status_code
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))], status


def bench(n: int, n_traces: int, repeat: int, *, postgres: bool = False) -> None:
    """Fill a handbook (a SQLite file, or a fresh schema on the tests' PostgreSQL server) and time every page."""
    if not postgres:
        with tempfile.TemporaryDirectory() as tmp:
            store = SQLiteStore(Path(tmp) / "handbook.db")
            try:
                _bench(store, n, n_traces, repeat, vectors=True)
            finally:
                store.close()
        return
    sys.path.insert(0, str(ROOT / "tests"))
    from postgres.pg_harness import ScratchPostgresStore, pg_server

    pg = ScratchPostgresStore(base_dsn=pg_server().dsn)  # the server stops when the process exits
    try:  # no vectors: inserting 100k into the HNSW index alone takes many minutes on a small machine
        _bench(pg, n, n_traces, repeat, vectors=False)
    finally:
        pg.close()


def _bench(store: HandbookStore, n: int, n_traces: int, repeat: int, *, vectors: bool) -> None:
    from starlette.testclient import TestClient

    from behavior_memory.ui.app import create_app
    from behavior_memory.ui.columns import ColumnCache
    from behavior_memory.ui.row_readers import SQLiteRows, StoreRows

    print(f"filling {n:,} behaviors and {n_traces:,} traces into {store!r} ...", flush=True)
    print(f"  {fill(store, n, n_traces, vectors=vectors):.1f} s")
    # A lexical retriever: the stored vectors are random, and no embedding model is loaded.
    text = "embeddings:\n  provider: none\nretrieval:\n  strategy: lexical\n"
    with tempfile.TemporaryDirectory() as tmp:
        memory = BehaviorMemory(load_config_text(text, base_dir=Path(tmp)), store=store)
        rss_before = _rss_mb()
        t0 = time.perf_counter()
        reader = SQLiteRows(store.path) if isinstance(store, SQLiteStore) else StoreRows(store)
        cache = ColumnCache(memory.store, reader)
        cache.get(memory.namespace)
        columns_s = time.perf_counter() - t0
        columns_mb = _rss_mb() - rss_before
        cache.close()
        del cache
        client = TestClient(create_app(memory), base_url="http://127.0.0.1:8765")
        some = memory.handbook.list(limit=1)[0]
        trace = memory.traces.list(limit=1)[0]
        pages = [
            ("handbook, page 1 by name", "/"),
            ("handbook, last page by name", "/?page=1000000"),
            ("handbook, sorted by cited", "/?sort=cited"),
            ("handbook, sorted by citation rate, page 500", "/?sort=citation_rate&page=500"),
            ("handbook, candidates of one topic", "/?status=candidate&topic=geometry"),
            ("handbook, pinned", "/?pinned=yes"),
            ("handbook, text filter", "/?text=simplify"),
            ("a behavior", f"/behaviors/{some.id}"),
            ("review queue", "/review"),
            ("traces", "/traces"),
            ("traces, failures, page 20", "/traces?outcome=failure&page=20"),
            ("a trace", f"/traces/{trace.id}"),
            ("plots", "/plots"),
        ]
        t0 = time.perf_counter()
        first = client.get("/?q=how+do+I+simplify+a+geometry+problem")
        first_ms = (time.perf_counter() - t0) * 1000
        pages.append(("search (what the agent would see), warm", "/?q=how+do+I+simplify+a+geometry+problem"))
        print(f"\npage render at {n:,} behaviors, {n_traces:,} traces ({repeat} requests each, in process)")
        print(f"{'page':<46} {'median ms':>10} {'p95 ms':>8}  status")
        worst = 0.0
        for label, url in pages:
            median, p95, status = timed(client, url, repeat)
            worst = max(worst, median)
            print(f"{label:<46} {median:>10.1f} {p95:>8.1f}  {status}")
        print(f"{'search, first (builds the retrieval index)':<46} {first_ms:>10.1f} {'':>8}  {first.status_code}")
        label = "columns of the namespace, read once (start-up)"
        print(f"{label:<46} {columns_s * 1000:>10.1f}  (+{columns_mb:.0f} MB of memory)")
        verdict = "under" if worst < 200 else "OVER"
        print(f"\nslowest median {worst:.1f} ms: {verdict} the 200 ms goal")


def screenshot(out: Path) -> None:
    """The handbook page of the tests' demo handbook, in headless chromium, as a PNG."""
    import uvicorn
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    sys.path.insert(0, str(ROOT / "tests" / "ui"))
    from ui_seed import memory_at, seed

    from behavior_memory.ui.app import create_app

    with tempfile.TemporaryDirectory() as tmp:
        memory = memory_at(Path(tmp))
        seed(memory)
        memory.handbook.approve("behavior_draw_a_figure")
        server = uvicorn.Server(uvicorn.Config(create_app(memory), host="127.0.0.1", port=0, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", "--window-size=1280,1000", f"--user-data-dir={tmp}/profile"):  # fmt: skip
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
        try:
            driver.get(f"http://127.0.0.1:{port}/?q=How+many+integers+below+100+are+divisible+by+3+or+5%3F")
            out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(out))
        finally:
            driver.quit()
            server.should_exit = True
            thread.join(10)
            memory.close()
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--behaviors", type=int, default=100_000)
    parser.add_argument("--traces", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL (the tests' bundled server) instead")
    parser.add_argument("--screenshot", type=Path, help="also write a PNG of the demo handbook page here")
    args = parser.parse_args()
    bench(args.behaviors, args.traces, args.repeat, postgres=args.postgres)
    if args.screenshot:
        screenshot(args.screenshot)


if __name__ == "__main__":
    main()
