"""The ``sft`` section: how ``bmem sft train`` fine-tunes a student (read by ``sft/``, never imported from it)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SFTConfig"]


class SFTConfig(BaseModel):
    """Fine-tuning settings; every one can be overridden by a ``bmem sft train`` flag.

    ``base=None`` means the embedded SmolLM2-135M-Instruct folder (what ``bmem serve`` serves on CPU).
    """

    model_config = ConfigDict(extra="forbid")

    base: str | None = Field(default=None, description="Local Hugging Face folder of the causal LM to fine-tune.")
    chat_template: str | None = Field(
        default=None,
        description="Jinja file used in training and saved with the model; default: the base's own "
        "(the embedded SmolLM2 gets the tool-aware template `bmem serve` uses).",
    )
    method: Literal["lora", "full"] = Field(default="lora", description="LoRA through PEFT, or full fine-tuning.")
    epochs: float = Field(default=3.0, gt=0, description="Passes over the training records.")
    max_steps: int | None = Field(default=None, gt=0, description="Stop after this many optimizer steps.")
    learning_rate: float = Field(default=2e-4, gt=0, description="2e-4 suits LoRA; use about 1e-5 for full.")
    batch_size: int = Field(default=4, ge=1, description="Records per device per step.")
    gradient_accumulation: int = Field(default=1, ge=1, description="Steps accumulated per optimizer step.")
    max_length: int = Field(default=2048, ge=16, description="Tokens per record at most (longer ones are cut).")
    eval_fraction: float = Field(default=0.1, ge=0, lt=1, description="Share of records held out for eval loss.")
    seed: int = 0
    lora_r: int = Field(default=16, ge=1)
    lora_alpha: int = Field(default=32, ge=1)
    lora_dropout: float = Field(default=0.05, ge=0, lt=1)
    lora_target_modules: str | list[str] = Field(default="all-linear", description="PEFT target_modules.")
    save_steps: int = Field(default=50, ge=1, description="Checkpoint every N steps (resume point).")
    logging_steps: int = Field(default=10, ge=1)
    gradient_checkpointing: bool = Field(default=False, description="Less GPU memory for about 30% more time.")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        default="auto", description="Training dtype; auto = bfloat16 on a GPU that has it, float32 on CPU."
    )
