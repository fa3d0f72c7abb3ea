"""The MCP guard against a real `mandate serve`: an MCP server built with the
official Python SDK (MCPServer over streamable HTTP, served by uvicorn on
127.0.0.1:0), guarded by McpGuard, driven by the official Python MCP client
with Mandate tokens — bearer and DPoP-bound — over real HTTP, in both of the
client's eras (the 2026-07-28 stateless protocol it negotiates by default,
and the initialize handshake with a session)."""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

import anyio
import httpx
import pytest
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError

from mandate_auth import (
    AsyncClient,
    Client,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
    Key,
    Token,
    Verifier,
)
from mandate_auth.cedar import PolicySet
from mandate_auth.mcp import CODE_DENIED, McpGuard, chain_of, connect, denial, token_of

from .conftest import ORDERS_API, PY_MCP, TS_MCP, Served, Server

pytestmark = pytest.mark.integration

POLICIES = f"""
@id("research-search")
permit (principal in Group::"research-agents", action == Action::"tools/call", resource == Tool::"search_orders");

@id("research-refund-small")
permit (principal in Group::"research-agents", action == Action::"tools/call", resource == Tool::"refund_order")
when {{ context.depth == 1 && context.arguments has amount && context.arguments.amount < 100 && context.server == "{PY_MCP}" }};

@id("no-refunds-for-order-7")
forbid (principal, action == Action::"tools/call", resource == Tool::"refund_order")
when {{ context.arguments has order && context.arguments.order == "o-7" }};

@id("research-whoami")
permit (principal in Group::"research-agents", action == Action::"tools/call", resource == Tool::"whoami");

@id("research-downstream")
permit (principal in Group::"research-agents", action == Action::"tools/call", resource == Tool::"refund_downstream");

@id("docs")
permit (principal, action == Action::"resources/read", resource == Resource::"file:///docs/readme.md");

@id("summaries")
permit (principal, action == Action::"prompts/get", resource == Prompt::"summarize")
when {{ context.arguments has style && context.arguments.style == "short" && context.bound }};
"""


def groups(holder: str) -> list[str]:
    if holder in ("researcher", "helper") or holder.startswith("orchestrator/researcher-"):
        return ["research-agents"]
    return []


@dataclass
class Guarded:
    """The guarded Python MCP server, its verifier, what its tools did, its log."""

    url: str
    base: str
    verifier: Verifier
    guard: McpGuard
    runs: Counter[str] = field(default_factory=Counter)
    seen: list[dict[str, Any]] = field(default_factory=list)
    synced: threading.Condition = field(default_factory=threading.Condition)


def orders_server(g: Guarded, mandate: Server) -> MCPServer:
    s = MCPServer("orders")

    @s.tool()
    def search_orders(query: str = "") -> list[str]:
        g.runs["search_orders"] += 1
        return ["o-1", "o-2"]

    @s.tool()
    def refund_order(order: str, amount: int) -> str:
        g.runs["refund_order"] += 1
        return f"refunded {amount} on {order}"

    @s.tool()
    def whoami(ctx: Context) -> dict[str, Any]:
        c = chain_of(ctx)
        assert c is not None
        return {"holder": c.holder, "subject": c.subject, "depth": c.depth, "bound": c.bound}

    @s.tool()
    async def refund_downstream(order: str, ctx: Context) -> dict[str, Any]:
        # No passthrough: the server's own token for the orders API, by the audience exchange.
        received = token_of(ctx)
        assert received is not None
        async with AsyncClient(mandate.issuer, "py-mcp", mandate.secrets["py-mcp"]) as me:
            mine = await me.exchange_for_downstream(received, ORDERS_API, scope="orders:refund")
        info = mine.info
        g.seen.append({"holder": info.holder, "actors": list(info.actors), "audiences": list(info.audiences),
                       "scopes": list(info.scopes), "lineage": list(info.lineage), "subject": info.subject, "value": mine.value})
        return {"holder": info.holder, "actors": list(info.actors)}

    @s.resource("file:///docs/readme.md")
    def readme() -> str:
        g.runs["readme"] += 1
        return "read me"

    @s.resource("file:///etc/passwd")
    def passwd() -> str:
        g.runs["passwd"] += 1
        return "root:x:0:0"

    @s.prompt()
    def summarize(style: str) -> str:
        g.runs["summarize"] += 1
        return f"summarize, {style}"

    return s


