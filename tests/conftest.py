"""Session fixtures shared by the integration and e2e tests: a real vLLM server.

``vllm_server`` uses the server named by ``BMEM_TEST_BASE_URL`` (and ``BMEM_TEST_MODEL``) when set;
otherwise it starts the embedded default (vLLM CPU build + SmolLM2-135M-Instruct) on a free
localhost port, so it never collides with a server the user runs on 8000, and stops it at the end
of the session. A server that cannot start fails the tests loudly, with the log tail.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from behavior_memory.errors import ServerError
from behavior_memory.serving import server


@dataclass(frozen=True)
class VLLMServer:
    base_url: str  # ends in /v1
    model: str
    log_path: Path | None = None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def vllm_server() -> Iterator[VLLMServer]:
    base_url = os.environ.get("BMEM_TEST_BASE_URL")
    if base_url:
        base_url = base_url.rstrip("/")
        if not base_url.endswith("/v1"):
            base_url += "/v1"
        served = server.list_models(base_url, timeout=10)
        if not served:
            pytest.fail(f"BMEM_TEST_BASE_URL={base_url} does not answer GET /v1/models", pytrace=False)
        model = os.environ.get("BMEM_TEST_MODEL") or served[0]
        yield VLLMServer(base_url=base_url, model=model)
        return

    cfg = server.ServeConfig(port=_free_port(), startup_timeout_s=float(os.environ.get("BMEM_TEST_STARTUP_S", 900)))
    try:
        info = server.start(cfg)
    except ServerError as exc:
        pytest.fail(f"could not start the embedded vLLM server: {exc}", pytrace=False)
    try:
        yield VLLMServer(base_url=info.base_url, model=info.model, log_path=info.log_path)
    finally:
        server.stop(cfg)
