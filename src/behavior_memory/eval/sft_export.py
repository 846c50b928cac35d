"""BC-SFT data (the paper's behavior-conditioned fine-tuning corpus) and its plain twin.

The teacher answers every question twice through :func:`.bci.run_bci` (so the answers are
resumable rows like any other run): once with the retrieved behaviors in its system prompt, once
without. Each answer becomes a chat record in the format TRL's ``SFTTrainer`` reads::

    {"messages": [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": ANSWER}]}

The behavior block is not in the record (the student learns to reason that way without being
shown the behaviors), which is the point of BC-SFT.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .datasets import Item

__all__ = ["CorpusReport", "chat_record", "write_corpora"]


@dataclass(frozen=True)
class CorpusReport:
    """What went into one corpus file."""

    path: Path
    records: int
    correct: int
    skipped: int  # failed requests, or wrong answers under ``only_correct``

    @property
    def accuracy(self) -> float:
        return self.correct / self.records if self.records else 0.0


def chat_record(question: str, answer: str) -> dict[str, Any]:
    """One conversational SFT example, with no system prompt (so no behavior block).

    >>> chat_record("1+1?", "2")["messages"][1]
    {'role': 'assistant', 'content': '2'}
    """
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def _write(
    path: Path, rows: Sequence[Mapping[str, Any]], questions: Mapping[str, str], *, only_correct: bool
) -> CorpusReport:
    path.parent.mkdir(parents=True, exist_ok=True)
    written = correct = skipped = 0
    with path.open("w", encoding="utf-8") as sink:
        for row in rows:
            if row.get("error") or not row.get("output") or (only_correct and not row["correct"]):
                skipped += 1
                continue
            sink.write(json.dumps(chat_record(questions[row["item_id"]], row["output"]), ensure_ascii=False) + "\n")
            written += 1
            correct += bool(row["correct"])
    return CorpusReport(path=path, records=written, correct=correct, skipped=skipped)


def write_corpora(
    rows: Sequence[Mapping[str, Any]],
    items: Sequence[Item],
    *,
    bc_out: Path,
    plain_out: Path,
    budget: int,
    seed: int,
    only_correct: bool = False,
) -> tuple[CorpusReport, CorpusReport]:
    """Write the BC-SFT corpus (answers given with behaviors) and its plain twin, in item order."""
    questions = {i.id: i.question for i in items}
    order = {i.id: n for n, i in enumerate(items)}
    chosen = [r for r in rows if r["item_id"] in questions and r["budget"] == budget and r["seed"] == seed]
    chosen.sort(key=lambda r: order[r["item_id"]])
    latest: dict[tuple[str, str], Mapping[str, Any]] = {}
    for row in chosen:  # a retried request leaves an error row before its answer: keep the last
        latest[(row["condition"], row["item_id"])] = row
    by_condition = {c: [latest[(c, i.id)] for i in items if (c, i.id) in latest] for c in ("behaviors", "baseline")}
    return (
        _write(bc_out, by_condition["behaviors"], questions, only_correct=only_correct),
        _write(plain_out, by_condition["baseline"], questions, only_correct=only_correct),
    )
