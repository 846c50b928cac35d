"""Every ```python block of the README runs as written, the way a newcomer runs it.

Each snippet is copied into a fresh folder, after ``bmem init`` when it reads the YAML, and run
there with this interpreter against the session's vLLM test server (``BMEM_LLM__BASE_URL`` and
``BMEM_LLM__MODEL`` point the YAML at it, as a user would override it). A snippet that raises
fails its test with the tail of its output. The fast checks (it parses, it defines every name it
uses) run without a server.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SNIPPET_TIMEOUT_S = 900  # the agent snippets make several calls to a 135M model on CPU


def readme_snippets() -> list[str]:
    """The README's ```python blocks, in order."""
    return re.findall(r"^```python\n(.*?)^```$", README.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)


SNIPPETS = readme_snippets()
IDS = [f"snippet{i}" for i in range(len(SNIPPETS))]


def _bmem(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from behavior_memory.cli.main import main; main()", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _ruff() -> str | None:
    try:
        from ruff.__main__ import find_ruff_bin
    except ImportError:
        return None
    return str(find_ruff_bin())


def test_the_readme_has_a_first_example_and_one_per_framework():
    assert len(SNIPPETS) >= 3
    assert "memory.render(" in SNIPPETS[0] and "print(" in SNIPPETS[0]
    assert any("langchain" in s for s in SNIPPETS) and any("llama_index" in s for s in SNIPPETS)
    top = "\n".join(README.read_text(encoding="utf-8").splitlines()[:30])
    assert "pip install" in top and "bmem init" in top and "```python" in top


@pytest.mark.parametrize("source", SNIPPETS, ids=IDS)
def test_snippet_is_a_whole_program(source, tmp_path):
    """It parses as a module (no top-level ``await``) and pyflakes finds no undefined name."""
    compile(source, "README.md", "exec")
    ruff = _ruff()
    if ruff is None:
        pytest.skip("ruff is not installed")
    path = tmp_path / "snippet.py"
    path.write_text(source, encoding="utf-8")
    done = subprocess.run(
        [ruff, "check", "--no-cache", "--isolated", "--select", "F", str(path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(SNIPPETS)), ids=IDS)
def test_snippet_runs_against_the_test_server(index, vllm_server, tmp_path):
    source = SNIPPETS[index]
    env = dict(
        os.environ,
        BMEM_LLM__BASE_URL=vllm_server.base_url,
        BMEM_LLM__MODEL=vllm_server.model,
        BMEM_CACHE_DIR=str(tmp_path / "cache"),
        PYTHONUNBUFFERED="1",
    )
    if "behavior-memory.yaml" in source:
        init = _bmem("init", cwd=tmp_path, env=env)
        assert init.returncode == 0, init.stdout + init.stderr
    (tmp_path / "snippet.py").write_text(source, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "snippet.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=SNIPPET_TIMEOUT_S,
    )
    assert done.returncode == 0, f"README snippet {index} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    if index == 0:  # the first example prints a non-empty behavior block with the behavior it added
        assert "Here is a list of behaviors:" in done.stdout, done.stdout
        assert "behavior_inclusion_exclusion: To count integers" in done.stdout, done.stdout
        assert "['behavior_inclusion_exclusion']" in done.stdout, done.stdout
