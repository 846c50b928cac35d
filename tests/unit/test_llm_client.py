"""LLMClient against a real local HTTP server that plays a scripted vLLM."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import BaseModel

from behavior_memory.errors import (
    LLMConnectionError,
    LLMError,
    LLMOutputError,
    LLMStatusError,
    LLMTimeoutError,
    LLMTruncatedError,
)
from behavior_memory.llm.client import ChatResult, LLMClient
from behavior_memory.llm.config import LLMConfig
from behavior_memory.llm.resilience import reset_breakers
from behavior_memory.llm.structured import extract_json_object
from behavior_memory.types import TokenUsage

# -- the scripted server ------------------------------------------------------------------------


@dataclass
class Reply:
    """One scripted HTTP answer."""

    body: Any
    status: int = 200
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


class ScriptedServer:
    """Answers requests from a queue of replies (then a sticky default) and records each request."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.default: Reply | None = None
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as vLLM's uvicorn does

            def do_GET(self) -> None:
                self._answer(None)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer(json.loads(raw) if raw else None)

            def _answer(self, body: Any) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply = server.take(Seen(self.command, self.path, headers, body))
                time.sleep(reply.delay_s)
                data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout tests)
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def take(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
            if self.replies:
                return self.replies.popleft()
            return self.default or Reply({"error": {"message": "no scripted reply"}}, status=418)

    def script(self, *replies: Reply, default: Reply | None = None) -> None:
        with self._lock:
            self.replies.extend(replies)
            self.default = default

    def reset(self) -> None:
        with self._lock:
            self.replies.clear()
            self.default = None
            self.seen.clear()

    @property
    def chats(self) -> list[Any]:
        return [s.body for s in self.seen if s.path.endswith("/chat/completions")]


@pytest.fixture(scope="module")
def scripted_server() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    thread = threading.Thread(target=server.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def server(scripted_server: ScriptedServer) -> Iterator[ScriptedServer]:
    scripted_server.reset()
    yield scripted_server
    scripted_server.reset()


_OPENED: list[LLMClient] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    reset_breakers()  # every test talks to the same server: one test's failures must not open its circuit
    yield
    while _OPENED:
        _OPENED.pop().close()
    reset_breakers()


def make_client(server: ScriptedServer, **overrides: Any) -> LLMClient:
    options: dict[str, Any] = {
        "base_url": server.url,
        "model": "test-model",
        "api_key": "sk-secret-key",
        "timeout_s": 2.0,
        "connect_timeout_s": 1.0,
        "max_retries": 0,
        "backoff_base_s": 0.01,  # retries here test what is retried; tests/faults test the waits
    }
    options.update(overrides)
    client = LLMClient(LLMConfig(**options))
    _OPENED.append(client)
    return client


def completion(
    content: str | None = "Hello.",
    *,
    reasoning: str | None = None,
    reasoning_content: str | None = None,
    finish_reason: str = "stop",
    usage: dict[str, Any] | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A chat completion body shaped like vLLM 0.33's."""
    message: dict[str, Any] = {"role": "assistant", "content": content, "tool_calls": tool_calls or []}
    if reasoning is not None:
        message["reasoning"] = reasoning
    if reasoning_content is not None:
        message["reasoning_content"] = reasoning_content
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "test-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}],
        "usage": usage
        or {
            "prompt_tokens": 12,
            "completion_tokens": 30,
            "total_tokens": 42,
            "prompt_tokens_details": {"cached_tokens": 8},
            "completion_tokens_details": {"reasoning_tokens": 20},
        },
    }


USER = [{"role": "user", "content": "What is 2+2?"}]


class Verdict(BaseModel):
    answer: int
    reason: str


# -- chat ---------------------------------------------------------------------------------------


def test_chat_returns_content_usage_and_sends_config(server: ScriptedServer) -> None:
    server.script(Reply(completion("4", reasoning="2+2 is 4")))
    client = make_client(server, extra_body={"top_k": 5}, temperature=0.3, max_tokens=64)
    result = client.chat(USER)

    assert isinstance(result, ChatResult)
    assert (result.content, result.reasoning, result.finish_reason) == ("4", "2+2 is 4", "stop")
    assert result.model == "test-model" and result.latency_s > 0 and result.tool_calls == []
    assert result.usage == TokenUsage(
        prompt_tokens=12, completion_tokens=30, total_tokens=42, cached_tokens=8, reasoning_tokens=20
    )
    (seen,) = server.seen
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == "Bearer sk-secret-key"
    assert seen.body["model"] == "test-model" and seen.body["messages"] == USER
    assert (seen.body["max_tokens"], seen.body["temperature"], seen.body["top_k"]) == (64, 0.3, 5)
    assert "response_format" not in seen.body


def test_chat_call_options_override_config(server: ScriptedServer) -> None:
    server.script(Reply(completion("ok")))
    tools = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]
    make_client(server, extra_body={"top_k": 5}).chat(
        USER, max_tokens=7, temperature=0.9, tools=tools, tool_choice="auto", extra_body={"top_k": 1}
    )
    body = server.chats[0]
    assert (body["max_tokens"], body["temperature"], body["top_k"]) == (7, 0.9, 1)
    assert body["tools"] == tools and body["tool_choice"] == "auto"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"content": "4", "reasoning": "from reasoning"}, ("4", "from reasoning")),
        ({"content": "4", "reasoning_content": "from reasoning_content"}, ("4", "from reasoning_content")),
        ({"content": "<think>from tags</think>\n\n4"}, ("4", "from tags")),
        ({"content": "<think>cut off while thin"}, ("", "cut off while thin")),
        ({"content": "4"}, ("4", None)),
    ],
    ids=["reasoning", "reasoning_content", "think_tags", "unclosed_think", "none"],
)
def test_chat_reads_reasoning_from_each_source(
    server: ScriptedServer, message: dict[str, Any], expected: tuple[str, str | None]
) -> None:
    server.script(Reply(completion(**message)))
    result = make_client(server).chat(USER)
    assert (result.content, result.reasoning) == expected


