"""``bmem mcp``: serve one namespace's handbook to MCP clients (stdio or streamable HTTP)."""

from __future__ import annotations

import click

from .context import CliContext, pass_ctx

__all__ = ["mcp"]


@click.command()
@click.option(
    "--transport",
    type=click.Choice(["stdio", "http"]),
    default="stdio",
    show_default=True,
    help="stdio (a client starts `bmem mcp` itself) or streamable HTTP.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="HTTP: address to listen on.")
@click.option("--port", type=int, default=8765, show_default=True, help="HTTP: port.")
@click.option("--path", "http_path", default="/mcp", show_default=True, help="HTTP: the endpoint's path.")
@click.option("--timeout", "timeout_s", type=float, default=10.0, show_default=True, help="Seconds per tool call.")
@pass_ctx
def mcp(obj: CliContext, transport: str, host: str, port: int, http_path: str, timeout_s: float) -> None:
    """Serve the handbook to MCP clients (stdio or streamable HTTP).

    Tools: search_behaviors, get_behavior, propose_behavior, record_feedback; resources: the handbook.
    The namespace is the configuration's, or -n/--namespace before the command
    (`bmem -n acme/bot mcp`); clients never reach another one. Proposed behaviors wait as
    candidates, through the same guard as reflection. On stdio, stdout carries only the protocol.
    """
    from ..mcp_server.server import build_server

    memory = obj.memory()
    server, tools = build_server(memory, timeout_s=timeout_s)
    obj.err.print(f"[dim]bmem mcp: namespace '{tools.namespace}' over {transport}[/dim]")
    try:
        if transport == "stdio":
            server.run("stdio")
        else:
            obj.err.print(f"[dim]listening on http://{host}:{port}{http_path}[/dim]")
            server.run("streamable-http", host=host, port=port, streamable_http_path=http_path)
    finally:
        tools.close()
