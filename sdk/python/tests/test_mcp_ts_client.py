"""Interop: the official TypeScript MCP client (@modelcontextprotocol/sdk),
sending Mandate tokens through @mandate-auth/sdk/mcp's mcpFetch, against the
guarded Python server of test_mcp_guard.py (the official Python MCP server
behind McpGuard) over real HTTP, with a real `mandate serve`.

The tokens are minted and delegated here, with the Python SDK: a bearer one
held by a registered agent, and one bound to an ephemeral agent's key, which
the node script (ts_client.mjs) is handed as PKCS#8 PEM with the token on its
stdin. The script prints a JSON line per step; this test asserts them.

Skipped, loudly, when node, the built TypeScript SDK or its node_modules is
missing — except under CI (the environment variable CI set), where that is a
failure: `make test` builds the TypeScript SDK before the Python suite."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import pytest

from mandate_auth import Key

from .conftest import HERE, PY_MCP, REPO, Server
from .test_mcp_guard import Guarded, client, guarded, task  # noqa: F401  (guarded: the fixture, here too)

pytestmark = pytest.mark.integration

SCRIPT = HERE / "ts_client.mjs"
TS_SDK = REPO / "sdk" / "typescript"
SCOPE = "tools:search_orders tools:refund_order tools:whoami"


def _missing() -> str:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (TS_SDK / "dist" / "mcp.js").exists():
        return "the TypeScript SDK is not built (cd sdk/typescript && npm ci && npm run build)"
    if not (TS_SDK / "node_modules" / "@modelcontextprotocol" / "sdk" / "package.json").exists():
        return f"{TS_SDK}/node_modules has no @modelcontextprotocol/sdk (npm ci there)"
    return ""


@pytest.fixture(scope="module")
def node() -> str:
    why = _missing()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"the TypeScript MCP client cannot run under CI: {why}")
        pytest.skip(f"SKIPPED LOUDLY: the TypeScript client against the Python MCP server did not run: {why}")
    return shutil.which("node") or "node"


def drive(node: str, url: str, cases: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Runs ts_client.mjs on the cases; its lines, by case."""
    p = subprocess.run([node, str(SCRIPT)], input=json.dumps({"url": url, "cases": cases}), capture_output=True, text=True,
                       timeout=60, cwd=HERE)
    assert p.returncode == 0, f"ts_client.mjs exited {p.returncode}:\n{p.stderr}\n{p.stdout}"
    by: dict[str, list[dict[str, Any]]] = {}
    for line in p.stdout.splitlines():
        rec = json.loads(line)
        by.setdefault(rec.pop("case"), []).append(rec)
    return by


STEPS: list[dict[str, Any]] = [
    {"op": "list"},
    {"op": "call", "name": "search_orders", "arguments": {"query": "late"}},
    {"op": "call", "name": "whoami"},
    {"op": "call", "name": "refund_order", "arguments": {"order": "o-1", "amount": 40}},  # research-refund-small
    {"op": "call", "name": "refund_order", "arguments": {"order": "o-7", "amount": 1}},  # forbidden by a named policy
    {"op": "call", "name": "refund_order", "arguments": {"order": "o-1", "amount": 100}},  # no policy permits it
    {"op": "call", "name": "refund_downstream", "arguments": {"order": "o-1"}},  # outside the token's scopes
]


def test_typescript_client_against_the_python_guard(node: str, mcp_mandate: Server, guarded: Guarded) -> None:
    _, bearer = task(mcp_mandate, "researcher", SCOPE)
    orch = client(mcp_mandate, "orchestrator", dpop_key=Key.generate())
    agent = orch.spawn_agent("researcher-ts")
    bound = orch.delegate_to_agent(orch.mint(audience=PY_MCP), agent, scope=SCOPE, audience=PY_MCP)
    assert not bearer.bound and bound.bound and bound.key is agent.key
    runs, seen = dict(guarded.runs), len(guarded.seen)

    got = drive(node, guarded.url, [
        {"label": "bearer", "token": bearer.value, "key": None, "steps": STEPS},
        {"label": "dpop", "token": bound.value, "key": agent.key.export_private_pem().decode(), "steps": STEPS},
    ])

    assert set(got) == {"bearer", "dpop"}
    for label, holder in (("bearer", "researcher"), ("dpop", "orchestrator/researcher-ts")):
        init, listed, search, me, refund, forbidden, unpermitted, outside, close = got[label]
        # The initialize handshake (the TypeScript client's era: a session).
        assert init["op"] == "initialize" and init["bound"] == (label == "dpop") and init["session"] and init["protocol"], init
        # tools/list: only what the scopes cover (refund_downstream is not).
        assert listed == {"op": "list", "tools": ["refund_order", "search_orders", "whoami"]}
        assert search["ok"] and search["structured"] == {"result": ["o-1", "o-2"]}, search
        assert me["ok"] and json.loads(me["text"]) == {"holder": holder, "subject": "orchestrator", "depth": 1, "bound": label == "dpop"}, me
        assert refund["ok"] and refund["text"] == "refunded 40 on o-1", refund
        # Refused by Cedar: a JSON-RPC error, code 403, naming the forbidding policy (none for the default deny).
        assert forbidden["error"] == "jsonrpc" and forbidden["code"] == 403, forbidden
        assert forbidden["policies"] == ["no-refunds-for-order-7"] and "no-refunds-for-order-7" in forbidden["message"], forbidden
        assert unpermitted["error"] == "jsonrpc" and unpermitted["code"] == 403 and unpermitted["policies"] == [], unpermitted
        # Outside the scopes: HTTP 403 insufficient_scope, before the MCP server reads the call.
        assert outside["error"] == "http" and outside["status"] == 403, outside
        assert 'error="insufficient_scope"' in outside["www"] and 'scope="tools:refund_downstream"' in outside["www"], outside
        assert "resource_metadata=" in outside["www"] and outside["body"]["scope"] == "tools:refund_downstream", outside
        assert close == {"op": "close"}

    ran = {k: v - runs.get(k, 0) for k, v in guarded.runs.items()}
    assert ran.get("search_orders") == 2 and ran.get("refund_order") == 2, ran  # the refused calls never ran
    assert len(guarded.seen) == seen  # nor did the tool outside the scopes
