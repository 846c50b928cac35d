"""A real HTTP server on 127.0.0.1 that speaks enough of the OpenAI API, and fails on demand.

It answers ``GET /v1/models`` and ``POST /v1/chat/completions``: plain text for a plain request,
and for a request that asks for JSON (``response_format`` or vLLM's ``structured_outputs``) an
extraction ``{"behaviors": [{"name": "behavior_...", "instruction": "..."}]}``. Every answer is
derived from the request's last user message, so each trace gets its own behavior, the same one
every time it is asked (the first user message decides: a re-ask's correction does not).

Faults are switched at run time, by any thread::

    fake.fail(Fault("status", status=503))           # every request, until heal()
    fake.fail_for(3.0, Fault("html", status=200))    # for the next 3 seconds
    fake.fail_next(Fault("drop"), Fault("hang"))     # the next two requests, then as before
    fake.heal()

Kinds: ``status`` (a JSON error body with that HTTP status), ``html`` (an nginx-style error page
with ``status``, 200 included), ``hang`` (no answer for ``hang_s``: the client times out),
``drop`` (the connection closes without an answer), ``truncate`` (a JSON answer cut the way
``max_tokens`` cuts it, ``finish_reason: length``; plain requests are answered normally) and
``invalid`` (JSON that does not match the schema: the model's fault, not the server's).

Used by ``tests/faults`` and ``bench/bench_faults.py``; it needs nothing but the standard library.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

__all__ = ["FakeOpenAI", "Fault", "behavior_for"]

FaultKind = Literal["status", "html", "hang", "drop", "truncate", "invalid"]

HTML_PAGE = (
    "<!DOCTYPE html>\n<html>\n<head><title>{status} Bad Gateway</title></head>\n"
    "<body>\n<center><h1>{status} Bad Gateway</h1></center>\n<hr><center>nginx/1.25.3</center>\n"
    "</body>\n</html>\n"
)

# Words that make each trace's instruction its own, so de-duplication keeps the behaviors apart.
# fmt: off
_VOCABULARY = [
    "align", "anchor", "audit", "balance", "bound", "bracket", "carry", "check", "compare", "count", "cross",
    "derive", "divide", "double", "estimate", "factor", "group", "halve", "inspect", "isolate", "label",
    "list", "measure", "mirror", "order", "pair", "parse", "prove", "recount", "reduce", "regroup", "reread",
    "restate", "round", "scale", "sketch", "sort", "split", "square", "subtract", "tabulate", "trace",
    "verify", "weigh", "write",
]
# fmt: on


@dataclass(frozen=True)
class Fault:
    """One way to fail a request (see the module docstring for the kinds)."""

    kind: FaultKind
    status: int = 500
    hang_s: float = 30.0


def behavior_for(text: str) -> dict[str, str]:
    """The behavior the fake proposes for a prompt: a name and an instruction unique to ``text``."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    words = [_VOCABULARY[int(digest[i : i + 2], 16) % len(_VOCABULARY)] for i in range(0, 12, 2)]
    return {
        "name": f"behavior_{words[0]}_{digest[:10]}",
        "instruction": f"{words[0].capitalize()} then {' and '.join(words[1:])} before the answer, tag {digest[:8]}.",
    }