def test_chat_maps_missing_usage_details_to_none(server: ScriptedServer) -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, "prompt_tokens_details": None}
    server.script(Reply(completion("hi", usage=usage)))
    result = make_client(server).chat(USER)
    assert result.usage == TokenUsage(prompt_tokens=3, completion_tokens=2, total_tokens=5)


def test_chat_returns_tool_calls_as_dicts(server: ScriptedServer) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 2}'}}
    server.script(Reply(completion(None, tool_calls=[call], finish_reason="tool_calls")))
    result = make_client(server).chat(USER)
    assert result.content == "" and result.finish_reason == "tool_calls"
    assert result.tool_calls == [call]


def test_chat_logs_one_info_line_without_key_or_payload(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.script(Reply(completion("secret answer")))
    with caplog.at_level("INFO", logger="behavior_memory.llm.client"):
        make_client(server).chat(USER)
    lines = [r.getMessage() for r in caplog.records if r.name == "behavior_memory.llm.client"]
    assert len(lines) == 1
    assert "test-model" in lines[0] and "prompt_tokens=12" in lines[0] and "latency=" in lines[0]
    assert "sk-secret-key" not in caplog.text and "secret answer" not in caplog.text


def test_config_repr_hides_api_key() -> None:
    assert "sk-secret-key" not in repr(LLMConfig(api_key="sk-secret-key"))


# -- chat_json ----------------------------------------------------------------------------------


def test_chat_json_sends_json_schema_response_format(server: ScriptedServer) -> None:
    server.script(Reply(completion('{"answer": 4, "reason": "sum"}')))
    verdict, result = make_client(server).chat_json(USER, Verdict, name="verdict")
    assert verdict == Verdict(answer=4, reason="sum") and result.content.startswith("{")
    body = server.chats[0]
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "verdict", "schema": Verdict.model_json_schema()},
    }
    assert body["messages"] == USER  # the schema travels in the request, not the prompt


def test_chat_json_structured_outputs_mode_uses_extra_body(server: ScriptedServer) -> None:
    server.script(Reply(completion('{"answer": 4, "reason": "sum"}')))
    client = make_client(server, structured_output="structured_outputs", extra_body={"top_k": 2})
    client.chat_json(USER, Verdict)
    body = server.chats[0]
    assert body["structured_outputs"] == {"json": Verdict.model_json_schema()}
    assert body["top_k"] == 2 and "response_format" not in body