@pytest.fixture(scope="module")
def guarded(mcp_mandate: Server) -> Iterator[Guarded]:
    served = Served(None, lifespan="on")
    cond = threading.Condition()

    def on_sync(err: BaseException | None) -> None:
        with cond:
            cond.notify_all()

    v = Verifier.discover(mcp_mandate.issuer, audience=PY_MCP, client_id="mcp-feed", client_secret=mcp_mandate.secrets["mcp-feed"],
                          public_url=served.url, on_sync=on_sync)
    guard = McpGuard(v, server=PY_MCP, policy=PolicySet.parse(POLICIES, "orders-mcp.cedar"), groups=groups)
    g = Guarded(url=served.url + "/mcp", base=served.url, verifier=v, guard=guard, synced=cond)
    served.serve(guard.protect(orders_server(g, mcp_mandate)))
    try:
        yield g
    finally:
        served.stop()
        v.close()


def client(m: Server, cid: str, **kw: Any) -> Client:
    return Client(m.issuer, cid, m.secrets[cid], **kw)


def task(m: Server, holder: str, scope: str, audience: str = PY_MCP) -> tuple[Token, Token]:
    """The orchestrator's root (bearer) delegated to a registered agent."""
    orch = client(m, "orchestrator")
    root = orch.mint(audience=audience)
    agent = client(m, holder)
    return root, orch.delegate(root, agent.identity(), scope=scope, audience=audience)


def run(fn: Any, *args: Any) -> Any:
    return anyio.run(fn, *args)


def text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def post(g: Guarded, token: str | None, body: str | bytes, session: str | None = None, scheme: str = "Bearer") -> httpx.Response:
    """One JSON-RPC request by hand (what the MCP client would send)."""
    h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if token is not None:
        h["Authorization"] = f"{scheme} {token}"
    if session is not None:
        h["Mcp-Session-Id"] = session
        h["Mcp-Protocol-Version"] = "2025-11-25"
    else:
        h["Mcp-Protocol-Version"] = "2026-07-28"
    return httpx.post(g.url, content=body, headers=h, timeout=30)


def call_body(tool: str, args: Any, id: int = 9) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}})


def is_denied(e: BaseException, *policies: str) -> bool:
    d = denial(e)
    assert d is not None, f"not a guard's denial: {e!r}"
    assert d.policies == list(policies), (d.policies, d.message)
    assert all(p in d.message for p in policies) and d.message.startswith("denied: ")
    return True


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_tool_calls_are_decided_by_the_chain(mcp_mandate: Server, guarded: Guarded, mode: str, caplog: pytest.LogCaptureFixture) -> None:
    _, tok = task(mcp_mandate, "researcher", "tools:*")
    before = Counter(guarded.runs)

    async def story() -> None:
        async with connect(guarded.url, tok, mode=mode) as c:
            assert c.protocol_version == ("2026-07-28" if mode == "auto" else "2025-11-25")
            names = {t.name for t in (await c.list_tools()).tools}
            assert {"search_orders", "refund_order", "whoami"} <= names
            assert text(await c.call_tool("search_orders", {"query": "late"})).count("o-") == 2
            assert text(await c.call_tool("refund_order", {"order": "o-1", "amount": 99})) == "refunded 99 on o-1"
            assert json.loads(text(await c.call_tool("whoami", {})))["holder"] == "researcher"
            # Refused: no policy permits 100 (Cedar's default deny names none) ...
            with pytest.raises(MCPError) as e:
                await c.call_tool("refund_order", {"order": "o-1", "amount": 100})
            assert e.value.code == CODE_DENIED and is_denied(e.value)
            # ... a forbid names itself ...
            with pytest.raises(MCPError) as e:
                await c.call_tool("refund_order", {"order": "o-7", "amount": 1})
            assert is_denied(e.value, "no-refunds-for-order-7")
            # ... arguments past the bounds, or spelt in two cases, are never decided on.
            deep: Any = {"amount": 1}
            for _ in range(8):
                deep = {"n": deep}
            with pytest.raises(MCPError) as e:
                await c.call_tool("refund_order", {"order": "o-1", "amount": 1, "meta": deep})
            assert is_denied(e.value) and "nested deeper than 8 levels" in e.value.message
            with pytest.raises(MCPError) as e:
                await c.call_tool("refund_order", {"order": "o-1", "amount": 5, "AMOUNT": 500})
            assert is_denied(e.value) and "case" in e.value.message
            with pytest.raises(MCPError) as e:
                await c.call_tool("refund_order", {"order": "o-1", "amount": 5, "note": "x" * (64 << 10)})
            assert is_denied(e.value) and "bytes of JSON" in e.value.message
            with pytest.raises(MCPError) as e:
                await c.call_tool("refund_order", {"order": "o-1", "amount": 5, "note": None})
            assert is_denied(e.value) and "null" in e.value.message

    with caplog.at_level(logging.INFO, logger="mandate_auth.mcp"):
        run(story)
    ran = guarded.runs - before
    assert ran["refund_order"] == 1 and ran["search_orders"] == 1, ran
    logs = caplog.text
    assert "no-refunds-for-order-7" in logs and tok.info.jti in logs and tok.value not in logs

    # One hop further (depth 2) the same refund is denied.
    _, mine = task(mcp_mandate, "researcher", "tools:*")
    deeper = client(mcp_mandate, "researcher").delegate(mine, client(mcp_mandate, "helper").identity(), scope="tools:*", audience=PY_MCP)

    async def deeper_refund() -> None:
        async with connect(guarded.url, deeper, mode=mode) as c:
            with pytest.raises(MCPError) as e:
                await c.call_tool("refund_order", {"order": "o-1", "amount": 5})
            assert is_denied(e.value)

    run(deeper_refund)
    assert (guarded.runs - before)["refund_order"] == 1


