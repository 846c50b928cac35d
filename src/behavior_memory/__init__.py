"""behavior-memory: procedural memory for LLM agents.

Record every task as a trace, reflect on it to mint reusable behaviors, keep them in a handbook,
and inject the relevant ones into the next prompts (Metacognitive Reuse, 2025).

>>> from behavior_memory import BehaviorMemory
>>> memory = BehaviorMemory()                      # defaults; or BehaviorMemory.from_yaml(path)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._lazy import load_export

if TYPE_CHECKING:
    from .config.settings import BehaviorMemoryConfig, load_config
    from .errors import BehaviorMemoryError, MissingDependencyError
    from .injection.render import RenderedBlock
    from .memory import BehaviorMemory
    from .retrieval.base import ScoredBehavior
    from .types import Behavior, BehaviorStatus, Outcome, ReflectionStatus, Step, TokenUsage, Trace

__version__ = "0.1.0"

#: public name -> the module that defines it. Names load on first use (PEP 562), so
#: ``import behavior_memory`` and ``bmem --help`` pay for pydantic and the config only when used.
_EXPORTS = {
    "Behavior": ".types",
    "BehaviorMemory": ".memory",
    "BehaviorMemoryConfig": ".config.settings",
    "BehaviorMemoryError": ".errors",
    "BehaviorStatus": ".types",
    "MissingDependencyError": ".errors",
    "Outcome": ".types",
    "ReflectionStatus": ".types",
    "RenderedBlock": ".injection.render",
    "ScoredBehavior": ".retrieval.base",
    "Step": ".types",
    "TokenUsage": ".types",
    "Trace": ".types",
    "load_config": ".config.settings",
}


def __getattr__(name: str) -> Any:
    return load_export(__name__, _EXPORTS, name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


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
