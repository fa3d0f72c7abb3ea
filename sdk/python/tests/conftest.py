"""Shared fixtures: the repository's vectors, a real `mandate serve` started
from this checkout (bound to 127.0.0.1:0, a throw-away store), and helpers
that sign tokens with real keys."""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator
from urllib.parse import parse_qs

import httpx
import pytest

from mandate_auth import Key, MandateMiddleware, Verifier, get_chain, require_scope

if TYPE_CHECKING:
    from .mcp_servers import Process

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent.parent  # sdk/python/tests -> repository root
VECTORS = REPO / "testdata" / "vectors"
POLICIES = REPO / "testdata" / "policies"

ISSUER = "https://mandate.example"
AUDIENCE = "https://orders.example"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- the real server -----------------------------------------------------------


_BUILT: dict[str, str] = {}


def go_binary(env: str, package: str, what: str, local: Path | None = None) -> str:
    """The binary ``$env`` names, else ``local`` if it exists, else one build
    of ``package`` from this checkout per test session, in a temporary
    directory."""
    b = os.environ.get(env)
    if b and os.path.exists(b):
        return b
    if local is not None and local.exists():
        return str(local)
    if package in _BUILT:
        return _BUILT[package]
    if shutil.which("go") is None:
        pytest.skip(f"no {env} and no Go toolchain to build {what}")
    out = Path(tempfile.mkdtemp(prefix="mandate-bin-")) / Path(package).name
    subprocess.run(["go", "build", "-o", str(out), package], cwd=REPO, check=True, timeout=600)
    _BUILT[package] = str(out)
    return str(out)


def mandate_binary() -> str:
    """$MANDATE_BIN (what `make test` builds), else one build of this checkout
    per test session, in a temporary directory."""
    return go_binary("MANDATE_BIN", "./cmd/mandate", "the server")


@dataclass
class Server:
    issuer: str
    proc: subprocess.Popen[bytes]
    secrets: dict[str, str]
    keys: dict[str, Key] = field(default_factory=dict)
    stderr_lines: "queue.Queue[str]" = field(default_factory=queue.Queue)

    def stop(self) -> None:
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


ODD_ID = "svc:reporter+1@x"
ODD_SECRET = "p@ss:w rd+&%=/é"


def _config(tmp: Path, keyed_jwks: Path, clients: list[dict[str, Any]] | None = None,
            extra: dict[str, Any] | None = None) -> tuple[str, dict[str, str]]:
    secrets = {
        "orchestrator": "orch-secret",
        "researcher": "res-secret",
        "db-agent": "db-secret",
        "orders-api": "rs-secret",
        "ops": "ops-secret",
        ODD_ID: ODD_SECRET,
    }
    cfg = {
        "listen": "127.0.0.1:0",
        "data_dir": str(tmp / "data"),
        "tokens": {"root_ttl": "15m", "delegated_ttl": "5m", "max_depth": 4},
        "clients": [
            {"id": "orchestrator", "secret": secrets["orchestrator"], "grants": ["client_credentials", "token_exchange"],
             "scopes": ["db:read:*", "tools:*"], "audiences": [AUDIENCE, "https://billing.example"], "groups": ["orchestrators"],
             "ephemeral": {"scopes": ["db:read:*"], "audiences": [AUDIENCE], "groups": ["research-agents"]}},
            {"id": "researcher", "secret": secrets["researcher"], "grants": ["client_credentials", "token_exchange"],
             "scopes": ["db:read:*"], "audiences": [AUDIENCE], "groups": ["research-agents"]},
            {"id": "db-agent", "secret": secrets["db-agent"], "grants": ["client_credentials", "token_exchange"],
             "scopes": ["db:read:*"], "audiences": [AUDIENCE]},
            {"id": "orders-api", "secret": secrets["orders-api"], "role": "resource_server"},
            {"id": "ops", "secret": secrets["ops"], "role": "admin"},
            {"id": ODD_ID, "secret": ODD_SECRET, "grants": ["client_credentials"], "scopes": ["tools:search"], "audiences": [AUDIENCE]},
            {"id": "keyed", "jwks_file": str(keyed_jwks), "grants": ["client_credentials", "token_exchange"],
             "scopes": ["tools:*"], "audiences": [AUDIENCE]},
        ],
    }
    if clients is not None:  # another story's registrations (each with its "secret")
        cfg["clients"] = clients
        secrets = {c["id"]: c["secret"] for c in clients if "secret" in c}
    if extra:  # more top-level keys (workload_issuers, id_jag_issuers, ...)
        cfg.update(extra)
    path = tmp / "mandate.yaml"
    path.write_text(json.dumps(cfg, ensure_ascii=False, indent=1))  # JSON is YAML
    return str(path), secrets


