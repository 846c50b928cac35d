import subprocess
import sys

import behavior_memory
from behavior_memory import errors

PUBLIC_NAMES = [
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

# Heavy or optional packages that `import behavior_memory` must leave alone: they load on first use.
NOT_ON_IMPORT = (
    "openai",
    "tiktoken",
    "numpy",
    "torch",
    "sentence_transformers",
    "transformers",
    "langchain",
    "langchain_core",
    "langgraph",
    "llama_index",
    "matplotlib",
    "math_verify",
    "psycopg",
    "pgvector",
)


def _modules_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_all_is_curated_and_short():
    assert sorted(behavior_memory.__all__) == sorted(PUBLIC_NAMES)
    assert len(behavior_memory.__all__) <= 15
    for name in behavior_memory.__all__:
        assert hasattr(behavior_memory, name)


def test_every_error_derives_from_the_root_and_stays_importable_from_errors():
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type):  # the rest are helpers such as is_transient
            assert issubclass(obj, behavior_memory.BehaviorMemoryError), name
        else:
            assert callable(obj), name


def test_import_loads_no_heavy_or_optional_package():
    loaded = _modules_after("import behavior_memory\nfrom behavior_memory import BehaviorMemory")
    heavy = sorted(m for m in loaded if m.split(".")[0] in NOT_ON_IMPORT)
    assert heavy == []


def test_import_loads_neither_serving_nor_adapters_nor_the_cli():
    loaded = _modules_after("import behavior_memory")
    upper = ("behavior_memory.serving", "behavior_memory.adapters", "behavior_memory.cli", "behavior_memory.eval")
    assert sorted(m for m in loaded if m.startswith(upper)) == []


def test_cli_help_loads_no_heavy_package():
    loaded = _modules_after("from behavior_memory.cli.main import cli")
    assert sorted(m for m in loaded if m.split(".")[0] in NOT_ON_IMPORT) == []
    assert not any(m.startswith("behavior_memory.serving") for m in loaded)


def test_cli_registry_help_matches_the_commands():
    import click

    from behavior_memory.cli.main import COMMANDS, cli

    ctx = click.Context(cli)
    for name, (_, _, help_line) in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None
        assert command.get_short_help_str(limit=10_000) == help_line
