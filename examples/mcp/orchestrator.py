"""The MCP story's orchestrator (examples/mcp; the Go launcher runs it with
the checkout's .venv python after `pip install -e 'sdk/python[mcp]'`).

It gets a task token, hands two ephemeral sub-agents a narrower token each —
researcher-1 for the TypeScript orders server, stock-1 for the Go inventory
server, each bound to the agent's own key — and lets them work through the
official Python MCP client with the SDK's DPoP auth: allowed calls, a refund
the policy refuses (naming its policy), a tool outside the agent's scopes.
Then it revokes the task and measures how soon each server refuses it.

Environment: MANDATE_ISSUER, ORCH_ID, ORCH_SECRET, ORDERS_MCP_URL and
ORDERS_MCP_URI (the TypeScript server's loopback URL and canonical URI),
INVENTORY_MCP_URL and INVENTORY_MCP_URI (the Go server's).

Every line it prints starts with a label (the step, or the agent speaking);
the last one is `root <jti>`. Tokens are named by their jti, never printed.
Exit status 1 when the story did not go as told.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

try:
    import mandate_auth  # noqa: F401
except ImportError:  # run from the checkout without the package installed
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "sdk", "python", "src"))

import anyio
from mcp.shared.exceptions import MCPError

from mandate_auth import Client, InvalidScopeError, Key, Token
from mandate_auth.mcp import connect, denial

REVOCATION_BOUND = 1.0  # seconds: revoking the task stops every server within it
WIDTH = 13
failures: list[str] = []


def say(label: str, text: str) -> None:
    print(f"{label:<{WIDTH}}{text}", flush=True)


def fail(label: str, text: str) -> None:
    failures.append(f"{label}: {text}")
    say(label, "UNEXPECTED: " + text)


def env(name: str) -> str:
    v = os.environ.get(name, "")
    if not v:
        sys.exit(f"orchestrator: set {name}")
    return v


def text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


async def researcher(name: str, url: str, tok: Token) -> None:
    async with connect(url, tok) as c:
        tools = [t.name for t in (await c.list_tools()).tools]
        say(name, f"tools/list → {', '.join(tools)}")
        found = json.loads(text(await c.call_tool("search_orders", {"query": "late"})))
        say(name, "search_orders {query: late} → " + "; ".join(f"{o['id']} ({o['customer']}, {o['total']}, {o['status']})" for o in found))

        r = await c.call_tool("refund_order", {"order": "o-1", "amount": 40})
        if r.is_error:
            fail(name, f"refund_order {{o-1, 40}} failed: {text(r)}")
        else:
            saw = json.loads(text(r))
            path = " → ".join([str(saw.get("subject"))] + list(reversed(saw.get("actors") or [])))
            say(name, f"refund_order {{o-1, 40}} → allowed; the orders API refunded {saw.get('refunded')} ({saw.get('amount')}) "
                      f"and saw the chain {path} (holder {saw.get('holder')}, depth {saw.get('depth')})")
            say(name, f"  what the orders API saw: {json.dumps(saw, sort_keys=True)}")

        try:
            r = await c.call_tool("refund_order", {"order": "o-2", "amount": 400})
            fail(name, f"refund_order {{o-2, 400}} ran: {text(r)}")
        except MCPError as e:
            d = denial(e)
            if d is None:
                fail(name, f"refund_order {{o-2, 400}} failed otherwise: {e.code} {e.message}")
            else:
                say(name, f"refund_order {{o-2, 400}} → refused (JSON-RPC {e.code}) by policy {', '.join(d.policies) or '(none)'}: {d.reason}")


async def stocker(name: str, url: str, tok: Token) -> None:
    async with connect(url, tok) as c:
        say(name, "tools/list → " + ", ".join(t.name for t in (await c.list_tools()).tools))
        say(name, "check_stock {sku: sku-1} → " + text(await c.call_tool("check_stock", {"sku": "sku-1"})))
        try:
            r = await c.call_tool("reserve_stock", {"sku": "sku-1", "qty": 2})
            fail(name, f"reserve_stock ran: {text(r)}")
        except MCPError:
            needed = c.mandate_auth.insufficient_scope  # type: ignore[attr-defined]
            if needed is None:
                fail(name, "reserve_stock was refused, but not for its scope")
            else:
                say(name, f"reserve_stock {{sku-1, 2}} → HTTP 403 insufficient_scope (needs {needed}), refused before the server read it")


async def until_refused(c: Any, tool: str, args: dict[str, Any], since: float) -> float:
    """Call ``tool`` again and again until the server refuses the revoked
    chain; the seconds from the revocation to the refusal."""
    while time.monotonic() - since < 10 * REVOCATION_BOUND:
        try:
            await c.call_tool(tool, args)
        except MCPError:
            return time.monotonic() - since
    return float("inf")


def main() -> int:
    # The MCP client warns on stderr when it cannot end a session the revocation
    # already ended (its DELETE answered 401): expected here, not news.
    logging.getLogger("mcp").setLevel(logging.ERROR)
    issuer, orch_id, secret = env("MANDATE_ISSUER"), env("ORCH_ID"), env("ORCH_SECRET")
    orders_url, orders_uri = env("ORDERS_MCP_URL"), env("ORDERS_MCP_URI")
    inv_url, inv_uri = env("INVENTORY_MCP_URL"), env("INVENTORY_MCP_URI")

    with Client(issuer, orch_id, secret, dpop_key=Key.generate()) as orch:
        # 1. The task token: every tool on both servers, bound to the orchestrator's key.
        #    (orders:refund too when the registration grants it: the orders server's
        #    audience exchange can only narrow what the agent's token grants.)
        try:
            root = orch.mint(scope="tools:* orders:refund", audience=[orders_uri, inv_uri])
        except InvalidScopeError:
            root = orch.mint(scope="tools:*", audience=[orders_uri, inv_uri])
            say("task", f"note: {orch_id} is not registered for orders:refund, so the orders server's audience exchange will be refused")
        say("task", f"token {root.info.jti} for {orders_uri} and {inv_uri}: {root.scope}, bound to {orch_id}'s key")

        # 2. Two ephemeral agents, each with a token narrowed to one server and a few tools.
        res_agent, stock_agent = orch.spawn_agent("researcher-1"), orch.spawn_agent("stock-1")
        res_scope = "tools:search_orders tools:refund_order" + (" orders:refund" if "orders:refund" in root.scopes else "")
        res_tok = orch.delegate_to_agent(root, res_agent, scope=res_scope, audience=orders_uri)
        stock_tok = orch.delegate_to_agent(root, stock_agent, scope="tools:check_stock", audience=inv_uri)
        for agent, tok, uri in ((res_agent, res_tok, orders_uri), (stock_agent, stock_tok, inv_uri)):
            info = tok.info
            say("delegate", f"{agent.name}: token {info.jti} for {uri}: {tok.scope} (depth {info.depth}, bound to the agent's own key)")

        # 3-4. The agents at work, with the official MCP client.
        anyio.run(researcher, "researcher-1", orders_url, res_tok)
        anyio.run(stocker, "stock-1", inv_url, stock_tok)

        # 5. Revoke the task: every server refuses it within a second.
        async def revocation() -> None:
            took: dict[str, float] = {}
            async with connect(orders_url, res_tok) as orders, connect(inv_url, stock_tok) as inventory:
                await anyio.to_thread.run_sync(orch.revoke, root)
                since = time.monotonic()
                say("revoke", f"task {root.info.jti} revoked: researcher-1 and stock-1 call again")

                async def watch(label: str, c: Any, tool: str, args: dict[str, Any]) -> None:
                    took[label] = await until_refused(c, tool, args, since)

                async with anyio.create_task_group() as tg:
                    tg.start_soon(watch, "orders (TypeScript)", orders, "search_orders", {"query": "late"})
                    tg.start_soon(watch, "inventory (Go)", inventory, "check_stock", {"sku": "sku-1"})
            for label, t in took.items():
                if t < REVOCATION_BOUND:
                    say("revoke", f"{label} refused the next call {t * 1000:.0f} ms after the revocation")
                else:
                    fail("revoke", f"{label} still accepted the task {t:.2f} s after the revocation")

        anyio.run(revocation)

    if failures:
        print(f"orchestrator: {len(failures)} step(s) did not go as told", file=sys.stderr)
    print(f"root {root.info.jti}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