class FakeOpenAI:
    """The server; ``start()`` serves it from a thread, ``stop()`` ends it (or use ``with``)."""

    def __init__(self, *, model: str = "fake-model") -> None:
        self.model = model
        self.answer_delay_s = 0.0  # every normal answer waits this long (a slow model)
        self._lock = threading.Lock()
        self._fault: Fault | None = None
        self._fault_until: float | None = None
        self._next: deque[Fault] = deque()
        self._stopping = threading.Event()
        self.requests: list[tuple[float, str, str]] = []  # (monotonic time, path, what was answered)
        self.bodies: list[dict[str, Any]] = []  # the chat requests' JSON bodies, in order
        self.in_flight = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as vLLM's uvicorn does
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

            def do_GET(self) -> None:
                server._handle(self, None)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server._handle(self, json.loads(raw) if raw else {})

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeOpenAI:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="fake-openai"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # hanging handlers return at once
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- faults ---------------------------------------------------------------------------------

    def fail(self, fault: Fault) -> None:
        """Fail every request this way until ``heal()``."""
        with self._lock:
            self._fault, self._fault_until = fault, None

    def fail_for(self, seconds: float, fault: Fault) -> None:
        """Fail every request this way for the next ``seconds``."""
        with self._lock:
            self._fault, self._fault_until = fault, time.monotonic() + seconds

    def fail_next(self, *faults: Fault) -> None:
        """Fail the next requests, one fault each, before anything else applies."""
        with self._lock:
            self._next.extend(faults)

    def heal(self) -> None:
        """Answer normally again."""
        with self._lock:
            self._fault, self._fault_until = None, None
            self._next.clear()

    def reset(self) -> None:
        """Heal, forget what was seen, answer at full speed."""
        self.heal()
        with self._lock:
            self.requests.clear()
            self.bodies.clear()
        self.answer_delay_s = 0.0

    # -- what was seen --------------------------------------------------------------------------

    def count(self, answered: str | None = None, *, path: str = "/v1/chat/completions") -> int:
        """Requests to ``path`` (all, or those answered ``answered``: ``ok`` or a fault kind)."""
        with self._lock:
            return sum(1 for _, p, a in self.requests if p == path and (answered is None or a == answered))

    def tally(self) -> Counter[str]:
        """How every request was answered: ``ok`` or a fault kind (``status`` as ``status 503``)."""
        with self._lock:
            return Counter(a for _, _, a in self.requests)

    # -- answering ------------------------------------------------------------------------------

    def _take_fault(self) -> Fault | None:
        with self._lock:
            if self._next:
                return self._next.popleft()
            if self._fault is not None and (self._fault_until is None or time.monotonic() < self._fault_until):
                return self._fault
            self._fault = self._fault_until = None
            return None

    def _handle(self, handler: BaseHTTPRequestHandler, body: dict[str, Any] | None) -> None:
        path = handler.path.split("?")[0]
        fault = self._take_fault()
        wants_json = bool(body) and _wants_json(body or {})
        if fault is not None and fault.kind in ("truncate", "invalid") and not wants_json:
            fault = None  # those are the model's answers to a JSON request; plain text is fine
        answered = "ok" if fault is None else (f"status {fault.status}" if fault.kind == "status" else fault.kind)
        with self._lock:
            self.requests.append((time.monotonic(), path, answered))
            if body is not None:
                self.bodies.append(body)
            self.in_flight += 1
        try:
            self._respond(handler, path, body, fault)
        except OSError:  # the client gave up (timeouts, kills)
            pass
        finally:
            with self._lock:
                self.in_flight -= 1

    def _respond(
        self, handler: BaseHTTPRequestHandler, path: str, body: dict[str, Any] | None, fault: Fault | None
    ) -> None:
        if fault is not None and fault.kind == "drop":
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault is not None and fault.kind == "hang":
            self._stopping.wait(fault.hang_s)
            handler.close_connection = True
            return
        if fault is not None and fault.kind == "status":
            error = {"error": {"message": f"fake fault: HTTP {fault.status}", "type": "ServerError", "code": 0}}
            return _send(handler, fault.status, json.dumps(error), "application/json")
        if fault is not None and fault.kind == "html":
            return _send(handler, fault.status, HTML_PAGE.format(status=fault.status), "text/html")
        if self.answer_delay_s:
            self._stopping.wait(self.answer_delay_s)
        if path.endswith("/models"):
            models = {"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": "fake"}]}
            return _send(handler, 200, json.dumps(models), "application/json")
        if not path.endswith("/chat/completions") or body is None:
            return _send(handler, 404, json.dumps({"error": {"message": f"no route {path}"}}), "application/json")
        content, finish = self._answer(body, fault)
        return _send(handler, 200, json.dumps(self._completion(content, finish)), "application/json")

    def _answer(self, body: dict[str, Any], fault: Fault | None) -> tuple[str, str]:
        prompt = _first_user_text(body)
        if not _wants_json(body):
            tag = hashlib.sha256(prompt.encode()).hexdigest()[:10]
            return f"(a) The solution is fine. (b) Nothing is missing. (c) Check step {tag}.", "stop"
        behavior = behavior_for(prompt)
        if fault is not None and fault.kind == "invalid":
            return json.dumps({"behaviors": [{"name": behavior["name"]}]}), "stop"
        if fault is not None and fault.kind == "truncate":
            # A long list cut mid-way: the first behavior is a whole object, the list never ends.
            items = [behavior] * 40
            text = json.dumps({"behaviors": items})
            return text[: len(text) // 2], "length"
        return json.dumps({"behaviors": [behavior]}), "stop"

    def _completion(self, content: str, finish: str) -> dict[str, Any]:
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
        }


def _wants_json(body: dict[str, Any]) -> bool:
    if (body.get("response_format") or {}).get("type") in ("json_schema", "json_object"):
        return True
    return "structured_outputs" in body


def _first_user_text(body: dict[str, Any]) -> str:
    """The task's prompt: a re-ask's correction comes later and says nothing about the trace."""
    for message in body.get("messages") or []:
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""


def _send(handler: BaseHTTPRequestHandler, status: int, text: str, content_type: str) -> None:
    data = text.encode()
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
