"""Time and peak memory of refusing hostile YAML: alias and merge bombs, a file of too many values.

Each case is loaded the way ``bmem config check FILE`` loads it (``load_config``, from a file in a
temporary folder) and must end in a ``ConfigError``. The peak is Python's allocations during the
load (``tracemalloc``), which also slows the load down, so time is measured in a separate run.

    .venv/bin/python bench/bench_yaml_bomb.py [--repeat 5]

Target (issue 10): a bomb gives a clear ConfigError within 1 s and under 100 MB. Before the bound,
the 9x9 alias bomb ran past 10 s and 1.2 GB of RSS before it was killed (3.2 GB in 30 s as reported).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from behavior_memory.config.loader import MAX_CONFIG_VALUES
from behavior_memory.config.settings import load_config
from behavior_memory.errors import ConfigError


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """The "billion laughs": each level a list of ``width`` aliases of the one before (9^9 values)."""
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    return "\n".join([*lines, f"namespace: *a{levels}"]) + "\n"


def merge_bomb(levels: int = 40) -> str:
    """Each mapping merges the one before twice: merging copies pairs, so it doubles per level."""
    lines = ["m0: &m0 {x: 1, y: 2}"]
    lines += [f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: {i}}}" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def too_many_values() -> str:
    """A flat list just past the bound: what composing alone costs at the limit."""
    return "x:\n" + "".join(f"  - {i}\n" for i in range(MAX_CONFIG_VALUES + 1))


def _refuse(path: Path) -> str:
    try:
        load_config(path, env={})
    except ConfigError as exc:
        return str(exc)
    raise SystemExit(f"{path.name} was accepted: the bound is gone")


def _measure(path: Path, repeat: int) -> tuple[float, float, str]:
    """Median seconds of ``repeat`` loads, then the peak MiB of one traced load, and the message."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        message = _refuse(path)
        times.append(time.perf_counter() - started)
    tracemalloc.start()
    try:
        _refuse(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return statistics.median(times), peak / 2**20, message


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cases: dict[str, Callable[[], str]] = {
        "alias bomb 9x9 (3.9e8 values)": alias_bomb,
        "merge bomb 40 levels (2^40 pairs)": merge_bomb,
        f"flat list of {MAX_CONFIG_VALUES + 1:,} values": too_many_values,
    }
    with tempfile.TemporaryDirectory() as folder:
        print(f"{'case':<36} {'bytes':>8} {'median s':>9} {'peak MiB':>9}  message")
        for name, make in cases.items():
            path = Path(folder) / "case.yaml"
            path.write_text(make())
            seconds, peak, message = _measure(path, args.repeat)
            first = message.replace(str(path), "FILE").splitlines()[0]
            print(f"{name:<36} {path.stat().st_size:>8} {seconds:>9.4f} {peak:>9.2f}  {first[:90]}")


if __name__ == "__main__":
    main()