def test_tools_list_shows_what_the_scopes_cover(mcp_mandate: Server, guarded: Guarded) -> None:
    _, tok = task(mcp_mandate, "researcher", "tools:search_orders")
    before = guarded.runs["refund_order"]

    async def story() -> None:
        for mode in ("auto", "legacy"):
            async with connect(guarded.url, tok, mode=mode) as c:
                assert [t.name for t in (await c.list_tools()).tools] == ["search_orders"]
                with pytest.raises(MCPError):  # the HTTP 403 below, as the client reports it
                    await c.call_tool("refund_order", {"order": "o-1", "amount": 1})

    run(story)
    # By hand: the answer MCP clients step up on, before the server reads the call.
    r = post(guarded, tok.value, call_body("refund_order", {"amount": 1}))
    www = r.headers.get("www-authenticate", "")
    assert r.status_code == 403 and 'error="insufficient_scope"' in www and 'scope="tools:refund_order"' in www
    assert "resource_metadata=" in www and r.json()["scope"] == "tools:refund_order"
    r = post(guarded, tok.value, json.dumps({"jsonrpc": "2.0", "id": 3, "method": "resources/read", "params": {"uri": "file:///docs/readme.md"}}))
    assert r.status_code == 403 and 'scope="resources:read"' in r.headers["www-authenticate"]
    assert guarded.runs["refund_order"] == before


