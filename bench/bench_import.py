"""Cold-start cost: ``import behavior_memory`` against ``import langchain_core``, and the CLI.

Each figure is the median wall time of several fresh interpreters, all timed in this one run so the
machine's load is the same for every line. ``bmem behaviors list`` runs in a temporary folder
with its own configuration and handbook, so nothing real is read or written.

    make bench-import          # or: .venv/bin/python bench/bench_import.py [--repeat 7]

Targets (the layering issue): ``import behavior_memory`` within 2x ``import langchain_core``,
``bmem --help`` under 0.3 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COUNT = "import sys; import {module}; print(len(sys.modules))"


def _median_s(argv: list[str], repeat: int, cwd: str | None = None, env: dict[str, str] | None = None) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _module_count(module: str) -> int:
    argv = [sys.executable, "-c", COUNT.format(module=module)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="fresh processes per figure (the median is shown)")
    args = parser.parse_args()
    # `python -m behavior_memory.cli.main` would miss the console script's own start-up; run what users run.
    bmem = str(Path(sys.executable).with_name("bmem"))
    fallback = [sys.executable, "-c", "from behavior_memory.cli.main import main; main()"]
    cli = [bmem] if os.path.exists(bmem) else fallback

    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        config = Path(tmp) / "behavior-memory.yaml"
        config.write_text("store:\n  path: ./handbook.db\n")
        env = {**os.environ, "XDG_DATA_HOME": tmp}  # no default handbook of the user's is touched
        figures = {
            "python -c 'pass'": _median_s([sys.executable, "-c", "pass"], args.repeat),
            "import langchain_core": _median_s([sys.executable, "-c", "import langchain_core"], args.repeat),
            "import behavior_memory": _median_s([sys.executable, "-c", "import behavior_memory"], args.repeat),
            "bmem --help": _median_s([*cli, "--help"], args.repeat, env=env),
            "bmem behaviors list": _median_s([*cli, "behaviors", "list"], args.repeat, cwd=tmp, env=env),
        }
    counts = {"langchain_core": _module_count("langchain_core"), "behavior_memory": _module_count("behavior_memory")}

    print(f"median of {args.repeat} fresh processes each ({sys.executable})")
    for label, seconds in figures.items():
        print(f"  {label:<26} {seconds:6.3f} s")
    ratio = figures["import behavior_memory"] / figures["import langchain_core"]
    print(f"  import behavior_memory / import langchain_core = {ratio:.2f}x (target <= 2x)")
    print(f"  bmem --help {'under' if figures['bmem --help'] < 0.3 else 'OVER'} 0.3 s")
    for module, count in counts.items():
        print(f"  modules after import {module:<16} {count}")


if __name__ == "__main__":
    main()
