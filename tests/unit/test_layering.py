"""The import graph of the package: no circles between its parts, no upward imports, frameworks only in adapters.

Every module under ``src/behavior_memory`` is parsed with ``ast``; an import anywhere in a file
(module level, inside a function, under ``if TYPE_CHECKING:``) is an edge. The circle check leaves
out the ``TYPE_CHECKING`` edges: they never run, and they are how a lower part names a type of a
higher one without importing it (the protocols in ``store.base`` or ``injection.fetch``). Imports
inside functions do count: they run, and a lazy circle breaks as surely as an eager one, later.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "behavior_memory"
ROOT = Path(__file__).resolve().parents[2] / "src" / PACKAGE
# The parts allowed to import serving/ and adapters/: the front ends, not the library.
NOT_CORE = {"adapters", "cli", "eval", "serving"}
UPPER = {"adapters", "serving"}
FRAMEWORKS = ("langchain", "langchain_core", "langgraph", "llama_index", "llama_index_instrumentation")


@dataclass(frozen=True)
class Edge:
    source: str  # dotted module name
    target: str  # dotted module name (may be outside the package)
    type_only: bool
    line: int


def _module_name(path: Path, root: Path) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(source: str, module: str, *, is_package: bool = False) -> list[Edge]:
    """Every import in ``source`` (the text of ``module``), with relative imports resolved."""
    tree = ast.parse(source)
    type_only = _type_checking_lines(tree)
    base = module.split(".") if is_package else module.split(".")[:-1]
    edges = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            origin = ".".join(base[: len(base) - node.level + 1] if node.level else [])
            stem = ".".join(p for p in (origin, node.module or "") if p) if node.level else node.module or ""
            # ``from . import x`` imports the module ``x``; ``from .a import b`` imports ``a`` (b may be a module too)
            targets = [stem] + [f"{stem}.{alias.name}" for alias in node.names]
        else:
            continue
        edges.extend(Edge(module, t, node.lineno in type_only, node.lineno) for t in targets)
    return edges


def package_edges(root: Path = ROOT) -> list[Edge]:
    edges = []
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root)
        edges.extend(imports_of(path.read_text(), module, is_package=path.name == "__init__.py"))
    return edges


def part(module: str) -> str | None:
    """The top-level part of the package a module belongs to (``store``, ``memory``), or None outside."""
    bits = module.split(".")
    if bits[0] != PACKAGE:
        return None
    return bits[1] if len(bits) > 1 else "__init__"


def part_graph(edges: list[Edge]) -> dict[str, set[str]]:
    """Part -> parts it imports at run time. The package ``__init__`` only re-exports, so it is no node."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        src, dst = part(e.source), part(e.target)
        if e.type_only or src is None or dst is None or src == dst or "__init__" in (src, dst):
            continue
        graph.setdefault(src, set()).add(dst)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def upward_imports(edges: list[Edge]) -> list[str]:
    """Core modules importing adapters/ or serving/ (type-only imports included: they couple too)."""
    return [
        f"{e.source}:{e.line} imports {e.target}"
        for e in edges
        if part(e.source) not in NOT_CORE and part(e.target) in UPPER
    ]


def framework_imports(edges: list[Edge]) -> list[str]:
    """Modules outside adapters/ importing LangChain, LangGraph or LlamaIndex."""
    return [
        f"{e.source}:{e.line} imports {e.target}"
        for e in edges
        if part(e.source) != "adapters" and e.target.split(".")[0] in FRAMEWORKS
    ]


# --- the package -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def edges() -> list[Edge]:
    found = package_edges()
    assert len({e.source for e in found}) > 50  # the walk found the package
    return found


def test_no_import_circle_between_parts(edges: list[Edge]) -> None:
    assert find_cycle(part_graph(edges)) is None


def test_core_never_imports_adapters_or_serving(edges: list[Edge]) -> None:
    assert upward_imports(edges) == []


def test_only_adapters_import_agent_frameworks(edges: list[Edge]) -> None:
    assert framework_imports(edges) == []


# --- the checker itself ------------------------------------------------------------------------------


def test_checker_catches_what_it_must() -> None:
    snippet = """
from typing import TYPE_CHECKING
from ..serving import server
from ..store import base
if TYPE_CHECKING:
    from ..memory import BehaviorMemory

def later():
    from langchain_core.messages import AIMessage
"""
    found = imports_of(snippet, "behavior_memory.retrieval.bad")
    assert upward_imports(found) == [
        "behavior_memory.retrieval.bad:3 imports behavior_memory.serving",
        "behavior_memory.retrieval.bad:3 imports behavior_memory.serving.server",
    ]
    assert framework_imports(found) == [
        "behavior_memory.retrieval.bad:9 imports langchain_core.messages",
        "behavior_memory.retrieval.bad:9 imports langchain_core.messages.AIMessage",
    ]
    # a function-level import closes a circle; a TYPE_CHECKING one does not
    back = imports_of("def f():\n    from ..retrieval import config\n", "behavior_memory.store.sqlite")
    assert find_cycle(part_graph(found + back)) == ["retrieval", "store", "retrieval"]
    assert next(e for e in found if e.target == "behavior_memory.memory").type_only
    assert find_cycle(part_graph(found)) is None


def test_checker_reads_a_new_module_on_disk(tmp_path: Path) -> None:
    pkg = tmp_path / PACKAGE
    (pkg / "store").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .store import base\n")
    (pkg / "store" / "__init__.py").write_text("")
    (pkg / "store" / "base.py").write_text("from ..adapters import langchain\n")
    found = package_edges(pkg)
    assert upward_imports(found)[0] == "behavior_memory.store.base:1 imports behavior_memory.adapters"
