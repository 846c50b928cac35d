"""What a short model-server fault costs: 50 traces reflected in the background through an outage.

    python bench/bench_faults.py [--traces 50] [--only NAME] [--scale 1.0]

Each scenario saves ``--traces`` traces into a fresh SQLite handbook whose background worker
reflects them with a local fake OpenAI server (``tests/faults/fake_openai.py``), while that server
fails one way for a while; then it waits until every trace has an outcome. The LLM and reflection
settings are the shipped defaults (only ``timeout_s`` is 2 s where the server hangs), so the
table shows what a user gets. ``--scale`` stretches or shrinks every outage.

Columns: reflected/failed/pending traces at the end, behaviors minted, requests the server failed
(how hard the clients pushed during the outage), and how long after the outage's end the last
trace was reflected (the worker's backoff and the circuit's cool-down).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The fault suite's fake server and scenario, shared with the tests rather than copied.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "faults"))

from fake_openai import FakeOpenAI, Fault
from scenario import OutageReport, memory_config, run_outage

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: Fault
    outage_s: float
    llm: dict[str, Any] = field(default_factory=dict)


SCENARIOS = [
    Scenario("HTTP 500", Fault("status", status=500), 30.0),
    Scenario("HTML page, 200", Fault("html", status=200), 5.0),
    Scenario("HTML page, 502", Fault("html", status=502), 5.0),
    Scenario("HTTP 429", Fault("status", status=429), 10.0),
    Scenario("HTTP 404 (loading)", Fault("status", status=404), 10.0),
    Scenario("dropped connections", Fault("drop"), 10.0),
    Scenario("hang (timeout_s=2)", Fault("hang", hang_s=60.0), 10.0, {"timeout_s": 2.0}),
]


def run(scenario: Scenario, traces: int, scale: float) -> OutageReport:
    with FakeOpenAI() as fake, tempfile.TemporaryDirectory() as tmp:
        config = memory_config(fake.url, Path(tmp), reflection={"mode": "background"})
        config["llm"] = {"base_url": fake.url, "model": fake.model, **scenario.llm}  # the shipped defaults
        config["reflection"] = {"mode": "background"}
        memory = BehaviorMemory(BehaviorMemoryConfig.model_validate(config))
        try:
            memory.worker  # noqa: B018 - start the worker (and load the embedder) before the clock runs
            return run_outage(
                fake,
                memory,
                name=scenario.name,
                traces=traces,
                fault=scenario.fault,
                outage_s=scenario.outage_s * scale,
                deadline_s=180.0,
            )
        finally:
            memory.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=50)
    parser.add_argument("--only", help="Run the scenarios whose name contains this text.")
    parser.add_argument("--scale", type=float, default=1.0, help="Multiply every outage by this.")
    parser.add_argument("--verbose", "-v", action="store_true", help="Show the worker's and the breaker's log.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, format="%(levelname)s %(message)s")
    chosen = [s for s in SCENARIOS if not args.only or args.only.lower() in s.name.lower()]

    header = (
        f"{'scenario':<22} {'outage':>7} {'traces':>6} {'reflected':>9} {'failed':>6} {'pending':>7} "
        f"{'behaviors':>9} {'failed reqs':>11} {'all reqs':>8} {'drained after':>13}"
    )
    print(header)
    print("-" * len(header))
    failed_total = 0
    for scenario in chosen:
        report = run(scenario, args.traces, args.scale)
        counts = report.statuses
        faulted = sum(n for answered, n in report.answered.items() if answered != "ok")
        pending = counts["pending"] + counts["running"]
        drained = "(timed out)" if report.timed_out else f"{report.drain_s:.1f} s"
        print(
            f"{scenario.name:<22} {report.outage_s:>5.0f} s {report.traces:>6} {counts['done']:>9} "
            f"{counts['failed']:>6} {pending:>7} {report.behaviors:>9} {faulted:>11} "
            f"{sum(report.answered.values()):>8} {drained:>13}",
            flush=True,
        )
        failed_total += counts["failed"] + pending
    sys.exit(1 if failed_total else 0)


if __name__ == "__main__":
    main()
