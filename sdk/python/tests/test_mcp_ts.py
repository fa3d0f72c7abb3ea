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
import os
import shutil
from typing import Any, Iterator

import anyio
import httpx
import pytest
from mcp.shared.exceptions import MCPError

from mandate_auth import Client, Key, MandateMiddleware, Token, Verifier, get_chain, require_scope
from mandate_auth.mcp import connect, denial

from .conftest import ORDERS_API, REPO, TS_MCP, Served, Server
from .mcp_servers import Process

pytestmark = pytest.mark.integration

TS_SERVER = REPO / "examples" / "mcp" / "ts-server"


def _missing() -> str:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (TS_SERVER / "server.mjs").exists():
        return f"{TS_SERVER / 'server.mjs'} does not exist"
    if not (REPO / "sdk" / "typescript" / "dist").is_dir():
        return "the TypeScript SDK is not built (cd sdk/typescript && npm ci && npm run build)"
    if not (TS_SERVER / "node_modules").is_dir():
        return f"{TS_SERVER}/node_modules is missing (npm ci there)"
    return ""


@pytest.fixture(scope="module")
def ts_orders(mcp_mandate: Server) -> Iterator[tuple[Process, list[dict[str, Any]]]]:
    why = _missing()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"the TypeScript MCP server cannot run under CI: {why}")
        pytest.skip(f"SKIPPED LOUDLY: the Python client against the TypeScript MCP server did not run: {why}")
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    seen: list[dict[str, Any]] = []
    api = Served(None)
    v = Verifier.discover(mcp_mandate.issuer, audience=ORDERS_API, client_id="mcp-feed", client_secret=mcp_mandate.secrets["mcp-feed"],
                          public_url=api.url)

    async def refund(request: Request) -> JSONResponse:
        c = get_chain(request)
        assert c is not None
        body = await request.json()
        out = {"refunded": request.path_params["id"], "amount": body.get("amount"), "subject": c.subject, "holder": c.holder,
               "actors": list(c.actors), "depth": c.depth}
        seen.append(out)
        return JSONResponse(out)

    app = Starlette(routes=[Route("/orders/{id}/refund", require_scope("orders:refund")(refund), methods=["POST"])])
    app.add_middleware(MandateMiddleware, verifier=v)
    api.serve(app)
    p = Process(["node", "server.mjs"], {
        "MANDATE_ISSUER": mcp_mandate.issuer, "MCP_FEED_ID": "mcp-feed", "MCP_FEED_SECRET": mcp_mandate.secrets["mcp-feed"],
        "MCP_CLIENT_ID": "orders-mcp", "MCP_CLIENT_SECRET": mcp_mandate.secrets["orders-mcp"], "MCP_SERVER_URI": TS_MCP,
        "MCP_POLICY_DIR": str(REPO / "examples" / "mcp" / "policies"), "ORDERS_API_URL": api.url, "ORDERS_API_AUDIENCE": ORDERS_API,
        "LISTEN": "127.0.0.1:0",
    }, TS_SERVER, "the TypeScript MCP server (examples/mcp/ts-server)")
    try:
        yield p, seen
    finally:
        p.stop()
        api.stop()
        v.close()


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
