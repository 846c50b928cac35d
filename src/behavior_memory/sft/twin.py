"""BC-SFT and its plain-SFT twin from one command: the paper's comparison, same questions, same settings.

``bmem sft export`` writes ``X.jsonl`` (answers given with behaviors, block stripped) and
``X.plain.jsonl`` (the same teacher's answers without behaviors). :func:`train_pair` checks both
files and both output folders before training either, keeps only the questions both answered, and
trains the two students with identical settings and seed.
"""

from __future__ import annotations

from pathlib import Path

from ..config.sft import SFTConfig
from ..errors import InvalidInputError
from .checks import check_base, check_output
from .records import load_records, paired, plain_twin_path
from .train import TrainResult, train_records

__all__ = ["train_pair", "twin_out"]


def twin_out(out: Path) -> Path:
    """Where the plain-SFT twin of ``out`` goes by default (``DIR`` -> ``DIR-plain``)."""
    return out.with_name(out.name + "-plain")


def train_pair(
    records: Path,
    *,
    base: Path,
    out: Path,
    settings: SFTConfig,
    plain_records: Path | None = None,
    plain_out: Path | None = None,
    chat_template: str | None = None,
    overwrite: bool = False,
    resume: bool = True,
    keep_checkpoints: bool = False,
    progress: bool = True,
) -> tuple[TrainResult, TrainResult]:
    """Train BC-SFT into ``out`` and plain SFT into ``plain_out``; returns (BC-SFT, plain)."""
    plain_records = plain_records or plain_twin_path(records)
    plain_out = plain_out or twin_out(out)
    if Path(plain_out).resolve() == Path(out).resolve():
        raise InvalidInputError("the plain twin needs its own output folder (--plain-out)")
    bc, plain = paired(load_records(records), load_records(plain_records))
    if not bc:
        raise InvalidInputError(f"{records} and {plain_records} share no question: not the two halves of one export")
    check_base(base)
    check_output(out, overwrite=overwrite)
    check_output(plain_out, overwrite=overwrite)
    results = [
        train_records(
            chosen,
            base=base,
            out=dest,
            settings=settings,
            source=str(source),
            chat_template=chat_template,
            overwrite=overwrite,
            resume=resume,
            keep_checkpoints=keep_checkpoints,
            progress=progress,
        )
        for chosen, dest, source in ((bc, out, records), (plain, plain_out, plain_records))
    ]
    first, second = results
    return first, second
