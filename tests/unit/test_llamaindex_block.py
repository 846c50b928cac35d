"""LlamaIndex memory block, retriever and node postprocessor (offline: no model server)."""

from __future__ import annotations

import asyncio
import logging

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core.base.llms.types import ChatMessage, ImageBlock, TextBlock
from llama_index.core.memory import InsertMethod, Memory
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig
from behavior_memory.adapters.llamaindex import (
    BehaviorMemoryBlock,
    BehaviorNodePostprocessor,
    LlamaIndexBehaviorRetriever,
)
from behavior_memory.types import BehaviorStatus


@pytest.fixture
def memory(tmp_path):
    cfg = BehaviorMemoryConfig.model_validate(
        {
            "store": {"path": str(tmp_path / "h.db")},
            "embeddings": {"provider": "hashing"},
            "reflection": {"mode": "manual"},
            "retrieval": {"strategy": "lexical"},
        }
    )
    m = BehaviorMemory(cfg)
    m.handbook.add(
        "behavior_inclusion_exclusion", "Count a union by adding set sizes and subtracting overlaps.", topic="counting"
    )
    m.handbook.add("behavior_angle_sum", "The interior angles of a triangle sum to 180 degrees.", topic="geometry")
    yield m
    m.close()


def _user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="system", content="be brief"), ChatMessage(role="user", content=text)]


async def test_block_renders_behaviors_for_the_last_user_message(memory):
    block = BehaviorMemoryBlock(memory)
    assert block.priority == 0  # Memory never truncates it
    text = await block.aget(_user("count the union of two sets with overlaps"), session_id="s1")
    assert "behavior_inclusion_exclusion: Count a union" in text
    assert "behavior_angle_sum" not in text


async def test_block_is_cached_per_task_so_every_step_sends_the_same_bytes(memory, monkeypatch):
    block = BehaviorMemoryBlock(memory)
    calls = []
    original = memory.aretrieve

    async def counting(*args, **kwargs):
        calls.append(args)
        return await original(*args, **kwargs)

    monkeypatch.setattr(memory, "aretrieve", counting)
    history = _user("count the union of sets with overlaps")
    first = await block.aget(history, session_id="s1")
    # later steps: tool calls and results pile up after the user message; the handbook changes too
    history += [ChatMessage(role="assistant", content="calling a tool"), ChatMessage(role="tool", content="47")]
    memory.handbook.add("behavior_union_overlap", "Subtract overlaps when counting a union of sets.")
    assert await block.aget(history, session_id="s1") == first
    assert len(calls) == 1
    # another session (run) with the same task retrieves again and sees the new behavior
    assert "behavior_union_overlap" in await block.aget(history, session_id="s2")


async def test_empty_or_image_only_user_message_gives_no_block(memory):
    block = BehaviorMemoryBlock(memory)
    assert await block.aget([ChatMessage(role="user", content="")], session_id="s") == ""
    assert await block.aget([], session_id="s") == ""
    assert await block.aget(None) == ""
    image_only = ChatMessage(role="user", blocks=[ImageBlock(url="http://example.com/a.png")])
    assert await block.aget([image_only], session_id="s") == ""


async def test_multimodal_message_uses_its_text(memory):
    block = BehaviorMemoryBlock(memory)
    mixed = ChatMessage(
        role="user",
        blocks=[ImageBlock(url="http://example.com/t.png"), TextBlock(text="angles of this triangle sum to what")],
    )
    assert "behavior_angle_sum" in await block.aget([mixed], session_id="s")


async def test_retrieval_failure_gives_no_block_and_is_logged(memory, monkeypatch, caplog):
    async def broken(*args, **kwargs):
        raise OSError("store unreachable")

    monkeypatch.setattr(memory, "aretrieve", broken)
    with caplog.at_level(logging.WARNING):
        assert await BehaviorMemoryBlock(memory).aget(_user("count sets"), session_id="s") == ""
    assert "store unreachable" in caplog.text


async def test_slow_retrieval_times_out_without_blocking_the_agent(memory, monkeypatch, caplog):
    async def slow(*args, **kwargs):
        await asyncio.sleep(5)

    monkeypatch.setattr(memory, "aretrieve", slow)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with caplog.at_level(logging.WARNING):
        assert await BehaviorMemoryBlock(memory, timeout_s=0.05).aget(_user("count sets"), session_id="s") == ""
    assert loop.time() - started < 1.0
    assert "took longer than" in caplog.text


