"""Settings of :class:`~behavior_memory.llm.client.LLMClient`: where the server is and how to ask it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["LLMConfig", "StructuredOutputMode"]

StructuredOutputMode = Literal["json_schema", "structured_outputs", "json_object", "none"]


class LLMConfig(BaseModel):
    """How to reach an OpenAI-compatible chat server (vLLM first) and how to ask it.

    The defaults match the embedded server (``bmem serve``): SmolLM2-135M-Instruct on
    ``http://127.0.0.1:8000/v1`` without an API key.

    >>> LLMConfig(model="Qwen/Qwen3-8B", structured_output="structured_outputs").max_retries
    3
    """

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(
        default="http://127.0.0.1:8000/v1",
        description="Base URL of the OpenAI-compatible API, including the /v1 suffix.",
    )
    model: str = Field(
        default="smollm2-135m-instruct",
        description="Model name as the server knows it (vLLM: --served-model-name, else the model path).",
    )
    api_key: str = Field(
        default="EMPTY",
        repr=False,
        description="API key sent as a Bearer token; any string for a keyless vLLM server. Never logged.",
    )
    timeout_s: float = Field(
        default=60.0, gt=0, description="Seconds to wait for a whole answer (read timeout) per attempt."
    )
    connect_timeout_s: float = Field(
        default=5.0, gt=0, description="Seconds to wait for the TCP connection to the server."
    )
    max_retries: int = Field(
        default=3,
        ge=0,
        description=(
            "Retries of a transient fault (unreachable, timeout, 404/408/409/425/429/5xx, a body that is not "
            "the API's JSON), with exponential backoff and full jitter, within retry_budget_s. openai's own "
            "retries are off, so this policy is the only one."
        ),
    )
    retry_budget_s: float = Field(
        default=30.0,
        ge=0,
        description="Seconds one call may spend on attempts and waits before a transient fault is raised; "
        "the first attempt always runs.",
    )
    backoff_base_s: float = Field(
        default=0.5, ge=0, description="Longest wait before the first retry; it doubles with each retry."
    )
    backoff_max_s: float = Field(default=8.0, ge=0, description="Upper bound on the wait before any one retry.")
    breaker_threshold: int = Field(
        default=5,
        ge=0,
        description="Transient failures in a row, across every client of this base_url in the process, that "
        "open its circuit: calls then fail at once until breaker_cooldown_s has passed. 0 turns it off.",
    )
    breaker_cooldown_s: float = Field(
        default=5.0, gt=0, description="Seconds an open circuit fails calls fast before one probe may pass."
    )
    structured_output: StructuredOutputMode = Field(
        default="json_schema",
        description=(
            "How chat_json constrains the output: 'json_schema' sends the OpenAI response_format with the "
            "schema; 'structured_outputs' sends vLLM's extra_body structured_outputs.json; 'json_object' "
            "asks for any JSON object and puts the schema in the prompt; 'none' only puts the schema in "
            "the prompt. The answer is validated in every mode."
        ),
    )
    output_retries: int = Field(
        default=2,
        ge=0,
        description="How many times chat_json re-asks when the answer does not validate against the schema.",
    )
    temperature: float = Field(default=0.0, ge=0, description="Sampling temperature; 0 is greedy.")
    max_tokens: int = Field(default=1024, gt=0, description="Upper bound on generated tokens per call.")
    extra_body: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Extra JSON fields merged into every request body, e.g. vLLM's top_k, repetition_penalty "
            "or chat_template_kwargs."
        ),
    )
