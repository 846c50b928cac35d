import subprocess
import sys

import behavior_memory


def test_all_is_curated():
    assert sorted(behavior_memory.__all__) == sorted(
        [
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
    )
    for name in behavior_memory.__all__:
        assert hasattr(behavior_memory, name)


def test_every_error_derives_from_the_root():
    for name in behavior_memory.__all__:
        obj = getattr(behavior_memory, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, behavior_memory.BehaviorMemoryError)


def test_import_loads_no_agent_framework_and_no_torch():
    code = (
        "import sys, behavior_memory; from behavior_memory import BehaviorMemory; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('langchain', 'langchain_core', 'langgraph', 'llama_index', 'torch', 'sentence_transformers')]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
