"""What the MCP guard adds to a tools/call (never asserted by tests).

    .venv/bin/python sdk/python/bench/bench_mcp.py [--batches N] [--size N]

The figure that counts is ``guard``: the guard's whole HTTP layer for one
POST of a tools/call, driven as an ASGI app with an app behind it that only
reads the request — the token verified (a cached chain: the same token
again), the body read and replayed, the JSON-RPC message read strictly, the
arguments turned into a Cedar record, one Cedar decision (the issue's refund
rule, with groups), and the SDK-facing bookkeeping — plus the guard's server
middleware checking that the request the SDK read is the one decided. The
MCP SDK's own work is not in it. The parts are timed alone too. Each figure
is the median over interleaved batches of the mean time per operation, as
bench.py does: wall-clock (time.perf_counter), and the CPU time this process
spent (time.process_time), which a busy neighbour on a shared machine
inflates less. ``cedarpy alone`` is Cedar's own share: the same request,
already in Cedar's JSON form, evaluated by cedarpy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
from typing import Any, Callable

from mandate_auth import Key, RevocationSet, Verifier
from mandate_auth._b64 import b64encode
from mandate_auth.asgi import authenticate
from mandate_auth.cedar import PolicySet
from mandate_auth.mcp import McpGuard, parse_arguments
from mandate_auth.mcp.jsonrpc import read_message

ISSUER, SERVER = "https://mandate.example", "https://tools.example/mcp"
NOW = 1_800_000_000

POLICIES = """
@id("research-search")
permit (principal in Group::"research-agents", action == Action::"tools/call", resource == Tool::"search_orders");

@id("research-refund-small")
permit (principal in Group::"research-agents", action == Action::"tools/call", resource == Tool::"refund_order")
when { context.depth == 1 && context.arguments has amount && context.arguments.amount < 100 && context.server == "https://tools.example/mcp" };

