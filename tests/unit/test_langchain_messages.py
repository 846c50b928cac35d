"""The LangChain message translation hands every rule to the core: clip, tool-call line, reasoning."""

from __future__ import annotations

from langchain_core.messages import AIMessage, ToolMessage

from behavior_memory.adapters.langchain._messages import output_text, reasoning_text, tool_outcome
from behavior_memory.recording.text import MAX_RECORDED_CHARS, clip, tool_call_line


def test_tool_calls_are_the_cores_tool_call_lines():
    message = AIMessage(content="Let me add.", tool_calls=[{"name": "add", "args": {"b": 2, "a": 1}, "id": "call_1"}])
    assert output_text(message) == "Let me add.\n" + tool_call_line("add", {"a": 1, "b": 2})
    assert output_text(message).endswith('tool_call: add({"a": 1, "b": 2})')


def test_reasoning_comes_from_the_core_fields_then_content_blocks():
    assert reasoning_text(AIMessage("4", additional_kwargs={"reasoning": "2+2 is 4"})) == "2+2 is 4"
    assert reasoning_text(AIMessage("4", additional_kwargs={"reasoning_content": "older vLLM"})) == "older vLLM"
    blocks = [{"type": "reasoning", "reasoning": "think"}, {"type": "thinking", "thinking": "more"}, "4"]
    assert reasoning_text(AIMessage(blocks)) == "think\nmore"
    assert reasoning_text(AIMessage("4")) is None


def test_texts_are_left_whole_for_the_recorder_to_clip_once():
    long = "x" * (MAX_RECORDED_CHARS + 50)
    assert output_text(AIMessage(long)) == long
    assert tool_outcome(ToolMessage(long, tool_call_id="c")) == (long, None)
    assert tool_outcome(ToolMessage("bad input", tool_call_id="c", status="error")) == (None, "bad input")
    assert clip(long).endswith("[... 50 characters cut ...]")
