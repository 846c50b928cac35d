"""Token counting: tiktoken cl100k_base from our package data, offline; len/4 fallback."""

from __future__ import annotations

import hashlib
import logging
import os

import pytest

from behavior_memory.injection import tokens


@pytest.fixture
def fresh_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget the cached encoding so the next call loads again (restored after the test)."""
    monkeypatch.setattr(tokens, "_encoding", None)
    monkeypatch.setattr(tokens, "_loaded", False)


def test_shipped_bpe_file_is_named_by_tiktokens_cache_key() -> None:
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    path = tokens.TIKTOKEN_DATA_DIR / hashlib.sha1(url.encode()).hexdigest()
    assert path.is_file()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == (
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"  # tiktoken's expected hash
    )


def test_counts_with_real_cl100k(fresh_tokens: None) -> None:
    assert tokens.count_tokens("") == 0
    assert tokens.count_tokens("hello world") == 2
    assert tokens.count_tokens("behavior_angle_sum: the interior angles of a triangle sum to 180°") > 10
    assert tokens.uses_tiktoken()


def test_special_token_text_is_counted_not_rejected(fresh_tokens: None) -> None:
    assert tokens.count_tokens("stop at <|endoftext|> please") > 3


def test_loads_offline_and_restores_cache_dir(fresh_tokens: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "/nonexistent/user-cache")
    assert tokens.count_tokens("hello world") == 2
    assert os.environ["TIKTOKEN_CACHE_DIR"] == "/nonexistent/user-cache"


def test_unset_cache_dir_stays_unset(fresh_tokens: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    tokens.count_tokens("x")
    assert "TIKTOKEN_CACHE_DIR" not in os.environ


def test_fallback_is_len_over_4_and_warns_once(
    fresh_tokens: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import tiktoken

    def broken(name: str) -> None:
        raise OSError("no network")

    monkeypatch.setattr(tiktoken, "get_encoding", broken)
    with caplog.at_level(logging.WARNING, logger="behavior_memory.injection.tokens"):
        assert tokens.count_tokens("abcdefghi") == 3  # ceil(9 / 4)
        assert tokens.count_tokens("abcd") == 1
        assert not tokens.uses_tiktoken()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "approximated" in warnings[0].getMessage()


def test_concurrent_first_use_loads_once(fresh_tokens: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import tiktoken

    real = tiktoken.get_encoding
    calls = []

    def counting(name: str) -> object:
        calls.append(name)
        return real(name)

    monkeypatch.setattr(tiktoken, "get_encoding", counting)
    with ThreadPoolExecutor(8) as pool:
        counts = list(pool.map(tokens.count_tokens, ["hello world"] * 32))
    assert counts == [2] * 32
    assert calls == ["cl100k_base"]
