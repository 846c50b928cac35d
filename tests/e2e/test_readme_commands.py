"""The README's promises, checked the way a newcomer meets them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_readme_names_the_two_commands_near_the_top_and_ci_runs_the_test_one():
    top = "\n".join((ROOT / "README.md").read_text().splitlines()[:30])
    assert "make demo" in top and "make test" in top
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.MULTILINE)
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo: install\n\t\$\(BIN\)/bmem demo$", makefile, re.MULTILINE)


@pytest.mark.integration
@pytest.mark.slow
def test_bmem_demo_runs_the_whole_loop(vllm_server, tmp_path):
    """`bmem demo` on the test server: solve, reflect, mint, solve again, print the figures."""
    url = urlparse(vllm_server.base_url)
    env = dict(
        os.environ,
        BMEM_SERVE__PORT=str(url.port),
        BMEM_LLM__BASE_URL=vllm_server.base_url,
        BMEM_CACHE_DIR=str(tmp_path / "cache"),
        COLUMNS="160",
    )
    command = [
        sys.executable,
        "-c",
        "from behavior_memory.cli.main import main; main()",
        "demo",
        "--train",
        "2",
        "--test",
        "2",
        "--max-tokens",
        "96",
        "-j",
        "2",
    ]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "behaviors minted" in out
    assert re.search(r"without behaviors\W+\d+%", out) and re.search(r"with behaviors\W+\d+%", out)
    assert "output tokens with behaviors" in out
    assert (tmp_path / "cache" / "demo" / "handbook.db").exists()  # the demo's own handbook, not the user's
