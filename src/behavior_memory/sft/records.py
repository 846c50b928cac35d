"""Training records for BC-SFT: read and check the exported chat format, strip the behavior block, split.

``bmem sft export`` writes one JSON object a line::

    {"messages": [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": ANSWER}]}

A record may also carry a leading system message (records written by other tools, or by hand). The
paper trains on (question, answer) with the behaviors stripped, so a behavior block found in a
system or user message is cut off (:func:`strip_behavior_block`); a system message left empty goes.
Each record becomes TRL's conversational prompt-completion form, so the loss is on the answer only.

Everything here is standard library: reading records must not load torch.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError

__all__ = [
    "BLOCK_MARKERS",
    "Record",
    "load_records",
    "paired",
    "plain_twin_path",
    "split_records",
    "strip_behavior_block",
]

#: Lines that open the BCI behavior block (prompts/bci_block.txt): its definition, else its list header.
BLOCK_MARKERS = (
    "A behavior is a short, reusable note on how to think",
    "Here is a list of behaviors:",
)
_ROLES = {"system", "user", "assistant"}


@dataclass(frozen=True)
class Record:
    """One training example: the prompt messages (block stripped) and the answer."""

    prompt: tuple[Mapping[str, str], ...]
    answer: str

    @property
    def question(self) -> str:
        """The last user message (what pairs a BC-SFT record with its plain twin)."""
        return next(m["content"] for m in reversed(self.prompt) if m["role"] == "user")

    def as_trl(self) -> dict[str, Any]:
        """TRL's conversational prompt-completion example (loss on the completion only)."""
        return {"prompt": [dict(m) for m in self.prompt], "completion": [{"role": "assistant", "content": self.answer}]}


def strip_behavior_block(text: str) -> str:
    """``text`` without the behavior block that ``append_block`` put at its end.

    >>> strip_behavior_block("Solve it.\\n\\nHere is a list of behaviors:\\nbehavior_x: do y\\n\\nSolve...")
    'Solve it.'
    >>> strip_behavior_block("What is 2+2?")
    'What is 2+2?'
    """
    cut = min((i for i in (text.find(m) for m in BLOCK_MARKERS) if i >= 0), default=-1)
    return text if cut < 0 else text[:cut].rstrip()


def _bad(path: Path, line: int, why: str) -> InvalidInputError:
    return InvalidInputError(
        f"{path}:{line}: {why}; expected the format `bmem sft export` writes: "
        '{"messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}]}',
        path=str(path),
        line=line,
    )


def _record(path: Path, line: int, data: Any) -> Record:
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise _bad(path, line, 'not an object with a "messages" list')
    messages = data["messages"]
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in _ROLES or not isinstance(m.get("content"), str):
            raise _bad(path, line, "each message needs a role (system, user, assistant) and a string content")
    if len(messages) < 2 or messages[-1]["role"] != "assistant" or not messages[-1]["content"].strip():
        raise _bad(path, line, "the last message must be a non-empty assistant answer")
    prompt: list[dict[str, str]] = []
    for m in messages[:-1]:
        content = strip_behavior_block(m["content"]) if m["role"] in ("system", "user") else m["content"]
        if m["role"] == "system" and not content.strip():
            continue  # a system prompt that was only the behavior block
        prompt.append({"role": m["role"], "content": content})
    if not any(m["role"] == "user" and m["content"].strip() for m in prompt):
        raise _bad(path, line, "no user message (question) before the answer")
    return Record(prompt=tuple(prompt), answer=messages[-1]["content"])


def load_records(path: Path) -> list[Record]:
    """Read and check a records JSONL; raise InvalidInputError naming the file and line on bad input."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such records file", path=str(path))
    records: list[Record] = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError as exc:
                raise _bad(path, n, f"not JSON ({exc})") from exc
            records.append(_record(path, n, data))
    if not records:
        raise InvalidInputError(f"{path}: no records (the file is empty)", path=str(path))
    return records


def split_records(records: Sequence[Record], eval_fraction: float, seed: int) -> tuple[list[Record], list[Record]]:
    """(train, held-out): a seeded shuffle, at least one record held out when ``eval_fraction > 0``
    and there are two or more records; the training part is never empty."""
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    n_eval = 0
    if eval_fraction > 0 and len(records) >= 2:
        n_eval = min(len(records) - 1, max(1, round(len(records) * eval_fraction)))
    held = sorted(order[:n_eval])
    train = sorted(order[n_eval:])
    return [records[i] for i in train], [records[i] for i in held]


def plain_twin_path(records: Path) -> Path:
    """Where ``bmem sft export`` put the plain twin of ``records`` (``X.jsonl`` -> ``X.plain.jsonl``)."""
    return records.with_suffix(".plain.jsonl")


def paired(bc: Sequence[Record], plain: Sequence[Record]) -> tuple[list[Record], list[Record]]:
    """The two corpora restricted to the questions both answered, in the BC-SFT file's order.

    The paper compares students trained on the same questions; an export with ``--only-correct`` or
    failed requests can leave different questions in each file.
    """
    by_question = {r.question: r for r in plain}
    keep = [r for r in bc if r.question in by_question]
    return keep, [by_question[r.question] for r in keep]
