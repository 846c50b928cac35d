"""behavior-memory: procedural memory for LLM agents.

Record every task as a trace, reflect on it to mint reusable behaviors, keep them in a handbook,
and inject the relevant ones into the next prompts (Metacognitive Reuse, 2025).

>>> from behavior_memory import BehaviorMemory
>>> memory = BehaviorMemory()                      # defaults; or BehaviorMemory.from_yaml(path)
"""

from __future__ import annotations

from .config.settings import BehaviorMemoryConfig, load_config
from .errors import BehaviorMemoryError, MissingDependencyError
from .injection.render import RenderedBlock
from .memory import BehaviorMemory
from .retrieval.base import ScoredBehavior
from .types import Behavior, BehaviorStatus, Outcome, ReflectionStatus, Step, TokenUsage, Trace

__version__ = "0.1.0"

# Fifteen names, pinned by tests/unit/test_public_api.py. Every error class stays importable
# from ``behavior_memory.errors``; the stages have their own modules (store, retrieval, ...).
__all__ = [
    "Behavior",
    "BehaviorMemory",
    "BehaviorMemoryConfig",
    "BehaviorMemoryError",
    "BehaviorStatus",
    "MissingDependencyError",
    "Outcome",
    "ReflectionStatus",
    "RenderedBlock",
    "ScoredBehavior",
    "Step",
    "TokenUsage",
    "Trace",
    "__version__",
    "load_config",
]
