"""Eight processes write behaviors, traces and counters to one SQLite file at once; nothing is lost."""

import multiprocessing as mp

import numpy as np

from behavior_memory import Behavior, Step, Trace
from behavior_memory.store.sqlite import SQLiteStore

PROCESSES = 8
WRITES = 40


def _writer(path: str, worker: int, barrier) -> None:
    store = SQLiteStore(path)
    rng = np.random.default_rng(worker)
    barrier.wait()  # start together, to make the writers collide
    for j in range(WRITES):
        vec = rng.standard_normal(384).astype(np.float32)
        store.put_behavior(Behavior(name=f"behavior_w{worker}_{j}", instruction=f"step {j} of worker {worker}"), vec)
        store.put_trace(Trace(task=f"task {worker}-{j}", steps=[Step(kind="model", output=str(j))]))
        store.increment("default", ["behavior_shared"], "cited")
    store.close()


def test_eight_processes_lose_no_write(tmp_path):
    path = str(tmp_path / "shared.db")
    store = SQLiteStore(path)
    store.put_behavior(Behavior(name="behavior_shared", instruction="counted by everyone"))
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    procs = [ctx.Process(target=_writer, args=(path, i, barrier)) for i in range(PROCESSES)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * PROCESSES, "a writer failed (see its traceback above)"

    assert store.count_behaviors() == 1 + PROCESSES * WRITES
    assert store.count_traces() == PROCESSES * WRITES
    assert store.get_behavior("default", "behavior_shared").cited == PROCESSES * WRITES
    ids, matrix = store.vectors("default")
    assert len(ids) == PROCESSES * WRITES and matrix.shape == (PROCESSES * WRITES, 384)
    names = {b.name for b in store.list_behaviors("default")}
    assert all(f"behavior_w{i}_{j}" in names for i in range(PROCESSES) for j in range(WRITES))
    store.close()