def test_only_tokens_for_this_server(mcp_mandate: Server, guarded: Guarded) -> None:
    root, tok = task(mcp_mandate, "researcher", "tools:*")
    body = call_body("search_orders", {})
    before = guarded.runs["search_orders"]

    r = post(guarded, None, body)
    assert r.status_code == 401 and f'resource_metadata="{guarded.guard.metadata().url()}"' in r.headers["www-authenticate"]
    # A token for another MCP server.
    _, other = task(mcp_mandate, "researcher", "tools:*", audience=TS_MCP)
    r = post(guarded, other.value, body)
    assert r.status_code == 401 and r.json()["error"] == "invalid_token" and "audience" in r.json()["error_description"]
    assert guarded.runs["search_orders"] == before

    # The RFC 9728 document names Mandate.
    md = httpx.get(guarded.base + "/.well-known/oauth-protected-resource/mcp").json()
    assert md["resource"] == PY_MCP and md["authorization_servers"] == [mcp_mandate.issuer] and md["scopes_supported"] == ["tools:*"]

    # A session opened by the researcher: another agent may not use it, the researcher may.
    sessions: list[str] = []

    async def remember(r: Any) -> None:
        if "mcp-session-id" in r.headers:
            sessions.append(r.headers["mcp-session-id"])

    async def session_story() -> None:
        async with connect(guarded.url, tok, mode="legacy", http_options={"event_hooks": {"response": [remember]}}) as c:
            await c.call_tool("search_orders", {"query": "x"})
            session_id = sessions[0]
            _, helper = task(mcp_mandate, "helper", "tools:*")
            r = await anyio.to_thread.run_sync(post, guarded, helper.value, body, session_id)
            assert r.status_code == 403 and "another agent" in r.json()["error_description"]
            r = await anyio.to_thread.run_sync(lambda: httpx.delete(guarded.url, headers={
                "Authorization": "Bearer " + helper.value, "Mcp-Session-Id": session_id}))
            assert r.status_code == 403
            await c.call_tool("search_orders", {"query": "still mine"})

            # Revoked in the middle of the session: refused once the feed has it.
            await anyio.to_thread.run_sync(client(mcp_mandate, "orchestrator").revoke, root)
            await anyio.to_thread.run_sync(wait_revoked, guarded, root.info.jti)
            r = await anyio.to_thread.run_sync(post, guarded, tok.value, body, session_id)
            assert r.status_code == 401 and "revoked" in r.json()["error_description"]
            with pytest.raises(MCPError):
                await c.call_tool("search_orders", {"query": "after"})

    run(session_story)
    assert guarded.runs["search_orders"] == before + 2


def wait_revoked(g: Guarded, jti: str) -> None:
    """Until the verifier's feed has delivered the revocation (each sync
    notifies; bounded)."""
    import time

    deadline = time.monotonic() + 10
    with g.synced:
        while not g.verifier.revoked(jti):
            assert time.monotonic() < deadline, "the revocation never reached the verifier"
            g.synced.wait(timeout=deadline - time.monotonic())


