import pytest
from pydantic import ValidationError

from behavior_memory import Behavior, TokenUsage, Trace
from behavior_memory.errors import InvalidBehaviorError, InvalidInputError
from behavior_memory.types import (
    MAX_INSTRUCTION_CHARS,
    Step,
    normalize_behavior_name,
    validate_behavior_name,
    validate_instruction,
    validate_namespace,
)


@pytest.mark.parametrize("name", ["behavior_ab", "behavior_inclusion_exclusion", "behavior_x2_y3"])
def test_valid_names(name):
    assert validate_behavior_name(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("inclusion_exclusion", "must start with 'behavior_'"),
        ("behavior_A", "must match"),
        ("behavior_a", "must match"),  # one character after the prefix
        ("behavior_has-dash", "must match"),
        ("behavior_" + "a" * 81, "must match"),
    ],
)
def test_invalid_names_say_why(name, reason):
    with pytest.raises(InvalidBehaviorError, match=reason):
        validate_behavior_name(name)


def test_normalize_name_from_model_output():
    assert normalize_behavior_name("Behavior Inclusion-Exclusion") == "behavior_inclusion_exclusion"
    assert normalize_behavior_name("angle sum") == "behavior_angle_sum"
    with pytest.raises(InvalidBehaviorError):
        normalize_behavior_name("!!")


def test_instruction_rules():
    assert validate_instruction("  Count a union.  ") == "Count a union."
    with pytest.raises(InvalidBehaviorError, match="one line"):
        validate_instruction("first\nsecond")
    with pytest.raises(InvalidBehaviorError, match="empty"):
        validate_instruction("   ")
    with pytest.raises(InvalidBehaviorError, match="at most"):
        validate_instruction("x" * (MAX_INSTRUCTION_CHARS + 1))


def test_namespace_rules():
    assert validate_namespace("acme/support-bot/alice") == "acme/support-bot/alice"
    for bad in ["", "a//b", "/a", "a b", "x" * 65]:
        with pytest.raises(InvalidInputError):
            validate_namespace(bad)


def test_behavior_model_validates_and_renders_line():
    b = Behavior(name="behavior_angle_sum", instruction="Angles of a triangle sum to 180 degrees.", topic="geometry")
    assert b.line == "behavior_angle_sum: Angles of a triangle sum to 180 degrees."
    assert "angle sum" in b.text and "geometry" in b.text
    with pytest.raises(ValidationError, match="must start with"):
        Behavior(name="angle_sum", instruction="x")
    with pytest.raises(ValidationError):
        Behavior(name="behavior_ok", instruction="x", unknown_field=1)


def test_usage_from_openai_and_langchain_shapes():
    openai_shape = {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "prompt_tokens_details": {"cached_tokens": 8},
        "completion_tokens_details": {"reasoning_tokens": 3},
    }
    u = TokenUsage.from_any(openai_shape)
    assert (u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.reasoning_tokens) == (10, 5, 8, 3)
    lc = TokenUsage.from_any(
        {"input_tokens": 7, "output_tokens": 2, "total_tokens": 9, "input_token_details": {"cache_read": 4}}
    )
    assert (lc.prompt_tokens, lc.completion_tokens, lc.cached_tokens, lc.reasoning_tokens) == (7, 2, 4, None)
    assert TokenUsage.from_any(None) is None


def test_trace_usage_sums_steps_and_keeps_unknown_as_none():
    t = Trace(
        task="t",
        steps=[
            Step(kind="model", usage=TokenUsage(prompt_tokens=3, completion_tokens=2, total_tokens=5)),
            Step(kind="tool", name="calc"),
            Step(kind="model", usage=TokenUsage(prompt_tokens=4, completion_tokens=1, total_tokens=5, cached_tokens=2)),
        ],
    )
    assert t.usage.prompt_tokens == 7 and t.usage.total_tokens == 10
    assert t.usage.cached_tokens == 2 and t.usage.reasoning_tokens is None