def start_server(tmp: Path, clients: list[dict[str, Any]] | None = None, *, config: dict[str, Any] | None = None,
                 files: dict[str, str] | None = None) -> Server:
    """A real `mandate serve` with the SDK suite's registrations, or with
    ``clients`` instead; ``config``'s top-level keys added to its config
    (relative paths in it are the config file's directory, ``tmp``), and
    ``files`` (name: text) written in ``tmp`` first."""
    binary = mandate_binary()
    for name, text in (files or {}).items():
        (tmp / name).write_text(text)
    keyed = Key.generate("ES256")
    jwks = tmp / "keyed-jwks.json"
    jwks.write_text(json.dumps(keyed.public_jwks()))
    path, secrets = _config(tmp, jwks, clients, config)
    proc = subprocess.Popen([binary, "serve", "--config", path], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            lines.put(raw.decode("utf-8", "replace"))

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 30
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.append(line)
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("msg") == "mandate serving":
            return Server(issuer=rec["issuer"], proc=proc, secrets=secrets, keys={"keyed": keyed}, stderr_lines=lines)
    proc.kill()
    raise RuntimeError("mandate serve did not start:\n" + "".join(seen[-20:]))


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    tmp = Path(tempfile.mkdtemp(prefix="mandate-py-"))
    s = start_server(tmp)
    try:
        yield s
    finally:
        s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


# -- signing test tokens ------------------------------------------------------------


def sign(key: Key, header: dict[str, Any], claims: dict[str, Any] | bytes) -> str:
    """A compact JWS with exactly this header and payload, really signed."""
    from mandate_auth._b64 import b64encode

    payload = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
    signing_input = b64encode(json.dumps(header).encode()) + "." + b64encode(payload)
    return signing_input + "." + b64encode(key.sign(signing_input.encode()))


NOW = 1_800_000_000


def claims(**over: Any) -> dict[str, Any]:
    """A well-formed depth-1 delegated token's claims at NOW."""
    c: dict[str, Any] = {
        "iss": ISSUER, "sub": "orchestrator", "sub_iss": ISSUER, "aud": [AUDIENCE], "client_id": "researcher",
        "scope": "db:read:*", "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 300, "jti": "child-jti",
        "act": {"sub": "researcher"}, "lineage": ["root-jti"],
    }
    c.update(over)
    return {k: v for k, v in c.items() if v is not ...}


@pytest.fixture(scope="session")
def issuer_key() -> Key:
    return Key.generate("EdDSA")


def token(key: Key, *, header: dict[str, Any] | None = None, **over: Any) -> str:
    h = {"alg": key.alg, "kid": key.kid, "typ": "at+jwt"}
    if header:
        h.update(header)
    return sign(key, {k: v for k, v in h.items() if v is not ...}, claims(**over))


# -- Mandate at the network boundary (httpx's MockTransport) ---------------------------

MOCK_METADATA = {"issuer": ISSUER, "token_endpoint": ISSUER + "/oauth2/token", "revocation_endpoint": ISSUER + "/oauth2/revoke",
                 "jwks_uri": ISSUER + "/.well-known/jwks.json"}


def claims_of(jws: str) -> dict[str, Any]:
    """A compact JWS's payload, unverified."""
    part = jws.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))  # type: ignore[no-any-return]