async def test_token_budget_keeps_whole_behaviors(memory):
    for i in range(30):
        memory.handbook.add(f"behavior_count_case_{i}", f"Count case {i} of the union of sets separately.")
    block = BehaviorMemoryBlock(memory, k=30, token_budget=150)
    text = await block.aget(_user("count the union of sets"), session_id="s")
    lines = [line for line in text.splitlines() if line.startswith("behavior_")]
    assert 0 < len(lines) < 30
    assert all(line.endswith(".") for line in lines)  # no behavior cut in half
    smaller = await block.atruncate(text, 40)
    assert smaller is None or len(smaller) < len(text)
    assert all(line.endswith(".") for line in (smaller or "").splitlines() if line.startswith("behavior_"))


async def test_long_history_in_memory_keeps_the_block_whole(memory):
    block = BehaviorMemoryBlock(memory)
    chat = Memory.from_defaults(
        session_id="long", memory_blocks=[block], token_limit=600, insert_method=InsertMethod.SYSTEM
    )
    for i in range(60):
        await chat.aput(ChatMessage(role="user" if i % 2 == 0 else "assistant", content=f"turn {i} " + "x " * 40))
    await chat.aput(ChatMessage(role="user", content="count the union of two sets with overlaps"))
    messages = await chat.aget()
    assert messages[0].role == "system"
    assert "behavior_inclusion_exclusion: Count a union by adding set sizes and subtracting overlaps." in (
        messages[0].content or ""
    )
    assert messages[-1].content == "count the union of two sets with overlaps"


def test_retriever_returns_behaviors_as_text_nodes(memory):
    nodes = LlamaIndexBehaviorRetriever(memory, k=5).retrieve("union of sets overlaps count")
    assert nodes and isinstance(nodes[0], NodeWithScore)
    top = nodes[0]
    assert (
        top.node.get_content()
        == "behavior_inclusion_exclusion: Count a union by adding set sizes and subtracting overlaps."
    )
    assert top.node.metadata["name"] == "behavior_inclusion_exclusion"
    assert top.node.metadata["status"] == "active" and top.node.metadata["topic"] == "counting"
    assert top.node.metadata["score"] == top.score and top.node.metadata["retriever"]
    # the same keys as the LangChain retriever's documents; only the name reaches the LLM text
    assert set(top.node.metadata) >= {"name", "instruction", "status", "namespace", "tags", "version"}
    assert top.node.get_metadata_str(MetadataMode.LLM) == "name: behavior_inclusion_exclusion"
    assert top.score is not None and top.score > 0


async def test_retriever_async_twin_and_topic(memory):
    nodes = await LlamaIndexBehaviorRetriever(memory, topic="geometry").aretrieve("triangle angles")
    assert [n.node.metadata["name"] for n in nodes] == ["behavior_angle_sum"]


def _node(name: str, score: float | None, status: str = "active", text: str | None = None) -> NodeWithScore:
    return NodeWithScore(
        node=TextNode(id_=name, text=text or f"{name}: do it.", metadata={"name": name, "status": status}),
        score=score,
    )


def test_postprocessor_applies_status_floor_and_budget():
    nodes = [
        _node("behavior_a", 0.9),
        _node("behavior_q", 0.95, status=str(BehaviorStatus.QUARANTINED)),
        _node("behavior_x", 0.8, status=str(BehaviorStatus.ARCHIVED)),
        _node("behavior_long", 0.7, text="behavior_long: " + "word " * 200),
        _node("behavior_b", 0.6),
        _node("behavior_low", 0.1),
        _node("behavior_none", None),
    ]
    kept = BehaviorNodePostprocessor(floor=0.5, token_budget=40).postprocess_nodes(nodes)
    # the long one would overflow the budget and is skipped whole; a shorter later one still fits
    assert [n.node.metadata["name"] for n in kept] == ["behavior_a", "behavior_b", "behavior_none"]
    assert BehaviorNodePostprocessor().postprocess_nodes([]) == []
    everything = BehaviorNodePostprocessor(statuses=("active", "archived")).postprocess_nodes(nodes)
    assert "behavior_x" in [n.node.metadata["name"] for n in everything]


def test_the_adapter_exports_a_pinned_set_of_names():
    import behavior_memory.adapters.llamaindex as adapter

    assert set(adapter.__all__) == {
        "FAST_MEMORY_BLOCKS_TEMPLATE",
        "NAMESPACE_TAG",
        "RUN_TAG",
        "TOPIC_TAG",
        "USER_TAG",
        "BehaviorMemoryAgent",
        "BehaviorMemoryBlock",
        "BehaviorNodePostprocessor",
        "InProcessChatStore",
        "LlamaIndexBehaviorRetriever",
        "LlamaIndexInstrumentation",
        "behavior_chat_memory",
        "behavior_node",
        "choose_insert_method",
        "instrument",
        "instrumentation_for",
        "search_behaviors_tool",
        "uninstrument",
        "wrap",
    }
    assert all(hasattr(adapter, name) for name in adapter.__all__)
