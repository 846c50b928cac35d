"""``bmem eval sft``: base, plain-SFT and BC-SFT students answering the same items (the paper's Table 3 shape).

Each contender is ``LABEL=TARGET``: TARGET is either an OpenAI-compatible URL (a server that already
runs, e.g. the base model; ``URL#MODEL`` picks a model id) or a local folder that ``bmem sft train``
wrote, which is served for the run on a free port with vLLM (the CPU build here, ``vllm serve`` on a
GPU machine) and stopped afterwards. Contenders answer one after the other, so one trained model is
served at a time. Every contender gets the plain prompt (no behaviors: a BC-SFT student is meant to
reason that way without being shown them); rows go to one results JSONL with ``condition = LABEL``,
so a rerun only answers what is missing, and ``bmem eval summary`` / ``plot`` read it as well.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInputError
from ..memory import BehaviorMemory
from .bci import Job, Row, SolveSettings, load_rows, row_key, run_bci
from .datasets import Item
from .results import ConfigSummary, summarize_rows

__all__ = ["Contender", "compare_summaries", "parse_contender", "run_contender", "served"]


@dataclass(frozen=True)
class Contender:
    """One model in the comparison: a label for the table and where it comes from."""

    label: str
    target: str

    @property
    def is_url(self) -> bool:
        return self.target.startswith(("http://", "https://"))


def parse_contender(spec: str) -> Contender:
    """``LABEL=URL[#MODEL]`` or ``LABEL=FOLDER``.

    >>> parse_contender("base=http://127.0.0.1:8000/v1#smollm2-135m-instruct").label
    'base'
    """
    label, sep, target = spec.partition("=")
    label, target = label.strip(), target.strip()
    if not sep or not label or not target or label in ("behaviors",) or "|" in label:
        raise InvalidInputError(f"--contender {spec!r}: expected LABEL=URL or LABEL=FOLDER (e.g. bc-sft=models/bc)")
    contender = Contender(label=label, target=target)
    if not contender.is_url and not (Path(target) / "config.json").is_file():
        raise InvalidInputError(f"--contender {spec!r}: {target} is neither a URL nor a model folder (no config.json)")
    return contender


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def served(
    contender: Contender, *, max_model_len: int = 4096, startup_timeout_s: float = 900
) -> Iterator[tuple[str, str]]:
    """(base_url, model id) of the contender, serving a folder for the duration of the block."""
    from ..serving import server

    if contender.is_url:
        url, _, model = contender.target.partition("#")
        url = url.rstrip("/")
        url = url if url.endswith("/v1") else url + "/v1"
        if not model:
            models = server.list_models(url, timeout=10)
            if not models:
                raise InvalidInputError(f"{contender.label}: {url} does not answer GET /models")
            model = models[0]
        yield url, model
        return
    cfg = server.ServeConfig(
        model=str(Path(contender.target).resolve()),
        served_model_name=contender.label,
        port=_free_port(),
        max_model_len=max_model_len,
        startup_timeout_s=startup_timeout_s,
    )
    info = server.start(cfg)
    try:
        yield info.base_url, info.model
    finally:
        server.stop(cfg)


def jobs_for_contender(items: Sequence[Item], label: str, budget: int, seeds: Sequence[int]) -> list[Job]:
    return [Job(item=i, condition=label, budget=budget, seed=s) for s in seeds for i in items]


def pending(settings: SolveSettings, jobs: Sequence[Job], out: Path) -> list[Job]:
    """The jobs with no answered row in ``out`` yet."""
    done = {r["key"] for r in load_rows(out) if not r.get("error")}
    return [j for j in jobs if row_key(settings, j) not in done]


def run_contender(
    memory_for: Callable[[str, str], BehaviorMemory],
    contender: Contender,
    settings: SolveSettings,
    jobs: Sequence[Job],
    out: Path,
    *,
    concurrency: int,
    on_done: Callable[[Row], None] | None = None,
) -> tuple[int, int]:
    """Answer the contender's missing jobs (serving it first when it is a folder); (answered, skipped)."""
    todo = pending(settings, jobs, out)
    if not todo:
        return 0, len(jobs)
    with served(contender) as (url, model), memory_for(url, model) as memory:
        if not memory.llm.health():
            raise InvalidInputError(f"{contender.label}: the server at {url} does not answer")
        answered, _ = run_bci(memory, settings, todo, out, concurrency=concurrency, on_done=on_done)
    return answered, len(jobs) - len(todo)


def compare_summaries(rows: Sequence[dict[str, object]], labels: Sequence[str]) -> list[ConfigSummary]:
    """Summaries in contender order, output-token change measured against the first contender."""
    order = {label: n for n, label in enumerate(labels)}
    summaries = [s for s in summarize_rows(rows) if s.condition in order]
    summaries.sort(key=lambda s: (s.dataset, s.budget, order[s.condition]))
    first = {(s.dataset, s.budget): s for s in summaries if s.condition == labels[0]}
    for s in summaries:
        ref = first.get((s.dataset, s.budget))
        if ref is not None and s is not ref and ref.output_tokens:
            s.token_change = (s.output_tokens - ref.output_tokens) / ref.output_tokens
            s.input_overhead = s.prompt_tokens - ref.prompt_tokens
    return summaries
