"""The example's orchestrator (examples/mcp/orchestrator.py), run as the Go
launcher runs it, against the real servers of the story: a real `mandate
serve` whose orchestrator is registered for the tools and for orders:refund
(which the orders server's audience exchange narrows to), the TypeScript
orders server and its downstream orders API, and the Go inventory server."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from .conftest import GO_MCP, REPO, TS_MCP, Server
from .mcp_servers import Process

pytestmark = pytest.mark.integration


def test_the_orchestrator_tells_the_story(mcp_mandate: Server, inventory: Process, ts_orders: tuple[Process, list[dict[str, Any]]]) -> None:
    orders, seen = ts_orders
    env = {"MANDATE_ISSUER": mcp_mandate.issuer, "ORCH_ID": "orchestrator", "ORCH_SECRET": mcp_mandate.secrets["orchestrator"],
           "ORDERS_MCP_URL": orders.url, "ORDERS_MCP_URI": TS_MCP, "INVENTORY_MCP_URL": inventory.url, "INVENTORY_MCP_URI": GO_MCP,
           "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, str(REPO / "examples" / "mcp" / "orchestrator.py")], env=env, capture_output=True, timeout=120)
    out, err = r.stdout.decode(), r.stderr.decode()
    assert r.returncode == 0, out + err
    lines = out.splitlines()
    assert lines[-1].startswith("root ") and len(lines[-1].split()) == 2
    labels = {line.split()[0] for line in lines[:-1]}
    assert labels <= {"task", "delegate", "researcher-1", "stock-1", "revoke"}, labels
    story = "\n".join(lines)
    for want in ("tools:* orders:refund", "orchestrator/researcher-1", "orchestrator/stock-1", "search_orders, refund_order",
                 "refund_order {o-1, 40} → allowed", "orchestrator → orchestrator/researcher-1 → orders-mcp",
                 "by policy refunds-below-100-at-depth-1", "check_stock {sku: sku-1} → sku-1: 12 in stock",
                 "HTTP 403 insufficient_scope (needs tools:reserve_stock)", "orders (TypeScript) refused", "inventory (Go) refused"):
        assert want in story, f"{want!r} not in the story:\n{story}"
    assert "eyJ" not in out + err, "a whole token was printed"
    assert seen and seen[-1]["actors"] == ["orders-mcp", "orchestrator/researcher-1"] and seen[-1]["amount"] == 40
