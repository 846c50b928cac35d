"""Benchmark items: where the JSONL files are, how to read them, and which checker each needs.

A dataset is named (``math500``, ``gsm8k``, ``aime24``, ``hotpotqa``) and found under a data
folder, or given as ``PATH.jsonl``. The data folder is ``--data-dir``, else ``$BMEM_DATA_DIR``,
else ``../shared/data`` when it exists beside the current directory. Every line holds at least
``id``, ``question`` and ``answer``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import BehaviorMemoryError

__all__ = ["DATASETS", "Dataset", "DatasetError", "Item", "disjoint_or_raise", "load_dataset", "resolve_data_dir"]

#: Named datasets: file under the data folder, and the answer checker.
DATASETS: dict[str, tuple[str, str]] = {
    "math500": ("math500/test.jsonl", "math"),
    "gsm8k": ("gsm8k/test.jsonl", "gsm8k"),
    "aime24": ("aime24/test.jsonl", "aime"),
    "hotpotqa": ("hotpotqa/dev_react500.jsonl", "hotpotqa"),
}


class DatasetError(BehaviorMemoryError):
    """A dataset that cannot be found or read, or a training pool that overlaps the test set."""


@dataclass(frozen=True)
class Item:
    """One benchmark question."""

    id: str
    question: str
    answer: str
    topic: str  # MATH subject when there is one, else the dataset's name (topic retrieval keys on it)


@dataclass(frozen=True)
class Dataset:
    name: str
    path: Path
    checker: str
    items: list[Item]


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """The data folder: the option, else ``$BMEM_DATA_DIR``, else ``../shared/data`` if it exists."""
    if data_dir:
        return Path(data_dir)
    env = os.environ.get("BMEM_DATA_DIR")
    if env:
        return Path(env)
    guess = Path("..") / "shared" / "data"
    if guess.is_dir():
        return guess
    raise DatasetError("no data folder: pass --data-dir DIR (or set BMEM_DATA_DIR), or give a PATH.jsonl")


def _guess_checker(path: Path) -> str:
    name = path.as_posix().lower()
    for key, checker in (("gsm8k", "gsm8k"), ("aime", "aime"), ("hotpot", "hotpotqa")):
        if key in name:
            return checker
    return "math"


def load_dataset(
    spec: str, *, data_dir: str | Path | None = None, checker: str | None = None, topic: str | None = None
) -> Dataset:
    """Read a named dataset (under the data folder) or a ``.jsonl`` path.

    Items without a ``subject`` get ``topic`` (default: the dataset's name) as their topic.
    """
    if spec in DATASETS:
        rel, default_checker = DATASETS[spec]
        path = resolve_data_dir(data_dir) / rel
        name = spec
    else:
        path = Path(spec)
        if path.suffix != ".jsonl":
            raise DatasetError(f"unknown dataset {spec!r}: one of {', '.join(DATASETS)} or a PATH.jsonl")
        default_checker = _guess_checker(path)
        name = path.stem
    if not path.is_file():
        raise DatasetError(f"dataset file {path} does not exist (see --data-dir)")
    items: list[Item] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            items.append(
                Item(
                    id=str(row["id"]),
                    question=str(row["question"]),
                    answer=str(row["answer"]),
                    topic=str(row.get("subject") or topic or name),
                )
            )
        except (ValueError, KeyError) as exc:
            raise DatasetError(f"{path}:{number}: needs JSON with id, question and answer ({exc})") from exc
    return Dataset(name=name, path=path, checker=checker or default_checker, items=items)


def disjoint_or_raise(train: Sequence[Item], test: Sequence[Item]) -> None:
    """Refuse a training pool that shares an id or a question with the test set."""
    test_ids = {i.id for i in test}
    test_questions = {i.question.strip() for i in test}
    clash = [i.id for i in train if i.id in test_ids or i.question.strip() in test_questions]
    if clash:
        raise DatasetError(
            f"the training pool overlaps the test set in {len(clash)} items (e.g. {', '.join(clash[:3])}); "
            "curate from other items or a held-out slice (--handbook-from holdout:N)"
        )
