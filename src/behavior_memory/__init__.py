"""behavior-memory: procedural memory for LLM agents.

Record every task as a trace, reflect on it to mint reusable behaviors, keep them in a handbook,
and inject the relevant ones into the next prompts (Metacognitive Reuse, 2025).

>>> from behavior_memory import BehaviorMemory
>>> memory = BehaviorMemory()                      # defaults; or BehaviorMemory.from_yaml(path)
"""

from __future__ import annotations

from .config.settings import BehaviorMemoryConfig, load_config
from .errors import (
    BehaviorMemoryError,
    ConfigError,
    EmbeddingError,
    InvalidBehaviorError,
    InvalidInputError,
    LLMConnectionError,
    LLMError,
    LLMOutputError,
    LLMStatusError,
    LLMTimeoutError,
    MissingDependencyError,
    NotFoundError,
    ServerError,
    StoreCorruptedError,
    StoreError,
    StoreUnavailableError,
)
from .injection.render import RenderedBlock
from .memory import BehaviorMemory
from .retrieval.base import ScoredBehavior
from .types import Behavior, BehaviorStatus, Outcome, ReflectionStatus, Step, TokenUsage, Trace

__version__ = "0.1.0"

__all__ = [
    "Behavior",
    "BehaviorMemory",
    "BehaviorMemoryConfig",
    "BehaviorMemoryError",
    "BehaviorStatus",
    "ConfigError",
    "EmbeddingError",
    "InvalidBehaviorError",
    "InvalidInputError",
    "LLMConnectionError",
    "LLMError",
    "LLMOutputError",
    "LLMStatusError",
    "LLMTimeoutError",
    "MissingDependencyError",
    "NotFoundError",
    "Outcome",
    "ReflectionStatus",
    "RenderedBlock",
    "ScoredBehavior",
    "ServerError",
    "Step",
    "StoreCorruptedError",
    "StoreError",
    "StoreUnavailableError",
    "TokenUsage",
    "Trace",
    "__version__",
    "load_config",
]
