"""The web UI's fixtures: a seeded handbook, the app over it, a real server and one headless chromium.

The server (uvicorn in a thread on a free 127.0.0.1 port) and the browser start once per session.
Routes that write get a fresh handbook each (``fresh``), so no test sees another's decisions.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ui_seed import memory_at, seed

from behavior_memory import BehaviorMemory

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Seeded:
    memory: BehaviorMemory
    ids: dict[str, str]


def _seeded(folder: Path) -> Seeded:
    folder.mkdir(parents=True, exist_ok=True)
    memory = memory_at(folder)
    return Seeded(memory, seed(memory))


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    s = _seeded(tmp_path_factory.mktemp("ui-shared"))
    yield s
    s.memory.close()


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Seeded]:
    s = _seeded(tmp_path / "handbook")
    yield s
    s.memory.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    seeded: Seeded


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    import uvicorn

    from behavior_memory.ui.app import create_app

    s = _seeded(tmp_path_factory.mktemp("ui-live"))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(s.memory), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="bmem-ui-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the UI's test server did not start", pytrace=False)
        time.sleep(0.05)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", s)
    finally:
        server.should_exit = True
        thread.join(10)
        s.memory.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go (``test-artifacts/ui`` in the checkout, git-ignored; $BMEM_TEST_ARTIFACTS overrides)."""
    folder = Path(os.environ.get("BMEM_TEST_ARTIFACTS", REPO / "test-artifacts")) / "ui"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip(f"no {CHROMIUM} and {CHROMEDRIVER}: `make browser` installs Debian's chromium and chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    # An explicit driver path: Selenium Manager never runs, so nothing is downloaded.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
