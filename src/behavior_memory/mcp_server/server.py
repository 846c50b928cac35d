"""The MCP server: one namespace's handbook as tools and resources, with the official ``mcp`` SDK.

Tools: ``search_behaviors(query, k)``, ``get_behavior(name)``, ``propose_behavior(name,
instruction, evidence, topic)`` and ``record_feedback(trace_id, outcome, score, comment)``.
Resources: ``behaviors://handbook`` (the active behaviors, one ``name: instruction`` line each)
and ``behaviors://handbook/{name}`` (one behavior as JSON).

Each call runs in a worker thread within ``timeout_s``. Whatever goes wrong (a bad argument, a
missing record, a dead or hung store) comes back as a tool error with a message the model can
read; the server itself goes on serving. The namespace is fixed when the server starts.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .._optional import require
from ..errors import InvalidInputError, NotFoundError
from ..injection.render import behavior_line
from ..injection.search import SEARCH_TOOL_DESCRIPTION
from .handbook_tools import HandbookTools, SearchFailedError

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from ..memory import BehaviorMemory

__all__ = ["HANDBOOK_URI", "build_server"]

log = logging.getLogger(__name__)

HANDBOOK_URI = "behaviors://handbook"
_T = TypeVar("_T")


def _message(exc: BaseException, timeout_s: float) -> str:
    """What the client reads: the caller's own mistakes in full; of a fault only its kind (no paths, no DSNs)."""
    if isinstance(exc, TimeoutError):
        return f"the handbook did not answer within {timeout_s:g} s; try again later"
    if isinstance(exc, InvalidInputError | NotFoundError | SearchFailedError):
        return str(exc)
    return f"the handbook is unavailable ({type(exc).__name__}); try again later"


def build_server(
    memory: BehaviorMemory, *, namespace: str | None = None, timeout_s: float = 10.0
) -> tuple[MCPServer, HandbookTools]:
    """An ``MCPServer`` over ``memory``'s handbook in ``namespace`` (default: the memory's)."""
    require("mcp", "mcp", what="bmem mcp")
    import anyio
    import anyio.to_thread
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
    from mcp.types import ToolAnnotations

    tools = HandbookTools(memory, namespace=namespace, timeout_s=min(timeout_s, 5.0))

    async def run(fn: Callable[..., _T], *args: Any) -> _T:
        with anyio.fail_after(timeout_s):
            return await anyio.to_thread.run_sync(functools.partial(fn, *args), abandon_on_cancel=True)

    async def call(fn: Callable[..., _T], *args: Any) -> _T:
        try:
            return await run(fn, *args)
        except Exception as exc:
            if not isinstance(exc, InvalidInputError | NotFoundError):
                log.warning("MCP tool %s failed: %s", getattr(fn, "__name__", fn), exc, exc_info=True)
            raise ToolError(_message(exc, timeout_s)) from exc

    server: MCPServer = MCPServer(
        "behavior-memory",
        log_level="WARNING",  # the SDK logs each refused call at INFO; the tool error already says it
        instructions=(
            f"The handbook of behaviors of namespace {tools.namespace!r}: short, reusable strategies "
            "learned from earlier tasks. Search it when stuck, cite a behavior by name when you use it, "
            "propose a behavior you found useful (it waits as a candidate), and report how a task went."
        ),
    )
    read_only = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)

    @server.tool(description=SEARCH_TOOL_DESCRIPTION, annotations=read_only)
    async def search_behaviors(query: str, k: int | None = None) -> dict[str, Any]:
        return await call(tools.search_behaviors, query, k)

    @server.tool(annotations=read_only)
    async def get_behavior(name: str) -> dict[str, Any]:
        """One behavior of the handbook by its name (behavior_...): instruction, topic, status, counters."""
        return await call(tools.get_behavior, name)

    @server.tool(annotations=ToolAnnotations(destructive_hint=False, open_world_hint=False))
    async def propose_behavior(name: str, instruction: str, evidence: str, topic: str | None = None) -> dict[str, Any]:
        """Propose a new behavior: a name (behavior_snake_case), a one-line instruction, and the
        evidence that it helped (what happened in the task). It is stored as a candidate and is only
        used after the handbook's checks and a person or enough evidence approve it."""
        return await call(tools.propose_behavior, name, instruction, evidence, topic)

    @server.tool(annotations=ToolAnnotations(destructive_hint=False, open_world_hint=False))
    async def record_feedback(
        trace_id: str, outcome: str | None = None, score: float | None = None, comment: str | None = None
    ) -> dict[str, Any]:
        """Say how a recorded task went: outcome (success, failure or unknown), a score, a comment.
        The behaviors the task cited count it as help (success) or harm (failure)."""
        return await call(tools.record_feedback, trace_id, outcome, score, comment)

    @server.resource(HANDBOOK_URI, name="handbook", mime_type="text/plain")
    async def handbook() -> str:
        """The active behaviors of the handbook, one ``name: instruction`` line each, by name."""
        try:
            behaviors = await run(tools.list_behaviors)
        except Exception as exc:
            raise ResourceError(_message(exc, timeout_s)) from exc
        return "\n".join(behavior_line(b) for b in behaviors)

    @server.resource(HANDBOOK_URI + "/{name}", name="behavior", mime_type="application/json")
    async def behavior(name: str) -> str:
        """One behavior of the handbook as JSON."""
        try:
            record = await run(tools.get_behavior, name)
        except (NotFoundError, InvalidInputError) as exc:
            raise ResourceNotFoundError(str(exc)) from exc
        except Exception as exc:
            raise ResourceError(_message(exc, timeout_s)) from exc
        return json.dumps(record, ensure_ascii=False)

    # Referenced so linters see them used: the decorators registered them.
    del search_behaviors, get_behavior, propose_behavior, record_feedback, handbook, behavior
    return server, tools
