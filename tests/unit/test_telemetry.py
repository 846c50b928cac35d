"""OpenTelemetry spans of the loop, caught with the SDK's in-memory exporter; a no-op without the API."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig, telemetry


@pytest.fixture(scope="module")
def exporter():
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the global provider can be set once per process
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    caught = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(caught))
    return caught


@pytest.fixture
def spans(exporter):
    exporter.clear()
    return exporter


@pytest.fixture
def memory(tmp_path):
    cfg = BehaviorMemoryConfig.model_validate(
        {
            "namespace": "acme/bot",
            "store": {"path": str(tmp_path / "h.db")},
            "embeddings": {"provider": "hashing"},
            "retrieval": {"strategy": "lexical"},
            "reflection": {"mode": "manual"},
        }
    )
    with BehaviorMemory(cfg) as m:
        m.handbook.add("behavior_check_sum", "Check a sum by subtracting one addend from the result.")
        yield m


def test_retrieve_render_and_record_are_spans_with_their_figures(memory, spans):
    hits = memory.retrieve("check a sum")
    block = memory.render(hits)
    with memory.trace(task="What is 2 + 3?", hits=hits) as recorder:
        recorder.finish(answer="5, by behavior_check_sum")
    by_name = {s.name: s for s in spans.get_finished_spans()}
    assert {"bmem.retrieve", "bmem.render", "bmem.record"} <= set(by_name)
    retrieve = by_name["bmem.retrieve"].attributes
    assert retrieve["bmem.namespace"] == "acme/bot" and retrieve["bmem.retrieve.hits"] == 1
    assert retrieve["bmem.retrieve.strategy"] == "lexical"
    render = by_name["bmem.render"].attributes
    assert render["bmem.render.tokens"] == block.tokens > 0 and render["bmem.render.behaviors"] == 1
    record = by_name["bmem.record"].attributes
    assert record["bmem.trace.id"] == recorder.id
    assert (record["bmem.trace.shown"], record["bmem.trace.cited"]) == (1, 1)


def test_an_error_is_marked_on_the_span_and_propagates(spans):
    with pytest.raises(ValueError), telemetry.span("bmem.test"):
        raise ValueError("boom")
    (finished,) = spans.get_finished_spans()
    assert finished.attributes["error.type"] == "ValueError"
    assert finished.status.status_code == trace.StatusCode.ERROR


def test_model_span_carries_the_genai_attributes(spans):
    with telemetry.model_span("smollm2", "http://127.0.0.1:8000/v1", {"max_tokens": 64}) as current:
        result = telemetry.model_result_attributes(
            model="smollm2", input_tokens=120, output_tokens=7, finish_reason="stop"
        )
        telemetry.set_attributes(current, result)
    (finished,) = spans.get_finished_spans()
    assert finished.name == "chat smollm2"
    attributes = dict(finished.attributes)
    assert attributes["gen_ai.operation.name"] == "chat" and attributes["gen_ai.request.model"] == "smollm2"
    assert attributes["gen_ai.usage.input_tokens"] == 120 and attributes["gen_ai.usage.output_tokens"] == 7
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["server.address"] == "127.0.0.1" and attributes["server.port"] == 8000
    assert attributes["gen_ai.request.max_tokens"] == 64 and "gen_ai.request.temperature" not in attributes


def test_without_the_api_spans_are_no_ops(monkeypatch, spans):
    monkeypatch.setattr(telemetry, "_state", {})
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # import fails as if not installed
    with telemetry.span("bmem.retrieve", {"bmem.namespace": "x"}) as current:
        current.set_attribute("anything", 1)
    assert spans.get_finished_spans() == ()


def test_import_loads_neither_opentelemetry_nor_mcp():
    code = "import behavior_memory, sys; print(sorted(m for m in ('opentelemetry', 'mcp') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_curation_pass_is_a_span(memory, spans):
    from behavior_memory.reflection.curation import CurationPass

    report = CurationPass(memory.store, memory.embedder, memory.config.curation).run("acme/bot", dry_run=True)
    (finished,) = [s for s in spans.get_finished_spans() if s.name == "bmem.curate"]
    assert finished.attributes["bmem.namespace"] == "acme/bot" and finished.attributes["bmem.curate.dry_run"] is True
    assert finished.attributes["bmem.curate.behaviors"] == report.behaviors == 1