def test_a_bound_token_carries_its_proof(mcp_mandate: Server, guarded: Guarded) -> None:
    orch = client(mcp_mandate, "orchestrator", dpop_key=Key.generate())
    root = orch.mint(audience=PY_MCP)
    agent = orch.spawn_agent("researcher-1")
    tok = orch.delegate_to_agent(root, agent, scope="tools:search_orders tools:whoami prompts:get", audience=PY_MCP)
    assert tok.bound and tok.key is agent.key
    before = guarded.runs["search_orders"]

    async def story() -> None:
        for mode in ("auto", "legacy"):
            async with connect(guarded.url, tok, mode=mode) as c:
                await c.call_tool("search_orders", {"query": "x"})
                me = json.loads(text(await c.call_tool("whoami", {})))
                assert me == {"holder": "orchestrator/researcher-1", "subject": "orchestrator", "depth": 1, "bound": True}
                # A prompt only for sender-constrained tokens, with its arguments decided.
                assert "short" in str((await c.get_prompt("summarize", {"style": "short"})).messages)
                with pytest.raises(MCPError) as e:
                    await c.get_prompt("summarize", {"style": "long"})
                assert is_denied(e.value)

    run(story)
    assert guarded.runs["search_orders"] == before + 2
    # The same token as a bearer token: refused.
    r = post(guarded, tok.value, call_body("search_orders", {}))
    assert r.status_code == 401 and "sender-constrained" in r.json()["error_description"]
    # A proof for another URL (the Host header never counts): refused.
    proof = agent.key.proof("POST", "https://elsewhere.example/mcp", access_token=tok.value)
    r = httpx.post(guarded.url, content=call_body("search_orders", {}), headers={
        "Authorization": "DPoP " + tok.value, "DPoP": proof, "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream", "Mcp-Protocol-Version": "2026-07-28"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_dpop_proof"
    assert guarded.runs["search_orders"] == before + 2


def test_the_nonce_retry(mcp_mandate: Server) -> None:
    """A server that requires DPoP nonces: the client's first proof is
    answered use_dpop_nonce, it retries once with the nonce and keeps it."""
    served = Served(None, lifespan="on")
    v = Verifier.discover(mcp_mandate.issuer, audience=PY_MCP, client_id="mcp-feed", client_secret=mcp_mandate.secrets["mcp-feed"],
                          public_url=served.url, dpop_nonce=True)
    g = Guarded(url=served.url + "/mcp", base=served.url, verifier=v, guard=McpGuard(v, server=PY_MCP,
                policy=PolicySet.parse(POLICIES, "p.cedar"), groups=groups))
    statuses: list[int] = []
    inner = g.guard.protect(orders_server(g, mcp_mandate))

    async def watch(scope: Any, receive: Any, send: Any) -> None:
        async def s(m: Any) -> None:
            if m["type"] == "http.response.start":
                statuses.append(m["status"])
            await send(m)

        await inner(scope, receive, s)

    served.serve(watch)
    try:
        orch = client(mcp_mandate, "orchestrator", dpop_key=Key.generate())
        agent = orch.spawn_agent("researcher-2")
        tok = orch.delegate_to_agent(orch.mint(audience=PY_MCP), agent, scope="tools:search_orders", audience=PY_MCP)

        async def story() -> None:
            async with connect(g.url, tok) as c:
                await c.call_tool("search_orders", {"query": "x"})
                await c.call_tool("search_orders", {"query": "y"})

        run(story)
        assert g.runs["search_orders"] == 2
        assert statuses.count(401) == 1, statuses  # one challenge, then the nonce is kept
    finally:
        served.stop()
        v.close()


def test_bad_messages_are_refused_before_the_server(mcp_mandate: Server, guarded: Guarded) -> None:
    _, tok = task(mcp_mandate, "researcher", "tools:*")
    before = sum(guarded.runs.values())
    bodies = [
        "[" + call_body("search_orders", {}) + "]",  # a batch
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_orders","name":"refund_order","arguments":{}}}',
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"refund_order","arguments":{"amount":5,"amount":500}}}',
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_orders","arguments":{}},"method":"tools/call"}',
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_orders","arguments":{"q":NaN}}}',
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_\\ud800","arguments":{}}}',
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_orders","arguments":{"q":"\xff"}}}',
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_orders"}} {}',
        '{"jsonrpc":"2.0","method":"tools/call","params":{"name":"search_orders"}}',  # a request without an id
    ]
    for b in bodies:
        r = post(guarded, tok.value, b)
        assert r.status_code == 400 and r.json()["error"]["code"] == -32600, (b, r.status_code, r.text)
    # Arguments JSON-RPC reads but the rule refuses: a JSON-RPC denial.
    for args in ('{"amount":1e400}', '{"amount":1.00001}', '{"__entity":{"type":"Agent","id":"a"}}', '{"s":1,"\\u017f":2}'):
        r = post(guarded, tok.value, '{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"search_orders","arguments":' + args + "}}")
        assert r.status_code == 200 and r.json()["id"] == "x" and r.json()["error"]["code"] == CODE_DENIED, (args, r.text)
        assert r.json()["error"]["data"]["policies"] == []
    assert sum(guarded.runs.values()) == before


def test_resources_and_other_methods(mcp_mandate: Server, guarded: Guarded) -> None:
    _, tok = task(mcp_mandate, "researcher", "tools:search_orders resources:read")
    before = Counter(guarded.runs)

    async def story() -> None:
        async with connect(guarded.url, tok) as c:
            assert "read me" in str(await c.read_resource("file:///docs/readme.md"))
            with pytest.raises(MCPError) as e:
                await c.read_resource("file:///etc/passwd")
            assert is_denied(e.value)

    run(story)
    ran = guarded.runs - before
    assert ran["readme"] == 1 and ran["passwd"] == 0
    # Any other acting method is decided on the server (no policy permits it here).
    r = post(guarded, tok.value, json.dumps({"jsonrpc": "2.0", "id": 4, "method": "completion/complete",
                                              "params": {"ref": {"type": "ref/prompt", "name": "summarize"}, "argument": {"name": "style", "value": "s"}}}))
    assert r.status_code == 200 and r.json()["error"]["code"] == CODE_DENIED