@pytest.mark.parametrize("mode", ["none", "json_object"])
def test_chat_json_prompt_modes_tolerate_fences_and_prose(server: ScriptedServer, mode: str) -> None:
    fenced = 'Sure! Here it is:\n```json\n{"answer": 4, "reason": "sum"}\n```\nAnything else?'
    server.script(Reply(completion(fenced)))
    verdict, _ = make_client(server, structured_output=mode).chat_json(USER, Verdict)
    assert verdict.answer == 4
    body = server.chats[0]
    assert body.get("response_format") == ({"type": "json_object"} if mode == "json_object" else None)
    prompt = body["messages"][-1]["content"]
    assert prompt.startswith("What is 2+2?") and '"reason"' in prompt and "JSON Schema" in prompt


def test_chat_json_reasks_after_invalid_output_then_succeeds(server: ScriptedServer) -> None:
    server.script(
        Reply(completion("I think it is four.")),
        Reply(completion('{"answer": "four", "reason": "sum"}')),
        Reply(completion('{"answer": 4, "reason": "sum"}', reasoning="fixed it")),
    )
    verdict, result = make_client(server, output_retries=2).chat_json(USER, Verdict)
    assert verdict == Verdict(answer=4, reason="sum") and result.reasoning == "fixed it"
    first, second, third = server.chats
    assert first["messages"] == USER
    assert second["messages"][1] == {"role": "assistant", "content": "I think it is four."}
    assert "no JSON object" in second["messages"][2]["content"]
    # The second correction replaces the first: the conversation does not grow with the re-asks.
    assert len(third["messages"]) == 3
    assert third["messages"][1]["content"] == '{"answer": "four", "reason": "sum"}'
    assert "answer" in third["messages"][2]["content"] and "integer" in third["messages"][2]["content"]


def test_chat_json_raises_output_error_after_retries(server: ScriptedServer) -> None:
    server.script(default=Reply(completion('{"answer": 4}')))
    with pytest.raises(LLMOutputError) as info:
        make_client(server, output_retries=1).chat_json(USER, Verdict)
    assert len(server.chats) == 2
    message = str(info.value)
    assert "Verdict" in message and "2 attempt(s)" in message and "reason" in message
    assert server.url in message and info.value.code == "llm_output"


def test_chat_json_names_truncation(server: ScriptedServer) -> None:
    server.script(default=Reply(completion('{"answer": 4, "rea', finish_reason="length")))
    with pytest.raises(LLMTruncatedError, match="cut off at max_tokens=16"):
        make_client(server, output_retries=0).chat_json(USER, Verdict, max_tokens=16)


def test_extract_json_object_cases() -> None:
    assert extract_json_object('{"a": 1}') == {"a": 1}
    assert extract_json_object('```\n{"a": 1}\n```') == {"a": 1}
    assert extract_json_object('The object {"a": {"b": [1, 2]}} and {"c": 3}') == {"a": {"b": [1, 2]}}
    assert extract_json_object('{not json} then {"a": 1}') == {"a": 1}
    assert extract_json_object("[1, 2]") is None
    assert extract_json_object("no json here") is None


# -- errors -------------------------------------------------------------------------------------


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_connection_refused_is_wrapped() -> None:
    url = closed_port_url()
    client = LLMClient(LLMConfig(base_url=url, max_retries=0, connect_timeout_s=1.0))
    with pytest.raises(LLMConnectionError) as info:
        client.chat(USER)
    assert url in str(info.value) and info.value.base_url == url
    assert info.value.__cause__ is not None
    assert client.health() is False


def test_timeout_is_wrapped(server: ScriptedServer) -> None:
    server.script(default=Reply(completion("late"), delay_s=0.6))
    with pytest.raises(LLMTimeoutError) as info:
        make_client(server, timeout_s=0.2, max_retries=1).chat(USER)
    assert server.url in str(info.value) and "0.2s" in str(info.value)
    assert len(server.chats) == 2  # openai retried the timeout once


def test_per_call_timeout_overrides_config(server: ScriptedServer) -> None:
    server.script(default=Reply(completion("late"), delay_s=0.6))
    with pytest.raises(LLMTimeoutError):
        make_client(server, timeout_s=5.0).chat(USER, timeout_s=0.2)


def test_server_error_is_retried_then_wrapped(server: ScriptedServer) -> None:
    server.script(default=Reply({"error": {"message": "engine died"}}, status=500))
    with pytest.raises(LLMStatusError) as info:
        make_client(server, max_retries=2).chat(USER)
    assert len(server.chats) == 3
    assert info.value.status == 500 and "engine died" in str(info.value) and server.url in str(info.value)