@id("no-refunds-for-order-7")
forbid (principal, action == Action::"tools/call", resource == Tool::"refund_order")
when { context.arguments has order && context.arguments.order == "o-7" };
"""


def token(key: Key) -> str:
    claims = {
        "iss": ISSUER, "sub": "orchestrator", "sub_iss": ISSUER, "aud": [SERVER], "client_id": "mcp-researcher",
        "scope": "tools:*", "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 300, "jti": "0Q8wO9CCmMlJR3gjf3r7fM6ZMHOgI0",
        "act": {"sub": "mcp-researcher"}, "lineage": ["0Q8wO9C6qffvyKoKweOVmBX985L9oW"],
    }
    header = {"alg": key.alg, "kid": key.kid, "typ": "at+jwt"}
    si = b64encode(json.dumps(header, separators=(",", ":")).encode()) + "." + b64encode(json.dumps(claims, separators=(",", ":")).encode())
    return si + "." + b64encode(key.sign(si.encode()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--size", type=int, default=300)
    a = ap.parse_args()

    key = Key.generate("EdDSA")
    tok = token(key)
    v = Verifier(issuer=ISSUER, audience=SERVER, keys=key.public_jwks(), revocations=RevocationSet(), now=lambda: NOW)
    guard = McpGuard(v, server=SERVER, policy=PolicySet.parse(POLICIES, "mcp.cedar"), groups=lambda h: ["research-agents"])
    args = json.dumps({"order": "o-1", "amount": 42, "reason": "late delivery", "tags": ["a", "b"]}, separators=(",", ":"))
    body = ('{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"refund_order","arguments":' + args +
            ',"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":'
            '{"name":"mcp","version":"0.1.0"},"io.modelcontextprotocol/clientCapabilities":{}}}}').encode()
    headers = [(b"host", b"tools.example"), (b"authorization", b"Bearer " + tok.encode()), (b"content-type", b"application/json"),
               (b"accept", b"application/json, text/event-stream"), (b"mcp-protocol-version", b"2026-07-28"),
               (b"content-length", str(len(body)).encode())]

    class Request:
        __slots__ = ("scope",)

        def __init__(self, scope: Any) -> None:
            self.scope = scope

    class Ctx:  # what the SDK hands its server middleware
        __slots__ = ("request",)
        request_id = 7
        method = "tools/call"
        params = {"name": "refund_order", "arguments": json.loads(args)}

        def __init__(self, request: Any) -> None:
            self.request = request

    async def app(scope: Any, receive: Any, send: Any) -> None:  # the MCP SDK's place: read the body, run the middleware
        m = await receive()
        assert m["body"] == body
        await guard.middleware(Ctx(Request(scope)), _allowed)

    async def _allowed(ctx: Any) -> Any:
        return {}

    guarded = guard.asgi(app)
    loop = asyncio.new_event_loop()
    denied: list[int] = []

    async def one() -> None:
        scope = {"type": "http", "method": "POST", "path": "/mcp", "raw_path": b"/mcp", "headers": headers, "query_string": b""}
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(m: Any) -> None:
            denied.append(1)

        await guarded(scope, receive, send)

    async def many(n: int) -> None:
        for _ in range(n):
            await one()

    scope0 = {"type": "http", "method": "POST", "headers": headers, "raw_path": b"/mcp", "path": "/mcp"}
    chain = loop.run_until_complete(authenticate(v, scope0))

    def verify() -> None:
        loop.run_until_complete(authenticate(v, scope0))

    fns: dict[str, tuple[Callable[[], object], int]] = {
        "guard": (lambda: loop.run_until_complete(many(a.size)), 1),
        "verify (cached)": (lambda: [v.verify(tok) for _ in range(a.size)], 1),
        "read message": (lambda: [read_message(body) for _ in range(a.size)], 1),
        "arguments": (lambda: [parse_arguments(args) for _ in range(a.size)], 1),
        "decision": (lambda: [guard.policy.decide(chain, "tools/call", name="refund_order", arguments=args) for _ in range(a.size)], 1),
        "cedarpy alone": (lambda: [cedar_alone() for _ in range(a.size)], 1),
        "empty loop": (lambda: loop.run_until_complete(_empty(a.size)), 1),
    }
    assert guard.policy.decide(chain, "tools/call", name="refund_order", arguments=args).allow
    ps = guard.policy.policy
    req = {"principal": {"type": "Agent", "id": chain.holder}, "action": {"type": "Action", "id": "tools/call"},
           "resource": {"type": "Tool", "id": "refund_order"},
           "context": json.dumps({"server": SERVER, "depth": 1, "arguments": parse_arguments(args)})}
    ents = ps._entities_handle((chain.holder, ("research-agents",), "Tool", "refund_order"))

    def cedar_alone() -> None:  # the request already in Cedar's JSON: cedarpy's own share
        ps._internal.is_authorized_batch([req], ps._ps, ents, None, False)

    for fn, _ in fns.values():
        fn()
    if denied:
        sys.exit(f"the benchmark's request was refused ({len(denied)} answers sent)")
    rows: list[dict[str, float]] = []
    cpu: list[dict[str, float]] = []
    for _ in range(a.batches):
        row, crow = {}, {}
        for name, (fn, _) in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            row[name] = (time.perf_counter() - t0) / a.size
            crow[name] = (time.process_time() - c0) / a.size
        rows.append(row)
        cpu.append(crow)
    med = {name: statistics.median(r[name] for r in rows) for name in fns}
    cmed = {name: statistics.median(r[name] for r in cpu) for name in fns}
    print(f"Python {platform.python_version()} on {platform.machine()}, {a.batches} batches of {a.size}; load {_load()}")
    print(f"  {'':18s} {'wall':>8s}    {'cpu':>8s}")
    for name in fns:
        print(f"  {name:18s} {med[name] * 1e6:8.1f} µs {cmed[name] * 1e6:8.1f} µs")
    q = sorted(r["guard"] for r in rows)
    print(f"  guard per tools/call: median {med['guard'] * 1e6:.1f} µs wall ({cmed['guard'] * 1e6:.1f} µs of CPU), "
          f"batches {q[0] * 1e6:.1f}–{q[-1] * 1e6:.1f} µs (target ≤ 200 µs)")


def _load() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


async def _empty(n: int) -> None:
    for _ in range(n):
        await _noop()


async def _noop() -> None:
    return None


if __name__ == "__main__":
    main()
