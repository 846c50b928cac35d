"""A tour of the handbook with no model server: add, retrieve, render, trace, cite, export.

python examples/01_handbook_tour.py
"""

import importlib.util
import io
import tempfile
from pathlib import Path

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig

# Local MiniLM embeddings when the [embeddings] extra is installed; else hashed words (no model at all).
EMBEDDINGS = "sentence-transformers" if importlib.util.find_spec("sentence_transformers") else "hashing"

with tempfile.TemporaryDirectory() as tmp:
    config = BehaviorMemoryConfig.model_validate(
        {
            "store": {"path": str(Path(tmp) / "handbook.db")},
            "embeddings": {"provider": EMBEDDINGS},
            "reflection": {"mode": "manual"},  # traces wait for `bmem reflect`
        }
    )
    with BehaviorMemory(config) as memory:
        memory.handbook.add(
            "behavior_inclusion_exclusion",
            "Count a union by adding set sizes and subtracting overlaps.",
            topic="counting",
        )
        memory.handbook.add(
            "behavior_angle_sum", "The interior angles of a triangle sum to 180 degrees.", topic="geometry"
        )
        memory.handbook.add("behavior_check_units", "Write the unit next to every number you compute.", pinned=True)

        question = "How many integers below 100 are divisible by 3 or 5?"
        hits = memory.retrieve(question, k=3)
        print(f"embeddings: {EMBEDDINGS}")
        print("retrieved:", [f"{h.behavior.name} ({h.score:.3f})" for h in hits])
        block = memory.render(hits)
        print(f"\n--- behavior block ({block.tokens} tokens) ---\n{block}\n---")

        with memory.trace(task=question, hits=hits) as t:
            t.model_call(
                messages=[{"role": "system", "content": block}, {"role": "user", "content": question}],
                output="By behavior_inclusion_exclusion: 33 + 19 - 6 = 46.",
                usage={"prompt_tokens": 180, "completion_tokens": 20, "total_tokens": 200},
            )
            t.tool_call(name="calculator", args={"expr": "33+19-6"}, result=46)
            t.finish(answer="46", outcome="success")
        trace = memory.traces.get(t.id)
        print(
            f"\ntrace {trace.id}: {len(trace.steps)} steps, cited {trace.cited}, reflection {trace.reflection_status}"
        )

        b = memory.handbook.get("behavior_inclusion_exclusion")
        print(f"counters of {b.name}: shown {b.shown}, cited {b.cited}")

        out = io.StringIO()
        memory.handbook.export_jsonl(out)
        print(f"\nexported {len(out.getvalue().splitlines())} behaviors as JSONL")
