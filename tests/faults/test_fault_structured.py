"""chat_json when the model's answer is cut at max_tokens or invalid: the right error, bounded re-asks."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fake_openai import FakeOpenAI, Fault, behavior_for

from behavior_memory.errors import LLMOutputError, LLMTruncatedError, is_transient
from behavior_memory.llm.structured import JsonExchange
from behavior_memory.reflection.reflector import extraction_schema

Extraction = extraction_schema(1, 5)
PROMPT = [{"role": "user", "content": "Extract the behaviors from this reflection: check step 0a1b2c3d4e."}]


def _size(body: dict[str, Any]) -> int:
    return len(json.dumps(body["messages"]))


def test_a_cut_answer_is_truncation_even_when_an_inner_object_parses(fake: FakeOpenAI, make_client: Any) -> None:
    fake.fail(Fault("truncate"))
    with pytest.raises(LLMTruncatedError) as info:
        make_client(output_retries=2).chat_json(PROMPT, Extraction, max_tokens=400)
    message = str(info.value)
    assert "cut off at max_tokens=400" in message and "3 attempt(s)" in message
    assert "Field required" not in message  # the old misreport: an inner behavior parsed as the answer
    assert isinstance(info.value, LLMOutputError) and not is_transient(info.value)


def test_reasks_quote_a_bounded_excerpt_and_do_not_grow(fake: FakeOpenAI, make_client: Any) -> None:
    fake.fail(Fault("truncate"))
    with pytest.raises(LLMTruncatedError):
        make_client(output_retries=3).chat_json(PROMPT, Extraction, max_tokens=400)
    first, *reasks = fake.bodies
    assert len(reasks) == 3
    assert len(json.dumps({"behaviors": [behavior_for(PROMPT[0]["content"])] * 40})) // 2 > 2000  # a long answer
    for body in reasks:
        assert body["messages"][: len(PROMPT)] == first["messages"][: len(PROMPT)]
        quoted = body["messages"][-2]
        assert quoted["role"] == "assistant" and len(quoted["content"]) <= 400 and " ... " in quoted["content"]
        assert "cut off at max_tokens=400" in body["messages"][-1]["content"]
    assert len({_size(body) for body in reasks}) == 1  # every re-ask is the same size


def test_a_cut_answer_then_a_whole_one_succeeds(fake: FakeOpenAI, make_client: Any) -> None:
    fake.fail_next(Fault("truncate"))
    answer, result = make_client(output_retries=1).chat_json(PROMPT, Extraction, max_tokens=400)
    assert answer.behaviors[0].name == behavior_for(PROMPT[0]["content"])["name"]
    assert result.finish_reason == "stop"
    assert "Keep it shorter" in fake.bodies[1]["messages"][-1]["content"]


def test_a_schema_error_is_an_output_error_not_truncation(fake: FakeOpenAI, make_client: Any) -> None:
    fake.fail(Fault("invalid"))
    with pytest.raises(LLMOutputError) as info:
        make_client(output_retries=1).chat_json(PROMPT, Extraction)
    assert not isinstance(info.value, LLMTruncatedError)
    assert "instruction: Field required" in str(info.value)


def test_a_whole_answer_that_hit_the_limit_exactly_is_kept() -> None:
    exchange = JsonExchange(PROMPT, Extraction, retries=0)
    whole = json.dumps({"behaviors": [behavior_for("x")]})
    assert exchange.accept(whole, "length", "m", 400) is not None
