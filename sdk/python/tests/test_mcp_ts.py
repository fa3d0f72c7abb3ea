"""Interop: the official Python MCP client, with this SDK's auth hook,
against the TypeScript MCP server of examples/mcp (ts-server/server.mjs,
guarded by @mandate-auth/sdk/mcp), over real HTTP, with a real `mandate
serve` and a downstream orders API (Python, behind MandateMiddleware) that
the TypeScript server refunds through by the audience exchange.

Skipped, loudly, when node, the server or the built TypeScript SDK is
missing — except under CI (the environment variable CI set), where that is a
failure: `make test` builds the TypeScript SDK before the Python suite."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest
from mcp.shared.exceptions import MCPError

from mandate_auth import Client, Key, Token
from mandate_auth.mcp import connect, denial

from .conftest import TS_MCP, Server
from .mcp_servers import Process

pytestmark = pytest.mark.integration

def researcher(m: Server, scope: str) -> Token:
    orch = Client(m.issuer, "orchestrator", m.secrets["orchestrator"], dpop_key=Key.generate())
    root = orch.mint(audience=TS_MCP)
    return orch.delegate_to_agent(root, orch.spawn_agent("researcher-1"), scope=scope, audience=TS_MCP)


def text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_python_client_against_the_typescript_guard(mcp_mandate: Server, ts_orders: tuple[Process, list[dict[str, Any]]], mode: str) -> None:
    proc, seen = ts_orders
    tok = researcher(mcp_mandate, "tools:search_orders tools:refund_order orders:refund")
    narrow = researcher(mcp_mandate, "tools:search_orders")

    async def story() -> None:
        async with connect(proc.url, narrow, mode=mode) as c:
            assert [t.name for t in (await c.list_tools()).tools] == ["search_orders"]
        async with connect(proc.url, tok, mode=mode) as c:
            assert {t.name for t in (await c.list_tools()).tools} == {"search_orders", "refund_order"}
            found = json.loads(text(await c.call_tool("search_orders", {"query": "late"})))
            assert [o["id"] for o in found] == ["o-1"]
            # Through the orders API, with the TypeScript server's own token (the audience exchange).
            r = await c.call_tool("refund_order", {"order": "o-1", "amount": 40})
            assert not r.is_error, text(r)
            api = json.loads(text(r))
            assert api["refunded"] == "o-1" and api["actors"] == ["orders-mcp", "orchestrator/researcher-1"] and api["subject"] == "orchestrator"
            with pytest.raises(MCPError) as e:
                await c.call_tool("refund_order", {"order": "o-2", "amount": 400})
            d = denial(e.value)
            assert d is not None and d.policies == ["refunds-below-100-at-depth-1"]

    anyio.run(story)
    assert [s["refunded"] for s in seen[-1:]] == ["o-1"] and all(s["amount"] != 400 for s in seen)


def test_the_typescript_guard_refuses_a_bound_token_as_bearer(mcp_mandate: Server, ts_orders: tuple[Process, list[dict[str, Any]]]) -> None:
    proc, _ = ts_orders
    tok = researcher(mcp_mandate, "tools:search_orders")
    r = httpx.post(proc.url, content='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_orders","arguments":{"query":"x"}}}',
                   headers={"Authorization": "Bearer " + tok.value, "Content-Type": "application/json",
                            "Accept": "application/json, text/event-stream"})
    assert r.status_code == 401 and "resource_metadata=" in r.headers["www-authenticate"]