class MockMandate:
    """Mandate for httpx's MockTransport: its metadata, then each answer in
    turn (a response, or a callable of the request returning one); every
    request but discovery kept."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.requests: list[httpx.Request] = []

    def __call__(self, req: httpx.Request) -> httpx.Response:
        if req.url.path == "/.well-known/oauth-authorization-server":
            return httpx.Response(200, json=MOCK_METADATA)
        self.requests.append(req)
        a = self.answers.pop(0)
        return a(req) if callable(a) else a  # type: ignore[no-any-return]

    def form(self, i: int) -> dict[str, list[str]]:
        return parse_qs(self.requests[i].content.decode())


# -- serving an ASGI app over real HTTP ------------------------------------------------


class Served:
    """An ASGI app served by uvicorn on 127.0.0.1:0 in a thread."""

    def __init__(self, app: Any, lifespan: str = "off") -> None:
        import socket

        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._app = app
        self._server = uvicorn.Server(uvicorn.Config(self._dispatch, log_level="warning", lifespan=lifespan, interface="asgi3"))
        self._thread: threading.Thread | None = None

    async def _dispatch(self, scope: Any, receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)

    def serve(self, app: Any | None = None) -> "Served":
        if app is not None:
            self._app = app
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sock.close()


# -- the orders API: a Starlette app behind MandateMiddleware over real HTTP ------------


class API:
    """The orders API: a Starlette app behind MandateMiddleware, its verifier
    following the real Mandate, served over real HTTP."""

    def __init__(self, server: Server) -> None:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        from mandate_auth import MandateMiddleware, Verifier, get_chain, require_policy, require_scope
        from mandate_auth.cedar import Authorizer, Entity, PolicySet

        self.served = Served(None)
        self.url = self.served.url
        self.verifier = Verifier.discover(server.issuer, audience=AUDIENCE, client_id="orders-api",
                                          client_secret=server.secrets["orders-api"], public_url=self.url)
        az = Authorizer(PolicySet.load_dir(POLICIES / "api"))

        async def orders(request: Request) -> JSONResponse:
            c = get_chain(request)
            assert c is not None
            return JSONResponse({"holder": c.holder, "subject": c.subject, "actors": list(c.actors), "depth": c.depth})

        app = Starlette(routes=[Route("/orders", require_scope("db:read:orders")(require_policy(az, "call", Entity("Table", "orders"))(orders)))])
        app.add_middleware(MandateMiddleware, verifier=self.verifier)
        self.served.serve(app)

    def close(self) -> None:
        self.served.stop()
        self.verifier.close()


@pytest.fixture(scope="session")
def api(server: Server) -> Iterator[API]:
    a = API(server)
    try:
        yield a
    finally:
        a.close()


# -- the MCP story's registrations --------------------------------------------------------

PY_MCP = "https://py-mcp.example/mcp"
GO_MCP = "https://inventory-mcp.example/mcp"
TS_MCP = "https://orders-mcp.example/mcp"
ORDERS_API = "https://orders.example"
MCP_SCOPES = ["tools:*", "resources:read", "prompts:get", "orders:read", "orders:refund"]


def mcp_clients() -> list[dict[str, Any]]:
    """An orchestrator (ephemeral agents allowed), two registered agents, the
    MCP servers' own identities (registered with serves: their canonical
    URIs, for the audience exchange), the feed's resource_server, an admin.
    The agents may hold orders:* scopes too: an audience exchange's scope must
    be covered by the token exchanged."""
    mcps = [PY_MCP, GO_MCP, TS_MCP]
    both = ["client_credentials", "token_exchange"]
    return [
        {"id": "orchestrator", "secret": "orch-secret", "grants": both, "scopes": MCP_SCOPES, "audiences": mcps,
         "ephemeral": {"scopes": MCP_SCOPES, "audiences": mcps}},
        {"id": "researcher", "secret": "res-secret", "grants": both, "scopes": MCP_SCOPES, "audiences": mcps},
        {"id": "helper", "secret": "helper-secret", "grants": both, "scopes": MCP_SCOPES, "audiences": mcps},
        {"id": "mcp-feed", "secret": "feed-secret", "role": "resource_server"},
        {"id": "py-mcp", "secret": "py-mcp-secret", "grants": ["token_exchange"], "scopes": ["orders:read", "orders:refund"],
         "audiences": [ORDERS_API], "serves": [PY_MCP]},
        {"id": "orders-mcp", "secret": "orders-mcp-secret", "grants": ["token_exchange"], "scopes": ["orders:read", "orders:refund"],
         "audiences": [ORDERS_API], "serves": [TS_MCP]},
        {"id": "ops", "secret": "ops-secret", "role": "admin"},
    ]


@pytest.fixture(scope="session")
def mcp_mandate() -> Iterator[Server]:
    """A real `mandate serve` with the MCP story's registrations."""
    tmp = Path(tempfile.mkdtemp(prefix="mandate-py-mcp-"))
    s = start_server(tmp, mcp_clients())
    try:
        yield s
    finally:
        s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


# -- the other languages' guarded MCP servers (interop tests, the example) ------------------

@pytest.fixture(scope="session")
def inventory(mcp_mandate: Server) -> Iterator[Process]:
    """The Go MCP server of examples/mcp (`inventory` mode), guarded by chain/mcpguard."""
    from .mcp_servers import Process, example_binary

    p = Process([example_binary(), "inventory"], {
        "MANDATE_ISSUER": mcp_mandate.issuer, "MCP_FEED_ID": "mcp-feed", "MCP_FEED_SECRET": mcp_mandate.secrets["mcp-feed"],
        "MCP_SERVER_URI": GO_MCP, "MCP_POLICY_DIR": str(REPO / "examples" / "mcp" / "policies"),
    }, REPO, "the Go MCP server (examples/mcp inventory)")
    try:
        yield p
    finally:
        p.stop()


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


@pytest.fixture(scope="session")
def ts_orders(mcp_mandate: Server) -> Iterator[tuple[Process, list[dict[str, Any]]]]:
    """The TypeScript MCP server of examples/mcp (ts-server), guarded by
    @mandate-auth/sdk/mcp, and the Python orders API it refunds through;
    skipped loudly without node or the built TypeScript SDK (failed under CI)."""
    from .mcp_servers import Process

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


