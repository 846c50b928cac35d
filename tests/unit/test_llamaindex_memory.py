"""The fast per-run Memory: in-process chat store and the jinja-free default template."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core.base.llms.types import ChatMessage, ImageBlock, TextBlock
from llama_index.core.memory import InsertMethod, Memory
from llama_index.core.memory.memory import DEFAULT_MEMORY_BLOCKS_TEMPLATE
from llama_index.core.storage.chat_store.base_db import MessageStatus

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig
from behavior_memory.adapters.llamaindex import BehaviorMemoryBlock
from behavior_memory.adapters.llamaindex.chat_store import (
    FAST_MEMORY_BLOCKS_TEMPLATE,
    InProcessChatStore,
    behavior_chat_memory,
)

TEXTS = [
    "a\n\nb",
    "  x  ",
    "x\n",
    "",
    "\n\nlead",
    "tab\there\n  indented\n\n\nend  ",
    "{% raw %} {{ y }} <tag> & done",
    "A behavior is a note.\n\nHere is a list of behaviors:\nbehavior_x: do x.\n\nSolve it.",
]


@pytest.mark.parametrize("text", TEXTS)
def test_fast_template_renders_exactly_what_the_jinja_template_renders(text):
    for blocks in (
        [("behaviors", [TextBlock(text=text)])],
        [("a", [TextBlock(text=text), TextBlock(text="t2")]), ("b", [TextBlock(text=text)])],
    ):
        fast = FAST_MEMORY_BLOCKS_TEMPLATE.format_messages(memory_blocks=blocks)
        slow = DEFAULT_MEMORY_BLOCKS_TEMPLATE.format_messages(memory_blocks=blocks)
        assert [(m.role, [b.text for b in m.blocks]) for m in fast] == [
            (m.role, [b.text for b in m.blocks]) for m in slow
        ]


def test_fast_template_falls_back_to_jinja_for_images():
    blocks = [("pics", [TextBlock(text="see"), ImageBlock(url="http://example.com/a.png")])]
    fast = FAST_MEMORY_BLOCKS_TEMPLATE.format_messages(memory_blocks=blocks)
    slow = DEFAULT_MEMORY_BLOCKS_TEMPLATE.format_messages(memory_blocks=blocks)
    assert [type(b) for b in fast[0].blocks] == [type(b) for b in slow[0].blocks]


async def test_in_process_chat_store_behaves_like_a_table():
    store = InProcessChatStore()
    msgs = [ChatMessage(role="user", content=f"m{i}") for i in range(5)]
    await store.add_messages("k", msgs[:3])
    await store.add_message("k", msgs[3])
    await store.add_message("other", msgs[4])
    assert [m.content for m in await store.get_messages("k")] == ["m0", "m1", "m2", "m3"]
    assert [m.content for m in await store.get_messages("k", limit=2, offset=1)] == ["m1", "m2"]
    got = await store.get_messages("k")
    got[0].content = "mutated"  # reads are copies, as rows from a database
    assert (await store.get_messages("k"))[0].content == "m0"
    archived = await store.archive_oldest_messages("k", 2)
    assert [m.content for m in archived] == ["m0", "m1"]
    assert await store.count_messages("k") == 2
    assert await store.count_messages("k", status=MessageStatus.ARCHIVED) == 2
    assert await store.count_messages("k", status=None) == 4
    assert [m.content for m in await store.delete_oldest_messages("k", 1)] == ["m0"]
    assert (await store.delete_message("k", 0)).content == "m1"
    assert await store.delete_message("k", 9) is None
    await store.delete_messages("k", status=MessageStatus.ACTIVE)
    assert await store.count_messages("k", status=None) == 0
    await store.set_messages("other", msgs[:1])
    assert sorted(await store.get_keys()) == ["k", "other"]
    await store.delete_messages("other")
    assert await store.get_keys() == ["k"]


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
    m.handbook.add("behavior_inclusion_exclusion", "Count a union by adding set sizes and subtracting overlaps.")
    yield m
    m.close()


@pytest.mark.parametrize("insert_method", [InsertMethod.SYSTEM, InsertMethod.USER])
async def test_fast_chat_memory_gives_the_same_messages_as_memory_from_defaults(memory, insert_method):
    block = BehaviorMemoryBlock(memory)
    fast = behavior_chat_memory(block, session_id="s", insert_method=insert_method, token_limit=400)
    slow = Memory.from_defaults(session_id="s", memory_blocks=[block], insert_method=insert_method, token_limit=400)
    for chat in (fast, slow):
        for i in range(30):  # enough to flush the oldest turns out of the short-term queue
            await chat.aput(ChatMessage(role="user" if i % 2 == 0 else "assistant", content=f"turn {i} " + "x " * 20))
        await chat.aput(ChatMessage(role="user", content="count the union of sets with overlaps"))
    got, want = await fast.aget(), await slow.aget()
    assert [(m.role, m.content) for m in got] == [(m.role, m.content) for m in want]
    assert "behavior_inclusion_exclusion: Count a union" in "".join(m.content or "" for m in got)
