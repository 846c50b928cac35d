"""What ``bmem sft train`` checks before it loads anything heavy: the base model folder, the output, the disk.

All standard library: a bad path fails in milliseconds, not after torch has loaded.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..errors import BehaviorMemoryError, InvalidInputError

__all__ = ["check_base", "check_disk", "check_output", "disk_needed", "folder_size"]

_WEIGHTS = ("*.safetensors", "*.bin")
_MB = 1 << 20


def folder_size(path: Path) -> int:
    """Bytes of the files under ``path`` (0 when it does not exist)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def check_base(base: Path) -> str:
    """Raise InvalidInputError unless ``base`` is a local Hugging Face causal-LM folder; return its architecture."""
    base = Path(base)
    if not base.is_dir():
        raise InvalidInputError(f"base model folder {base} does not exist (a local Hugging Face folder is needed)")
    try:
        config = json.loads((base / "config.json").read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInputError(f"{base} has no config.json: not a Hugging Face model folder") from exc
    except ValueError as exc:
        raise InvalidInputError(f"{base}/config.json is not JSON: {exc}") from exc
    architectures = [str(a) for a in config.get("architectures") or []] if isinstance(config, dict) else []
    causal = [a for a in architectures if a.endswith("ForCausalLM")]
    if not causal:
        raise InvalidInputError(
            f"{base} is not a causal language model (architectures: {architectures or 'none'}); "
            "SFT needs a *ForCausalLM checkpoint"
        )
    if not any(next(base.glob(pattern), None) for pattern in _WEIGHTS):
        raise InvalidInputError(f"{base} has no weights (*.safetensors or *.bin)")
    if not any((base / name).is_file() for name in ("tokenizer.json", "tokenizer.model", "vocab.json")):
        raise InvalidInputError(f"{base} has no tokenizer files (tokenizer.json, tokenizer.model or vocab.json)")
    return causal[0]


def check_output(out: Path, *, overwrite: bool) -> None:
    """The output folder must be new (or ``overwrite``), and its parent writable."""
    if out.exists() and not overwrite:
        raise InvalidInputError(f"{out} already exists; pass --overwrite to replace it")
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"{out} exists and is not a folder")
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"cannot create {parent}: {exc}") from exc
    probe = parent / f".{out.name}.write-probe"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise InvalidInputError(f"cannot write into {parent}: {exc}") from exc


def disk_needed(base: Path, *, method: str, save_total_limit: int = 2) -> int:
    """Bytes a run writes at most: the merged folder, plus checkpoints (adapters for LoRA; for full
    fine-tuning the weights and the optimizer's two float32 moments, per checkpoint kept)."""
    weights = sum(f.stat().st_size for pattern in _WEIGHTS for f in base.glob(pattern))
    # full: float32 weights (2x bf16) + Adam's two float32 moments; LoRA: adapters and their optimizer state
    per_checkpoint = 16 * _MB + (weights * 7 if method == "full" else weights // 10)
    return weights + per_checkpoint * save_total_limit + 64 * _MB


def check_disk(out: Path, base: Path, *, method: str) -> None:
    """Refuse to start when the output's file system cannot hold the run (a full disk mid-save is worse)."""
    need = disk_needed(base, method=method)
    free = shutil.disk_usage(out.parent if str(out.parent) else Path(".")).free
    if free < need:
        raise BehaviorMemoryError(
            f"not enough disk space under {out.parent}: {free / _MB:.0f} MiB free, "
            f"about {need / _MB:.0f} MiB needed (merged model + checkpoints)"
        )
