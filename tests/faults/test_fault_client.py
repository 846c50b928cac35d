"""LLMClient against a server that fails: how each fault is named, retried, waited for and fenced off."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from fake_openai import FakeOpenAI, Fault

from behavior_memory.errors import (
    LLMBadResponseError,
    LLMConnectionError,
    LLMError,
    LLMStatusError,
    LLMTimeoutError,
    is_transient,
)
from behavior_memory.llm.resilience import RetryPolicy, breaker_for

USER = [{"role": "user", "content": "What is 2+2?"}]

# -- classification -----------------------------------------------------------------------------

FAULTS = {
    "500": (Fault("status", status=500), LLMStatusError, "HTTP 500"),
    "502-json": (Fault("status", status=502), LLMStatusError, "HTTP 502"),
    "503": (Fault("status", status=503), LLMStatusError, "HTTP 503"),
    "429": (Fault("status", status=429), LLMStatusError, "HTTP 429"),
    "404": (Fault("status", status=404), LLMStatusError, "HTTP 404"),
    "html-200": (Fault("html", status=200), LLMBadResponseError, "an HTML page"),
    "html-502": (Fault("html", status=502), LLMStatusError, "an HTML page"),
    "hang": (Fault("hang", hang_s=5.0), LLMTimeoutError, "no answer within 0.3s"),
    "drop": (Fault("drop"), LLMConnectionError, "cannot reach the model server"),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_each_fault_is_named_and_transient(fake: FakeOpenAI, make_client: Any, name: str) -> None:
    fault, error, words = FAULTS[name]
    fake.fail(fault)
    with pytest.raises(error) as info:
        make_client(max_retries=0, timeout_s=0.3).chat(USER)
    assert is_transient(info.value), info.value
    assert words in str(info.value) and fake.url in str(info.value)
    assert fake.count() == 1  # max_retries=0: our policy is the only one, openai does not retry


@pytest.mark.parametrize("name", ["503", "html-200", "drop"])
async def test_async_faults_are_named_alike(fake: FakeOpenAI, make_client: Any, name: str) -> None:
    fault, error, words = FAULTS[name]
    fake.fail(fault)
    client = make_client(max_retries=0)
    with pytest.raises(error, match=words):
        await client.achat(USER)
    await client.aclose()


def test_html_instead_of_a_model_list_is_a_bad_response(fake: FakeOpenAI, make_client: Any) -> None:
    fake.fail(Fault("html", status=200))
    with pytest.raises(LLMBadResponseError):
        make_client(max_retries=0).models()


def test_a_bad_request_is_neither_transient_nor_retried(fake: FakeOpenAI, make_client: Any) -> None:
    fake.fail(Fault("status", status=400))
    with pytest.raises(LLMStatusError) as info:
        make_client(max_retries=5).chat(USER)
    assert info.value.status == 400 and not is_transient(info.value)
    assert fake.count() == 1
    assert breaker_for(fake.url).failures == 0  # the server answered: it is not unwell


# -- retries and backoff ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["status", "html", "drop", "hang"])
def test_transient_faults_are_retried_until_the_answer(fake: FakeOpenAI, make_client: Any, kind: str) -> None:
    fake.fail_next(Fault(kind, status=503, hang_s=5.0), Fault(kind, status=503, hang_s=5.0))
    result = make_client(max_retries=3, timeout_s=0.3, retry_budget_s=5.0).chat(USER)
    assert result.content.startswith("(a)")
    assert fake.count() == 3
    assert breaker_for(fake.url).failures == 0  # the answer closed the run of failures


async def test_async_retries_until_the_answer(fake: FakeOpenAI, make_client: Any) -> None:
    fake.fail_next(Fault("status", status=500), Fault("html", status=200))
    client = make_client(max_retries=3)
    assert (await client.achat(USER)).content.startswith("(a)")
    assert fake.count() == 3
    await client.aclose()


def test_backoff_waits_between_retries(fake: FakeOpenAI, make_client: Any) -> None:
    """Counted in requests: within one second, waiting retries make a handful, eager ones hundreds."""
    fake.fail(Fault("status", status=500))
    settings = {"max_retries": 10_000, "retry_budget_s": 1.0, "breaker_threshold": 0}
    with pytest.raises(LLMStatusError):
        make_client(**settings, backoff_base_s=0.05, backoff_max_s=0.4).chat(USER)
    waited = fake.count()
    fake.reset()
    fake.fail(Fault("status", status=500))
    with pytest.raises(LLMStatusError):
        make_client(**settings, backoff_base_s=0.0, backoff_max_s=0.0).chat(USER)
    eager = fake.count()
    assert 3 <= waited <= 25 and eager > 5 * waited, (waited, eager)


def test_retries_stop_at_the_budget(fake: FakeOpenAI, make_client: Any) -> None:
    fake.fail(Fault("hang", hang_s=5.0))
    started = time.monotonic()
    with pytest.raises(LLMTimeoutError, match=r"\(\d attempt\(s\)\)"):
        make_client(max_retries=50, timeout_s=0.3, retry_budget_s=1.0, breaker_threshold=0).chat(USER)
    assert time.monotonic() - started < 1.0 + 0.3 + 0.5  # the budget, one attempt more at most, slack
    assert 2 <= fake.count() <= 4


def test_full_jitter_stays_under_the_exponential_cap() -> None:
    policy = RetryPolicy(max_retries=10, budget_s=1e9, base_s=0.5, max_s=4.0)
    for retry, cap in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (8, 4.0)]:
        waits = [policy.delay(retry, 0.0) for _ in range(300)]
        assert all(w is not None and 0.0 <= w <= cap for w in waits)
        assert max(w for w in waits if w is not None) > cap * 0.8  # it spreads over the whole range
    assert policy.delay(10, 0.0) is None  # out of retries
    assert policy.delay(0, elapsed_s=1e9 + 1) is None  # out of time


# -- the circuit breaker ------------------------------------------------------------------------


def test_breaker_opens_fails_fast_for_every_client_and_recovers(fake: FakeOpenAI, make_client: Any) -> None:
    settings = {"max_retries": 0, "breaker_threshold": 3, "breaker_cooldown_s": 0.5}
    fake.fail(Fault("status", status=503))
    first = make_client(**settings)
    for _ in range(3):
        with pytest.raises(LLMStatusError):
            first.chat(USER)
    assert breaker_for(fake.url).state == "open"
    for client in (first, make_client(**settings)):  # shared by every client of that URL
        with pytest.raises(LLMConnectionError, match=r"circuit open: 3 transient failure\(s\).*retry in 0\.\d s"):
            client.chat(USER)
    assert fake.count() == 3  # failed fast: the server saw nothing more

    fake.heal()
    time.sleep(0.55)
    assert first.chat(USER).content.startswith("(a)")  # the half-open probe passes and closes it
    assert breaker_for(fake.url).state == "closed"
    assert first.chat(USER).content.startswith("(a)")
    assert fake.count() == 5


def test_a_failed_probe_opens_the_circuit_again(fake: FakeOpenAI, make_client: Any) -> None:
    client = make_client(max_retries=0, breaker_threshold=2, breaker_cooldown_s=0.3)
    fake.fail(Fault("html", status=200))
    for _ in range(2):
        with pytest.raises(LLMBadResponseError):
            client.chat(USER)
    time.sleep(0.35)
    with pytest.raises(LLMBadResponseError):
        client.chat(USER)  # the probe, and it fails
    with pytest.raises(LLMConnectionError, match="circuit open"):
        client.chat(USER)  # open again at once, for another cool-down
    assert fake.count() == 3


def test_half_open_lets_one_probe_through(fake: FakeOpenAI, make_client: Any) -> None:
    client = make_client(max_retries=0, breaker_threshold=1, breaker_cooldown_s=0.3)
    fake.fail(Fault("status", status=500))
    with pytest.raises(LLMStatusError):
        client.chat(USER)
    fake.heal()
    fake.answer_delay_s = 0.3  # the probe is still under way when the others arrive
    time.sleep(0.35)
    outcomes: list[str] = []

    def ask() -> None:
        try:
            client.chat(USER)
            outcomes.append("answer")
        except LLMError as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["LLMConnectionError"] * 3 + ["answer"]
    assert fake.count() == 2  # the first failure and the one probe


async def test_async_calls_fail_fast_on_an_open_circuit(fake: FakeOpenAI, make_client: Any) -> None:
    client = make_client(max_retries=0, breaker_threshold=2, breaker_cooldown_s=5.0)
    fake.fail(Fault("drop"))
    for _ in range(2):
        with pytest.raises(LLMConnectionError, match="cannot reach"):
            await client.achat(USER)
    with pytest.raises(LLMConnectionError, match="circuit open"):
        await client.achat(USER)
    assert fake.count() == 2
    await client.aclose()


def test_health_neither_waits_for_nor_moves_the_breaker(fake: FakeOpenAI, make_client: Any) -> None:
    client = make_client(max_retries=0, breaker_threshold=1, breaker_cooldown_s=5.0)
    fake.fail(Fault("status", status=503))
    with pytest.raises(LLMStatusError):
        client.chat(USER)
    fake.heal()
    assert client.health() is True  # the probe reports the server as it is
    assert breaker_for(fake.url).state == "open"
