import pytest

from behavior_memory import Behavior
from behavior_memory.errors import ConfigError
from behavior_memory.injection.render import RenderedBlock, parse_citations, render_block
from behavior_memory.injection.tokens import count_tokens


def _b(name, instruction="Do the thing carefully."):
    return Behavior(name=name, instruction=instruction)


def test_block_has_the_papers_parts_in_order():
    block = render_block([_b("behavior_alpha", "Alpha rule."), _b("behavior_beta", "Beta rule.")])
    assert isinstance(block, str) and isinstance(block, RenderedBlock)
    assert "Here is a list of behaviors:" in block
    assert block.index("behavior_alpha: Alpha rule.") < block.index("behavior_beta: Beta rule.")
    assert "refer to it explicitly by its name" in block
    assert block.names == ("behavior_alpha", "behavior_beta")
    assert block.tokens == count_tokens(block)


def test_same_behaviors_render_byte_identical():
    items = [_b("behavior_alpha"), _b("behavior_beta")]
    assert str(render_block(items)) == str(render_block([b.model_copy() for b in items]))


def test_no_behaviors_means_empty_block():
    block = render_block([])
    assert block == "" and block.names == ()


def test_token_budget_drops_whole_behaviors_never_halves():
    items = [_b(f"behavior_rule_{i}", "A fairly long instruction " * 5) for i in range(20)]
    full = render_block(items)
    budget = full.tokens // 2
    block = render_block(items, token_budget=budget)
    assert 0 < len(block.names) < 20
    assert block.tokens <= budget + 2  # per-line counting may differ from the whole by a token or two
    assert set(block.names) | set(block.dropped) == {b.name for b in items}
    for line in block.splitlines():
        if line.startswith("behavior_"):
            assert line.endswith(items[0].instruction.strip())


def test_budget_too_small_for_any_behavior_gives_empty_block():
    block = render_block([_b("behavior_alpha")], token_budget=5)
    assert block == "" and block.dropped == ("behavior_alpha",)


def test_duplicates_are_rendered_once():
    block = render_block([_b("behavior_alpha"), _b("behavior_alpha")])
    assert block.count("behavior_alpha:") == 1


def test_template_override_must_keep_placeholder():
    block = render_block([_b("behavior_alpha")], template="Use these:\n{behaviors}")
    assert block.startswith("Use these:\nbehavior_alpha:")
    with pytest.raises(ConfigError, match="behaviors"):
        render_block([_b("behavior_alpha")], template="no placeholder")


def test_parse_citations_order_unique_and_known_filter():
    text = "Using behavior_beta, then behavior_alpha. Again behavior_beta; also behavior_made_up."
    assert parse_citations(text) == ["behavior_beta", "behavior_alpha", "behavior_made_up"]
    assert parse_citations(text, known={"behavior_alpha", "behavior_beta"}) == ["behavior_beta", "behavior_alpha"]
    assert parse_citations(None) == [] and parse_citations("") == []
    assert parse_citations("mybehavior_alpha is not a citation") == []


def test_append_block_keeps_the_prompt_a_prefix_and_leaves_it_alone_without_behaviors():
    from behavior_memory.injection.render import append_block

    block = render_block([_b("behavior_alpha")])
    assert append_block("Base prompt.", block) == "Base prompt.\n\n" + block
    assert append_block("Base prompt.", render_block([])) == "Base prompt."
    assert append_block("", block) == str(block)
