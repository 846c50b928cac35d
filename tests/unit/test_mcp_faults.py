"""The MCP server and the search tool under faults: a broken or locked store gives readable tool errors.

In process (the SDK's client connects to the ``MCPServer`` directly); real SQLite files.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

from mcp import Client

from behavior_memory import BehaviorMemory
from behavior_memory.config.settings import BehaviorMemoryConfig
from behavior_memory.injection.search import BehaviorSearch, search_result_names
from behavior_memory.mcp_server.server import build_server


def _memory(path: Path, namespace: str = "acme/bot") -> BehaviorMemory:
    config = BehaviorMemoryConfig.model_validate(
        {"namespace": namespace, "store": {"path": str(path)}, "embeddings": {"provider": "hashing"}}
    )
    return BehaviorMemory(config)


def _text(result: Any) -> str:
    return "\n".join(part.text for part in result.content if getattr(part, "text", None))


@pytest.fixture
def memory(tmp_path: Path) -> Any:
    with _memory(tmp_path / "handbook.db") as mem:
        mem.handbook.add("behavior_check_units", "Check that the units of every quantity match before adding.")
        yield mem


def _break(memory: BehaviorMemory, path: Path) -> None:
    """The store's file is overwritten with garbage: every new connection finds no database."""
    memory.store.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.write_bytes(b"this is not a database at all " * 200)


async def test_a_broken_store_gives_tool_errors_and_the_server_goes_on(memory: BehaviorMemory, tmp_path: Path) -> None:
    server, tools = build_server(memory, timeout_s=5)
    async with Client(server) as client:
        assert not (await client.call_tool("get_behavior", {"name": "behavior_check_units"})).is_error
        _break(memory, tmp_path / "handbook.db")
        calls: list[tuple[str, dict[str, Any]]] = [
            ("search_behaviors", {"query": "units"}),
            ("get_behavior", {"name": "behavior_check_units"}),
            ("propose_behavior", {"name": "behavior_new_one", "instruction": "Estimate first.", "evidence": "e"}),
            ("record_feedback", {"trace_id": "0" * 32, "outcome": "success"}),
        ]
        for name, arguments in calls:
            result = await client.call_tool(name, arguments)
            assert result.is_error, name
            message = _text(result)
            assert "handbook is unavailable" in message, (name, message)
            assert str(tmp_path) not in message  # a fault's details stay in the server's log
        assert len((await client.list_tools()).tools) == 4  # still serving
    tools.close()


async def test_a_locked_store_answers_within_the_budget(tmp_path: Path) -> None:
    path = tmp_path / "handbook.db"
    with _memory(path) as memory:
        memory.handbook.add("behavior_check_units", "Check that the units of every quantity match before adding.")
        server, tools = build_server(memory, timeout_s=1.5)
        holder = sqlite3.connect(path, timeout=0)
        holder.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        try:
            async with Client(server) as client:
                started = time.monotonic()
                arguments = {"name": "behavior_new_one", "instruction": "Estimate first.", "evidence": "seen"}
                result = await client.call_tool("propose_behavior", arguments)
                assert result.is_error
                assert time.monotonic() - started < 10
        finally:
            holder.rollback()
            holder.close()
            tools.close()


def test_search_never_raises_and_says_why(memory: BehaviorMemory, tmp_path: Path) -> None:
    search = BehaviorSearch(memory, timeout_s=5)
    found = search.search("units of a quantity", namespace="acme/bot")
    assert found.status == "ok" and found.names == ("behavior_check_units",)
    assert search_result_names(found.text) == ["behavior_check_units"]
    assert search.search("   ").status == "invalid"
    assert "between 1 and 20" in search.search("units", k=99).text
    assert search.search("units", namespace="other/tenant").status == "empty"
    _break(memory, tmp_path / "handbook.db")
    broken = search.search("units of a quantity", namespace="acme/bot")
    assert broken.status == "error" and "unavailable" in broken.text and not broken.names
    search.close()


def test_search_result_names_reads_only_line_openings() -> None:
    text = "Here is a list of behaviors:\nbehavior_a_b: use behavior_c_d too\nbehavior_e_f: go\nnot behavior_g_h: x"
    assert search_result_names(text) == ["behavior_a_b", "behavior_e_f"]
    assert search_result_names(None) == []


def test_without_the_extra_bmem_mcp_names_the_pip_command(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from behavior_memory.cli.main import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "behavior-memory.yaml").write_text("store:\n  path: h.db\nembeddings:\n  provider: hashing\n")
    monkeypatch.setitem(sys.modules, "mcp", None)  # as if the SDK were not installed
    result = CliRunner().invoke(cli, ["mcp"])
    assert result.exit_code == 1
    assert 'pip install "behavior-memory[mcp]"' in result.output