def test_server_error_then_success(server: ScriptedServer) -> None:
    server.script(Reply({"error": {"message": "busy"}}, status=503), Reply(completion("ok")))
    assert make_client(server, max_retries=1).chat(USER).content == "ok"
    assert len(server.chats) == 2


def test_bad_request_is_not_retried(server: ScriptedServer) -> None:
    body = {"object": "error", "message": "max_tokens is too large", "type": "BadRequestError", "code": 400}
    server.script(default=Reply(body, status=400))
    with pytest.raises(LLMStatusError) as info:
        make_client(server, max_retries=2).chat(USER)
    assert len(server.chats) == 1
    assert info.value.status == 400 and "max_tokens is too large" in str(info.value)
    assert isinstance(info.value, LLMError) and info.value.code == "llm_status"


# -- models and health --------------------------------------------------------------------------


MODELS = {
    "object": "list",
    "data": [{"id": "test-model", "object": "model", "created": 0, "owned_by": "vllm"}],
}


def test_models_and_health(server: ScriptedServer) -> None:
    server.script(Reply(MODELS), Reply(MODELS))
    client = make_client(server)
    assert client.models() == ["test-model"]
    assert client.health() is True
    assert [s.path for s in server.seen] == ["/v1/models", "/v1/models"]


def test_health_false_on_error_status(server: ScriptedServer) -> None:
    server.script(default=Reply({"error": {"message": "down"}}, status=503))
    client = make_client(server, max_retries=3)
    assert client.health() is False
    assert len(server.seen) == 1  # the probe does not retry


def test_models_error_is_wrapped(server: ScriptedServer) -> None:
    server.script(default=Reply({"error": {"message": "nope"}}, status=404))
    with pytest.raises(LLMStatusError) as info:
        make_client(server).models()
    assert info.value.status == 404


# -- async twins --------------------------------------------------------------------------------


async def test_achat(server: ScriptedServer) -> None:
    server.script(Reply(completion("<think>hmm</think>4")))
    async with make_client(server) as client:
        result = await client.achat(USER)
    assert (result.content, result.reasoning, result.usage and result.usage.cached_tokens) == ("4", "hmm", 8)


async def test_achat_json_reasks_then_raises(server: ScriptedServer) -> None:
    server.script(Reply(completion("nope")), Reply(completion('{"answer": 4, "reason": "sum"}')))
    client = make_client(server, output_retries=1)
    verdict, _ = await client.achat_json(USER, Verdict)
    assert verdict.answer == 4 and len(server.chats) == 2
    server.script(default=Reply(completion("still nope")))
    with pytest.raises(LLMOutputError):
        await client.achat_json(USER, Verdict)
    await client.aclose()


async def test_async_errors_are_wrapped(server: ScriptedServer) -> None:
    server.script(
        Reply({"error": {"message": "bad"}}, status=400),
        Reply(completion("late"), delay_s=0.6),
    )
    client = make_client(server, timeout_s=0.2)
    with pytest.raises(LLMStatusError):
        await client.achat(USER)
    with pytest.raises(LLMTimeoutError):
        await client.achat(USER)
    refused = LLMClient(LLMConfig(base_url=closed_port_url(), max_retries=0))
    with pytest.raises(LLMConnectionError):
        await refused.achat(USER)
    assert await refused.ahealth() is False
    await client.aclose()


async def test_amodels_and_ahealth(server: ScriptedServer) -> None:
    server.script(Reply(MODELS), Reply(MODELS))
    client = make_client(server)
    assert await client.amodels() == ["test-model"]
    assert await client.ahealth() is True
    await client.aclose()


def test_async_client_survives_several_event_loops(server: ScriptedServer) -> None:
    server.script(default=Reply(completion("ok")))
    client = make_client(server)
    used = []

    async def ask() -> str:
        answer = (await client.achat(USER)).content
        used.append(client._async_client())
        return answer

    # No aclose(): each new loop gets its own openai client and drops the finished loop's one.
    assert [asyncio.run(ask()) for _ in range(3)] == ["ok", "ok", "ok"]
    assert len({id(c) for c in used}) == 3 and len(client._async) == 1
    # A dropped client is marked closed, so its finalizer starts no close task on a new loop
    # (that task would fail with "Event loop is closed").
    assert [c.is_closed() for c in used] == [True, True, False]
    assert client.chat(USER).content == "ok"
