"""MCP (Model Context Protocol) with Mandate: every request an agent makes
to an MCP server decided by its chain.

- :mod:`mandate_auth.mcp.arguments` and :mod:`mandate_auth.mcp.decision`:
  the rule every Mandate guard shares (scope, arguments as a Cedar record,
  Cedar) — pure Python plus the ``cedar`` extra; the conformance runner
  plays the shared MCP vectors through them.
- :class:`McpGuard` (:mod:`mandate_auth.mcp.guard`): guards a server built
  with the official ``mcp`` SDK over streamable HTTP (ASGI middleware plus
  the SDK's server middleware).
- :class:`McpAuth`, :func:`mcp_http_client`, :func:`connect`
  (:mod:`mandate_auth.mcp.client`): a Mandate token (bearer, or DPoP-bound
  with a fresh proof per request) in the official MCP client.

The guard and the client need the ``mcp`` extra
(``pip install 'mandate-auth[mcp]'``); they are imported on first use.
"""

from __future__ import annotations

from typing import Any

from .arguments import MAX_ARGUMENTS_BYTES, MAX_ARGUMENTS_DEPTH, InvalidArgumentsError, parse_arguments
from .decision import (
    ACTING_EXEMPT,
    VERDICT_ALLOW,
    VERDICT_DENY,
    VERDICT_INSUFFICIENT_SCOPE,
    VERDICT_INVALID_ARGUMENTS,
    MCPDecision,
    MCPPolicy,
    decide_mcp,
    is_decided,
    required_scope,
    target,
)

__all__ = [
    "ACTING_EXEMPT",
    "CODE_DENIED",
    "MAX_ARGUMENTS_BYTES",
    "MAX_ARGUMENTS_DEPTH",
    "InvalidArgumentsError",
    "MCPDecision",
    "MCPPolicy",
    "McpAuth",
    "McpGuard",
    "McpDenial",
    "VERDICT_ALLOW",
    "VERDICT_DENY",
    "VERDICT_INSUFFICIENT_SCOPE",
    "VERDICT_INVALID_ARGUMENTS",
    "chain_of",
    "connect",
    "decide_mcp",
    "denial",
    "is_decided",
    "mcp_http_client",
    "parse_arguments",
    "required_scope",
    "target",
    "token_of",
]

CODE_DENIED = 403
"""The JSON-RPC error code of a request a guard refuses (docs/decisions.md:
not -32003, which the official Go SDK reads as a closed connection)."""

_LAZY = {
    "McpGuard": "guard",
    "McpDenial": "client",
    "denial": "client",
    "McpAuth": "client",
    "mcp_http_client": "client",
    "connect": "client",
    "chain_of": "guard",
    "token_of": "guard",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)
