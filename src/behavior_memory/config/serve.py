"""The ``serve`` section: how ``bmem serve`` runs the model (read by ``serving/``, never imported from it)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ServeConfig", "connect_host"]


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
