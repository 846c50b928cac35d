"""The fault suite: LLMClient, chat_json and reflection against a real local server that fails on demand.

Nothing here needs vLLM: ``fake_openai.FakeOpenAI`` plays the model server. Each test gets its own
server (its own port, so its own circuit breaker), and the process-wide breakers are forgotten
between tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI
from scenario import FAST_LLM, memory_config

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig
from behavior_memory.llm.client import LLMClient
from behavior_memory.llm.config import LLMConfig
from behavior_memory.llm.resilience import reset_breakers


@pytest.fixture(autouse=True)
def _forget_breakers() -> Iterator[None]:
    reset_breakers()
    yield
    reset_breakers()


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def make_client(fake: FakeOpenAI) -> Iterator[Any]:
    """``make_client(**overrides)``: an LLMClient of the fake server with FAST_LLM settings."""
    opened: list[LLMClient] = []

    def make(**overrides: Any) -> LLMClient:
        client = LLMClient(LLMConfig(**{"base_url": fake.url, **FAST_LLM, **overrides}))
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()


@pytest.fixture
def make_memory(fake: FakeOpenAI, tmp_path: Path) -> Iterator[Any]:
    """``make_memory(**sections)``: a BehaviorMemory over a SQLite file in tmp_path, reflecting with the fake."""
    opened: list[BehaviorMemory] = []

    def make(**sections: dict[str, Any]) -> BehaviorMemory:
        memory = BehaviorMemory(BehaviorMemoryConfig.model_validate(memory_config(fake.url, tmp_path, **sections)))
        opened.append(memory)
        return memory

    yield make
    for memory in opened:
        memory.close()
