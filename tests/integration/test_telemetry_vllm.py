"""Telemetry against the real vLLM server: reflecting a trace gives bmem.reflect, its model calls as
GenAI spans with the server's token counts, and bmem.curate (the in-memory exporter of the SDK)."""

from __future__ import annotations

import pytest
import yaml

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from behavior_memory import BehaviorMemory


@pytest.fixture
def spans():
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the global provider can be set once per process
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    caught = InMemorySpanExporter()
    processor = SimpleSpanProcessor(caught)
    provider.add_span_processor(processor)
    yield caught
    processor.shutdown()  # stops exporting to this test's exporter


def test_reflection_spans_carry_genai_attributes(vllm_server, tmp_path, spans):
    config = tmp_path / "behavior-memory.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "namespace": "otel",
                "llm": {"base_url": vllm_server.base_url, "model": vllm_server.model, "timeout_s": 120},
                "embeddings": {"provider": "hashing"},
                "store": {"path": "handbook.db"},
                "reflection": {"mode": "manual", "reflection_max_tokens": 96, "extraction_max_tokens": 160},
            }
        )
    )
    with BehaviorMemory.from_yaml(config) as memory:
        question = "Tom has 3 boxes with 4 apples each. How many apples does he have?"
        with memory.trace(task=question) as recorder:
            recorder.finish(answer="12", outcome="success")
        memory.reflect_trace(recorder.id)
    finished = spans.get_finished_spans()
    names = [s.name for s in finished]
    assert "bmem.record" in names and "bmem.reflect" in names
    reflect = next(s for s in finished if s.name == "bmem.reflect")
    assert reflect.attributes["bmem.trace.id"] == recorder.id
    calls = [s for s in finished if s.name == f"chat {vllm_server.model}"]
    assert calls, names  # the reflection asked the model at least once
    for call in calls:
        assert call.parent is not None and call.parent.span_id == reflect.context.span_id  # nested under reflect
        attributes = call.attributes
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.request.model"] == vllm_server.model
        assert attributes["gen_ai.usage.input_tokens"] > 0 and attributes["gen_ai.usage.output_tokens"] > 0
        assert attributes["gen_ai.response.finish_reasons"][0] in {"stop", "length"}
    if reflect.attributes["bmem.reflect.result"] in {"minted", "empty"}:  # the model answered usable JSON
        assert "bmem.curate" in names