def test_the_audience_exchange(mcp_mandate: Server, guarded: Guarded) -> None:
    """An MCP server calls further with its own token: the caller's subject,
    the server in the actor chain, the downstream audience, the parent in the
    lineage; never the token it received. (The token exchanged must grant
    the downstream scope: an exchange never widens.)"""
    root, tok = task(mcp_mandate, "researcher", "tools:* orders:refund")

    async def story() -> None:
        async with connect(guarded.url, tok) as c:
            out = json.loads(text(await c.call_tool("refund_downstream", {"order": "o-1"})))
            assert out == {"holder": "py-mcp", "actors": ["py-mcp", "researcher"]}

    run(story)
    seen = guarded.seen[-1]
    assert seen["subject"] == "orchestrator" and seen["audiences"] == [ORDERS_API] and seen["scopes"] == ["orders:refund"]
    assert seen["lineage"] == [root.info.jti, tok.info.jti] and seen["value"] != tok.value
    # The downstream API accepts it; a verifier for it follows the same feed.
    with Verifier.discover(mcp_mandate.issuer, audience=ORDERS_API, client_id="mcp-feed", client_secret=mcp_mandate.secrets["mcp-feed"]) as api:
        c = api.verify(seen["value"])
        assert (c.holder, c.actors, c.depth) == ("py-mcp", ("py-mcp", "researcher"), 2)

    me = client(mcp_mandate, "py-mcp")
    with pytest.raises(InvalidScopeError):  # wider than the parent's and the registration's
        me.exchange_for_downstream(tok, ORDERS_API, scope="orders:delete")
    with pytest.raises(InvalidTargetError):  # an audience beyond its registration
        me.exchange_for_downstream(tok, "https://billing.example")
    with pytest.raises(InvalidRequestError):  # a token for an audience it does not serve
        me.exchange_for_downstream(task(mcp_mandate, "researcher", "tools:* orders:refund", audience=TS_MCP)[1], ORDERS_API)
    with pytest.raises(ValueError):
        me.exchange_for_downstream(tok, [])
    client(mcp_mandate, "orchestrator").revoke(root)
    with pytest.raises(InvalidRequestError):  # a revoked parent
        me.exchange_for_downstream(tok, ORDERS_API)


def test_a_bound_server_key_binds_the_downstream_token(mcp_mandate: Server) -> None:
    _, tok = task(mcp_mandate, "researcher", "tools:* orders:read")
    key = Key.generate("ES256")
    mine = client(mcp_mandate, "py-mcp", dpop_key=key).exchange_for_downstream(tok.value, ORDERS_API, "orders:read")
    assert mine.bound and mine.key is key and mine.info.holder == "py-mcp"


def test_the_guard_refuses_a_misconfiguration(mcp_mandate: Server, guarded: Guarded) -> None:
    ps = PolicySet.parse(POLICIES, "p.cedar")
    with pytest.raises(ValueError):
        McpGuard(guarded.verifier, server=TS_MCP, policy=ps)  # the verifier is for another audience
    with pytest.raises(ValueError):
        McpGuard(guarded.verifier, server=PY_MCP, policy=None)  # type: ignore[arg-type]


def test_a_server_not_behind_the_guard_runs_nothing(mcp_mandate: Server) -> None:
    """The guard's server middleware alone (no HTTP layer in front): every
    acting request is refused."""
    from mandate_auth import RevocationSet

    v = Verifier(issuer=mcp_mandate.issuer, audience=PY_MCP, keys=Key.generate().public_jwks(), revocations=RevocationSet())
    guard = McpGuard(v, server=PY_MCP, policy=PolicySet.parse(POLICIES, "p.cedar"))
    g = Guarded(url="", base="", verifier=v, guard=guard)
    s = orders_server(g, mcp_mandate)
    s.middleware.append(guard.middleware)
    served = Served(s.streamable_http_app(), lifespan="on").serve()
    try:
        meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
        body = json.dumps({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "search_orders", "arguments": {}, "_meta": meta}})
        r = httpx.post(served.url + "/mcp", content=body, headers={
            "Content-Type": "application/json", "Accept": "application/json, text/event-stream", "Mcp-Protocol-Version": "2026-07-28",
            "Mcp-Method": "tools/call", "Mcp-Name": "search_orders"})
        assert r.json()["error"]["code"] == CODE_DENIED and "no verified Mandate chain" in r.json()["error"]["message"], r.text
        assert g.runs["search_orders"] == 0
    finally:
        served.stop()
