"""Interop: the official Python MCP client, with this SDK's auth hook,
against the Go MCP server guarded by chain/mcpguard (examples/mcp's
`inventory` mode: check_stock, reserve_stock; examples/mcp/policies), over
real HTTP, with a real `mandate serve`."""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
import httpx
import pytest
from mcp.shared.exceptions import MCPError

from mandate_auth import Client, Key, Token
from mandate_auth.mcp import CODE_DENIED, connect, denial

from .conftest import GO_MCP, Server
from .mcp_servers import Process

pytestmark = pytest.mark.integration


def agent_token(m: Server, name: str, scope: str) -> tuple[Client, Token, Token]:
    """The orchestrator's bound root and a bound delegation to its ephemeral agent ``name``."""
    orch = Client(m.issuer, "orchestrator", m.secrets["orchestrator"], dpop_key=Key.generate())
    root = orch.mint(scope="tools:*", audience=GO_MCP)
    agent = orch.spawn_agent(name)
    return orch, root, orch.delegate_to_agent(root, agent, scope=scope, audience=GO_MCP)


def text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_python_client_against_the_go_guard(mcp_mandate: Server, inventory: Process, mode: str) -> None:
    _, _, stock = agent_token(mcp_mandate, "stock-1", "tools:check_stock")
    _, _, research = agent_token(mcp_mandate, "researcher-1", "tools:check_stock")

    async def story() -> None:
        async with connect(inventory.url, stock, mode=mode) as c:
            assert [t.name for t in (await c.list_tools()).tools] == ["check_stock"]
            assert text(await c.call_tool("check_stock", {"sku": "sku-1"})) == "sku-1: 12 in stock"
            with pytest.raises(MCPError):  # outside the scopes: the Go guard's HTTP 403
                await c.call_tool("reserve_stock", {"sku": "sku-1", "qty": 2})
        async with connect(inventory.url, research, mode=mode) as c:
            # In scope, but no policy lets a research agent check stock: the Go
            # guard's JSON-RPC 403, read by the Python client.
            with pytest.raises(MCPError) as e:
                await c.call_tool("check_stock", {"sku": "sku-1"})
            d = denial(e.value)
            assert e.value.code == CODE_DENIED and d is not None and d.policies == [] and "no policy permits" in d.reason

    anyio.run(story)


def post(url: str, tok: str, body: str, scheme: str = "Bearer") -> httpx.Response:
    return httpx.post(url, content=body, headers={"Authorization": f"{scheme} {tok}", "Content-Type": "application/json",
                                                  "Accept": "application/json, text/event-stream", "Mcp-Protocol-Version": "2025-06-18"},
                      timeout=30)


def test_the_go_guard_refuses_what_it_must(mcp_mandate: Server, inventory: Process) -> None:
    orch, root, stock = agent_token(mcp_mandate, "stock-2", "tools:check_stock")
    reserve = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "reserve_stock", "arguments": {"sku": "a", "qty": 1}}})
    # A bound token as a bearer token.
    r = post(inventory.url, stock.value, reserve)
    assert r.status_code == 401 and "resource_metadata=" in r.headers["www-authenticate"]
    # Outside the scopes, with a proof: 403 insufficient_scope naming the scope, before the server reads it.
    proof = stock.key.proof("POST", inventory.url, access_token=stock.value)  # type: ignore[union-attr]
    r = httpx.post(inventory.url, content=reserve, headers={"Authorization": "DPoP " + stock.value, "DPoP": proof,
                                                            "Content-Type": "application/json", "Accept": "application/json, text/event-stream"})
    assert r.status_code == 403 and 'scope="tools:reserve_stock"' in r.headers["www-authenticate"]

    # A stock agent with the scope reserves; revoking the task stops it.
    _, root2, full = agent_token(mcp_mandate, "stock-3", "tools:*")

    async def story() -> float:
        async with connect(inventory.url, full) as c:
            assert text(await c.call_tool("reserve_stock", {"sku": "a", "qty": 2})) == "reserved 2 of a"
            await anyio.to_thread.run_sync(orch.revoke, root2)
            started = time.monotonic()
            while time.monotonic() - started < 10:
                try:
                    await c.call_tool("check_stock", {"sku": "a"})
                except MCPError:
                    return time.monotonic() - started
            raise AssertionError("the Go guard still accepted a revoked chain after 10 s")

    took = anyio.run(story)
    assert took < 10
