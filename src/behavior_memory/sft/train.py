"""Fine-tune a causal LM on chat records with TRL's ``SFTTrainer`` and save a folder vLLM serves.

One run, :func:`train_records`:

1. checks (before torch loads): base folder, output folder, free disk (:mod:`.checks`);
2. checkpoints go to ``OUT.checkpoints/`` (with a fingerprint of records + settings), so the same
   command run again resumes from the last one; a different run there is refused, not mixed in;
3. LoRA through PEFT (default) or full fine-tuning, loss on the answers only (prompt-completion),
   a held-out split for evaluation loss, transformers' progress bars;
4. the adapters are merged, the weights cast back to the base's dtype and saved with the tokenizer
   and chat template into ``OUT.tmp-XXXX``, which then replaces ``OUT`` by ``os.replace``: a reader
   never sees a half-written model where a servable one is expected.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .._optional import require
from ..config.sft import SFTConfig
from ..errors import BehaviorMemoryError, InvalidInputError
from .checks import check_base, check_disk, check_output, folder_size
from .records import Record, split_records

__all__ = ["TrainResult", "checkpoint_dir", "train_records"]

logger = logging.getLogger(__name__)
_META = "bmem-sft.json"
_FINGERPRINT = "bmem-run.json"


@dataclass(frozen=True)
class TrainResult:
    """What one training run produced and what it cost."""

    out: Path
    base: str
    method: str
    records: int
    train_records: int
    eval_records: int
    steps: int
    train_seconds: float
    seconds_per_step: float
    seconds_per_record: float
    train_loss: float | None
    eval_loss: float | None
    size_bytes: int
    resumed_from: str | None

    def to_json(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


def checkpoint_dir(out: Path) -> Path:
    """Where the run keeps its checkpoints (resume point) until the model is saved."""
    return out.with_name(out.name + ".checkpoints")


def _fingerprint(records: Sequence[Record], base: Path, settings: SFTConfig, chat_template: str | None) -> str:
    digest = hashlib.sha256()
    for r in records:
        digest.update(json.dumps(r.as_trl(), sort_keys=True).encode())
    digest.update(str(base.resolve()).encode())
    digest.update(settings.model_dump_json().encode())
    digest.update((chat_template or "").encode())
    return digest.hexdigest()


def _prepare_work(work: Path, fingerprint: str, *, resume: bool) -> str | None:
    """The checkpoint to resume from (None: start fresh), after checking it belongs to this run."""
    stamp = work / _FINGERPRINT
    if work.exists():
        try:
            same = json.loads(stamp.read_text())["fingerprint"] == fingerprint
        except (OSError, ValueError, KeyError, TypeError):
            same = False
        if not resume or not same:
            if resume and any(work.glob("checkpoint-*")):
                raise InvalidInputError(
                    f"{work} holds checkpoints of a different run (other records, base or settings); "
                    "pass --fresh to discard them"
                )
            shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps({"fingerprint": fingerprint}))
    last = require("transformers.trainer_utils", "sft").get_last_checkpoint(str(work))
    return str(last) if last else None


def _dtypes(torch: Any, choice: str, base: Path) -> tuple[Any, Any, bool]:
    """(training dtype, saved dtype, bf16 mixed precision flag)."""
    cuda = bool(torch.cuda.is_available())
    if choice == "auto":
        train = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    else:
        train = getattr(torch, choice)
    config = json.loads((base / "config.json").read_text(encoding="utf-8"))
    saved_name = config.get("dtype") or config.get("torch_dtype") or "bfloat16"
    saved = getattr(torch, str(saved_name), torch.bfloat16)
    return train, saved, cuda and train == torch.bfloat16


def _trainer(
    base: Path,
    work: Path,
    train: list[Record],
    held: list[Record],
    settings: SFTConfig,
    progress: bool,
    chat_template: str | None,
) -> tuple[Any, Any, Any]:
    torch = require("torch", "sft", what="bmem sft train")
    transformers = require("transformers", "sft", what="bmem sft train")
    trl = require("trl", "sft", what="bmem sft train")
    datasets = require("datasets", "sft", what="bmem sft train")
    train_dtype, saved_dtype, bf16 = _dtypes(torch, settings.dtype, base)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(base), local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if chat_template:  # trained and saved with the template it will be served with
        tokenizer.chat_template = chat_template
    if not getattr(tokenizer, "chat_template", None):
        raise InvalidInputError(f"{base}'s tokenizer has no chat template; the records are chat messages")
    model = transformers.AutoModelForCausalLM.from_pretrained(str(base), dtype=train_dtype, local_files_only=True)
    peft_config = None
    if settings.method == "lora":
        peft = require("peft", "sft", what="LoRA fine-tuning")
        peft_config = peft.LoraConfig(
            r=settings.lora_r,
            lora_alpha=settings.lora_alpha,
            lora_dropout=settings.lora_dropout,
            target_modules=settings.lora_target_modules,
            task_type="CAUSAL_LM",
        )
    cuda = bool(torch.cuda.is_available())
    args = trl.SFTConfig(
        output_dir=str(work),
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps or -1,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation,
        learning_rate=settings.learning_rate,
        max_length=settings.max_length,
        seed=settings.seed,
        logging_steps=settings.logging_steps,
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=2,
        eval_strategy="steps" if held else "no",
        eval_steps=settings.save_steps,
        report_to="none",
        bf16=bf16,
        fp16=False,
        use_cpu=not cuda,
        gradient_checkpointing=settings.gradient_checkpointing,
        dataloader_num_workers=0,
        disable_tqdm=not progress,
    )
    trainer = trl.SFTTrainer(
        model=model,
        args=args,
        train_dataset=datasets.Dataset.from_list([r.as_trl() for r in train]),
        eval_dataset=datasets.Dataset.from_list([r.as_trl() for r in held]) if held else None,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    return trainer, tokenizer, saved_dtype


def _save(trainer: Any, tokenizer: Any, saved_dtype: Any, out: Path, meta: dict[str, Any], *, overwrite: bool) -> None:
    """Merge, save into ``OUT.tmp-XXXX``, then move it into place."""
    model = trainer.model
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model = model.to(saved_dtype)
    model.config.use_cache = True
    tmp = out.with_name(f"{out.name}.tmp-{secrets.token_hex(4)}")
    old: Path | None = None
    try:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        (tmp / _META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            old = out.with_name(f"{out.name}.old-{secrets.token_hex(4)}")
            os.replace(out, old)
        os.replace(tmp, out)
    except BaseException as exc:  # safetensors reports a full disk as its own error, not an OSError
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not out.exists():
            os.replace(old, out)
        if isinstance(exc, Exception):
            raise BehaviorMemoryError(f"saving the trained model to {out} failed: {exc}") from exc
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _final_eval_loss(trainer: Any) -> float | None:
    """The held-out loss at the last step: logged already when the last step was an eval step."""
    state = trainer.state
    logged = [h for h in state.log_history if "eval_loss" in h and h.get("step") == state.global_step]
    loss = logged[-1]["eval_loss"] if logged else trainer.evaluate().get("eval_loss")
    return float(loss) if loss is not None else None


def train_records(
    records: Sequence[Record],
    *,
    base: Path,
    out: Path,
    settings: SFTConfig,
    source: str = "",
    chat_template: str | None = None,
    overwrite: bool = False,
    resume: bool = True,
    keep_checkpoints: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Fine-tune ``base`` on ``records`` and save the merged model as a Hugging Face folder at ``out``.

    ``chat_template`` (Jinja text) replaces the base tokenizer's template for training and in the output.
    """
    if not records:
        raise InvalidInputError("no training records")
    base, out = Path(base), Path(out)
    architecture = check_base(base)
    check_output(out, overwrite=overwrite)
    check_disk(out, base, method=settings.method)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local folders only: never reach for a model hub
    train, held = split_records(records, settings.eval_fraction, settings.seed)
    work = checkpoint_dir(out)
    resumed = _prepare_work(work, _fingerprint(records, base, settings, chat_template), resume=resume)
    trainer, tokenizer, saved_dtype = _trainer(base, work, train, held, settings, progress, chat_template)
    logger.info("training %s (%s, %s) on %d records%s", base, architecture, settings.method, len(train),
                f", resuming from {resumed}" if resumed else "")  # fmt: skip
    started = time.monotonic()
    output = trainer.train(resume_from_checkpoint=resumed)
    wall = time.monotonic() - started
    eval_loss = _final_eval_loss(trainer) if held else None
    steps = int(output.global_step)
    runtime = float(output.metrics.get("train_runtime", wall))
    samples_per_s = float(output.metrics.get("train_samples_per_second") or 0.0)
    meta = {
        "base": str(base),
        "architecture": architecture,
        "records": source,
        "settings": settings.model_dump(),
        "train_records": len(train),
        "eval_records": len(held),
        "steps": steps,
        "train_loss": output.training_loss,
        "eval_loss": eval_loss,
        "trained_by": "bmem sft train",
    }
    _save(trainer, tokenizer, saved_dtype, out, meta, overwrite=overwrite)
    if not keep_checkpoints:
        shutil.rmtree(work, ignore_errors=True)
    return TrainResult(
        out=out,
        base=str(base),
        method=settings.method,
        records=len(records),
        train_records=len(train),
        eval_records=len(held),
        steps=steps,
        train_seconds=round(runtime, 2),
        seconds_per_step=round(runtime / steps, 3) if steps else 0.0,
        seconds_per_record=round(1 / samples_per_s, 3) if samples_per_s else 0.0,
        train_loss=float(output.training_loss) if output.training_loss is not None else None,
        eval_loss=float(eval_loss) if eval_loss is not None else None,
        size_bytes=folder_size(out),
        resumed_from=resumed,
    )
