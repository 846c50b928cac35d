"""The embedded vLLM server does what the library relies on.

Plumbing only: a 135M model is weak, so these tests assert on the shape of the answers (listed
model, text, usage, parseable JSON, a tool call with a name, cache counters), never on quality.
"""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

import pytest
from openai import OpenAI

from behavior_memory.serving import server


@pytest.fixture(scope="module")
def client(vllm_server: Any) -> OpenAI:
    return OpenAI(base_url=vllm_server.base_url, api_key="EMPTY", timeout=300, max_retries=0)


def test_models_lists_the_served_name(vllm_server: Any, client: OpenAI) -> None:
    ids = [m.id for m in client.models.list().data]
    assert vllm_server.model in ids
    assert server.is_up(vllm_server.base_url)
    assert vllm_server.model in server.list_models(vllm_server.base_url)


def test_chat_completion_returns_text_and_usage(vllm_server: Any, client: OpenAI) -> None:
    resp = client.chat.completions.create(
        model=vllm_server.model,
        messages=[{"role": "user", "content": "Say hello in one short sentence."}],
        max_tokens=24,
        temperature=0,
    )
    text = resp.choices[0].message.content
    assert isinstance(text, str) and text.strip()
    assert resp.usage is not None
    assert resp.usage.prompt_tokens > 0
    assert 0 < resp.usage.completion_tokens <= 24
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    # --enable-prompt-tokens-details: cached token counts are reported.
    assert resp.usage.prompt_tokens_details is not None
    assert resp.usage.prompt_tokens_details.cached_tokens is not None


def test_two_system_messages_are_accepted(vllm_server: Any, client: OpenAI) -> None:
    # LlamaIndex FunctionAgent + Memory(insert_method="system") sends two system messages.
    resp = client.chat.completions.create(
        model=vllm_server.model,
        messages=[
            {"role": "system", "content": "You are a careful assistant."},
            {"role": "system", "content": "<memory>behavior_check_units: check the units.</memory>"},
            {"role": "user", "content": "What is 2 + 2?"},
        ],
        max_tokens=8,
        temperature=0,
    )
    assert resp.choices[0].message.content is not None


def test_json_schema_response_format_parses(vllm_server: Any, client: OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 40},
            "instruction": {"type": "string", "maxLength": 80},
        },
        "required": ["name", "instruction"],
        "additionalProperties": False,
    }
    resp = client.chat.completions.create(
        model=vllm_server.model,
        messages=[{"role": "user", "content": "Give one behavior as JSON with a name and an instruction."}],
        response_format={"type": "json_schema", "json_schema": {"name": "behavior", "schema": schema}},
        max_tokens=120,
        temperature=0,
    )
    content = resp.choices[0].message.content
    assert content
    data = json.loads(content)
    assert isinstance(data, dict)
    assert set(data) == {"name", "instruction"}
    assert all(isinstance(v, str) for v in data.values())


_WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def test_tool_choice_required_returns_tool_calls(vllm_server: Any, client: OpenAI) -> None:
    resp = client.chat.completions.create(
        model=vllm_server.model,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[_WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice="required",
        max_tokens=80,
        temperature=0,
    )
    calls = resp.choices[0].message.tool_calls
    assert calls, resp.choices[0].message
    assert calls[0].function.name == "get_weather"  # the only tool; the constraint forces a valid name
    assert isinstance(json.loads(calls[0].function.arguments), dict)


def test_tool_choice_auto_and_tool_results_are_accepted(vllm_server: Any, client: OpenAI) -> None:
    # The hermes parser + our template accept tools with "auto" and a full tool round trip.
    resp = client.chat.completions.create(
        model=vllm_server.model,
        messages=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"},
        ],
        tools=[_WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice="auto",
        max_tokens=24,
        temperature=0,
    )
    msg = resp.choices[0].message
    assert msg.content is not None or msg.tool_calls


def test_metrics_expose_prefix_cache_counters(vllm_server: Any, client: OpenAI) -> None:
    system = "You are a helpful assistant. " * 20  # a shared prefix longer than a few KV blocks
    for question in ("Name a color.", "Name a fruit."):
        client.chat.completions.create(
            model=vllm_server.model,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": question}],
            max_tokens=4,
            temperature=0,
        )
    root = vllm_server.base_url.removesuffix("/v1")
    with urllib.request.urlopen(root + "/metrics", timeout=30) as resp:
        text = resp.read().decode()

    def total(metric: str) -> float:
        values = re.findall(rf"^{re.escape(metric)}(?:\{{[^}}]*\}})? ([0-9.eE+-]+)$", text, flags=re.M)
        assert values, f"{metric} missing from /metrics"
        return sum(float(v) for v in values)

    assert total("vllm:prefix_cache_queries_total") > 0
    assert total("vllm:prefix_cache_hits_total") > 0
