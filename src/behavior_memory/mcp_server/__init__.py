"""``bmem mcp``: the handbook of one namespace as a Model Context Protocol server.

Built with the official ``mcp`` SDK (``pip install "behavior-memory[mcp]"``), over stdio or
streamable HTTP. ``handbook_tools`` holds what the tools do (no SDK needed), ``server`` the SDK's
``MCPServer`` around it. The package is not named ``mcp`` so that it never shadows the SDK.
"""

from __future__ import annotations

from .handbook_tools import HandbookTools

__all__ = ["HandbookTools"]
