"""A small demo handbook for the UI's tests (and the README's screenshot), through the public API only."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from behavior_memory import BehaviorMemory
from behavior_memory.config.settings import load_config_text
from behavior_memory.types import TokenUsage

MARKUP = '<script>alert("x")</script><b>bold</b> & check it'


def memory_at(folder: Path) -> BehaviorMemory:
    path = json.dumps(str(folder / "handbook.db"))  # quoted: a folder name may hold " #"
    text = f'store:\n  path: {path}\nembeddings:\n  provider: hashing\nreflection:\n  mode: "off"\n'
    return BehaviorMemory(load_config_text(text, base_dir=folder))


def seed(memory: BehaviorMemory) -> dict[str, str]:
    """Behaviors of every status, a pinned one, one with markup in its text, and traces that cite them."""
    hb = memory.handbook
    ids: dict[str, str] = {}
    rows = [
        (
            "behavior_inclusion_exclusion",
            "To count integers divisible by one number or another, add the multiples "
            "of each and subtract the multiples of both.",
            "active",
            "counting",
        ),
        ("behavior_check_units", "Check that both sides of an equation carry the same units.", "active", "physics"),
        ("behavior_draw_a_figure", "Draw the figure before computing any angle.", "candidate", "geometry"),
        ("behavior_count_overlaps", "Count overlaps once when adding the sizes of sets.", "candidate", "counting"),
        ("behavior_markup_text", f"Treat {MARKUP} as plain text in any answer.", "candidate", "safety"),
        ("behavior_old_trick", "Guess the answer from the options before solving.", "quarantined", "misc"),
        ("behavior_retired_rule", "Round every intermediate result to two places.", "archived", "misc"),
    ]
    for name, instruction, status, topic in rows:
        ids[name] = hb.add(name, instruction, status=status, topic=topic, force=True).id
    hb.update("behavior_inclusion_exclusion", pinned=True)
    hb.quarantine("behavior_old_trick", reason="guesses instead of solving")
    for i in range(6):
        question = f"How many integers below {100 + i} are divisible by 3 or 5?"
        with memory.trace(task=question, hits=["behavior_inclusion_exclusion", "behavior_check_units"]) as t:
            t.model_call(
                messages=[{"role": "user", "content": question}],
                output="Using behavior_inclusion_exclusion: 33 + 19 - 6 = 46",
                usage=TokenUsage(prompt_tokens=120, completion_tokens=30 + i, total_tokens=150 + i),
            )
            t.tool_call(name="multiply", args={"a": 3, "b": 5}, result="15")
            t.finish(answer="46", outcome="success" if i % 3 else "failure")
        ids[f"trace{i}"] = t.trace.id
    # What the reflection worker writes back (reflection/worker.py), here by hand: no model server in these tests.
    reflection = {"model": "smollm2", "text": "The answer used <inclusion-exclusion> correctly.", "added": []}
    memory.store.update_trace_fields(ids["trace0"], reflection_status="done", metadata={"reflection": reflection})
    # The exposure experiment: behavior_check_units shown in 12 tasks (all solved), withheld from 12 (4 solved).
    for i in range(24):
        shown = i % 2 == 0
        names = ["behavior_check_units"] if shown else []
        meta = {"withheld": [] if shown else ["behavior_check_units"]}
        with memory.trace(task=f"Convert {i} km to m.", hits=names, metadata=meta) as t:
            t.model_call(output=f"{i * 1000} m", usage=TokenUsage(completion_tokens=40 if shown else 60))
            t.finish(answer=f"{i * 1000}", outcome="success" if shown or i % 6 == 1 else "failure")
    return ids


def client_for(memory: BehaviorMemory, **kwargs: Any) -> Any:
    from starlette.testclient import TestClient

    from behavior_memory.ui.app import create_app

    # The Host check answers only to local names: TestClient's default "testserver" is refused.
    return TestClient(create_app(memory, **kwargs), base_url="http://127.0.0.1:8765")


def csrf_of(client) -> str:
    """The form token of the client's CSRF cookie, as the pages carry it."""
    html = client.get("/review").text
    assert len(client.cookies.get("bmem_csrf") or "") >= 32
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)
