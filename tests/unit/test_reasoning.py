"""Reasoning split from content: server fields first, then <think> tags."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from openai.types.chat import ChatCompletionMessage

from behavior_memory.llm.reasoning import extract_reasoning, message_field, split_think_tags


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("The answer is 4.", ("The answer is 4.", None)),
        ("", ("", None)),
        (None, ("", None)),
        ("<think>2+2=4</think>\n\nThe answer is 4.", ("The answer is 4.", "2+2=4")),
        ("  <think>\nstep one\n</think>4", ("4", "step one")),
        ("<think>a</think>x<think>b</think>y", ("xy", "a\n\nb")),
        ("<think>cut off while thin", ("", "cut off while thin")),
        ("<think>a</think>4<think>cut", ("4", "a\n\ncut")),
        ("opened by the template</think>\n4", ("4", "opened by the template")),
        ("<think></think>\n\n4", ("4", None)),
        ("<think>\n\n</think>", ("", None)),
    ],
    ids=[
        "plain", "empty", "none", "block", "leading_space", "two_blocks", "unclosed",
        "closed_then_unclosed", "opened_in_prompt", "empty_block", "only_empty_block",
    ],
)  # fmt: skip
def test_split_think_tags(content: str | None, expected: tuple[str, str | None]) -> None:
    assert split_think_tags(content) == expected


def test_reasoning_field_wins_over_reasoning_content_and_tags() -> None:
    message = {"content": "<think>tags</think>4", "reasoning": "field", "reasoning_content": "old"}
    assert extract_reasoning(message) == ("<think>tags</think>4", "field")


def test_reasoning_content_wins_over_tags() -> None:
    assert extract_reasoning({"content": "4", "reasoning_content": "old"}) == ("4", "old")


def test_empty_reasoning_field_falls_back_to_tags() -> None:
    assert extract_reasoning({"content": "<think>t</think>4", "reasoning": ""}) == ("4", "t")


def test_openai_message_extra_field_is_read() -> None:
    message = ChatCompletionMessage.model_validate({"role": "assistant", "content": "4", "reasoning": "vllm reasoning"})
    assert message_field(message, "reasoning") == "vllm reasoning"
    assert extract_reasoning(message) == ("4", "vllm reasoning")


def test_plain_objects_and_none() -> None:
    assert extract_reasoning(SimpleNamespace(content="4", reasoning_content="r")) == ("4", "r")
    assert extract_reasoning(SimpleNamespace(content=None)) == ("", None)
    assert extract_reasoning(None) == ("", None)
    assert message_field(None, "content") is None
