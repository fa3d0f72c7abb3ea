"""Guarding an MCP server built with the official ``mcp`` SDK (2.x,
streamable HTTP) with Mandate's chains (docs/mcp.md), the Python twin of Go's
``chain/mcpguard``::

    v = Verifier.discover(issuer, audience="https://mcp.orders.example/mcp",      # the server's canonical URI
                          client_id="mcp-feed", client_secret=feed_secret,        # a resource_server client
                          public_url="https://mcp.orders.example")                # DPoP proofs' htu
    guard = McpGuard(v, server="https://mcp.orders.example/mcp", policy=PolicySet.load_dir("policies"))
    server = MCPServer("orders")            # tools as usual
    app = guard.protect(server)             # an ASGI app: /mcp guarded, the RFC 9728 document served

What each HTTP request meets, in order (the design: the guard reads the raw
body itself, decides there, and passes the request on only when allowed —
docs: the SDK's README, "Guarding an MCP server"):

1. **The token**, Bearer or DPoP (the proof checked against the verifier's
   ``public_url``, never ``Host``; a bound token as bearer is refused), for
   this server's canonical URI only; a failure is ``401`` with
   ``WWW-Authenticate: Bearer …, resource_metadata="…"``.
2. **The session**: an ``Mcp-Session-Id`` opened by another holder (or for
   another subject) is ``403``; the SDK's own owner check (``404``) stands
   behind it.
3. **The message** (a POST), read by the guard's strict reader
   (:mod:`mandate_auth.mcp.jsonrpc`): not one unambiguous JSON-RPC message is
   ``400``.
4. **The scope**: a ``tools/call`` without ``tools:<name>`` (or a
   ``resources/read``, ``prompts/get`` without its scope) is ``403
   insufficient_scope`` with ``scope="…"`` in ``WWW-Authenticate``, before
   the MCP server reads anything.
5. **Cedar**, for every method but the handshake, notifications and the
   lists, on the arguments' raw text (:mod:`mandate_auth.mcp.decision`): a
   denial is a JSON-RPC error, code 403, message ``denied: <reason>``,
   ``data: {"policies": […], "reason": …}``, logged with the policy ids and
   the token's ``jti``; the tool never runs.

Inside the MCP server, the guard's server middleware refuses any acting
request the HTTP layer did not decide (the same method, name, URI and id),
and keeps in a ``tools/list`` only the tools the chain's scopes cover.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, Mapping, MutableMapping, Sequence

from ..asgi import CHAIN_KEY, VERIFIER_KEY, ASGIApp, Receive, Scope, Send, _respond, authenticate, rejection
from ..cedar import PolicySet
from ..chain import Chain
from ..errors import InsufficientScopeError, MandateError, excerpt
from ..resource_metadata import ResourceMetadata
from ..scope import covered_by
from ..verifier import Verifier
from . import CODE_DENIED
from .decision import VERDICT_INSUFFICIENT_SCOPE, MCPDecision, MCPPolicy, is_decided
from .jsonrpc import NO_ID, BadMessageError, Message, read_message

__all__ = ["McpGuard", "chain_of", "token_of", "TOKEN_KEY", "DECIDED_KEY", "MAX_MESSAGE"]

TOKEN_KEY = "mandate.token"
"""Where the guard leaves the request's token in the ASGI scope, for a tool
that calls further by the audience exchange (:func:`token_of`)."""
DECIDED_KEY = "mandate.mcp.decided"
"""Where the HTTP layer leaves what it decided: (id, method, name, uri)."""
MAX_MESSAGE = 4 << 20
"""The largest JSON-RPC body the guard reads (the SDK's own default)."""

_ARGUMENT_METHODS = ("tools/call", "prompts/get")
_SESSION_HEADER = b"mcp-session-id"

log = logging.getLogger("mandate_auth.mcp")


def _mcp_error(code: int, message: str, data: Any) -> Exception:
    from mcp.shared.exceptions import MCPError

    return MCPError(code, message, data)


class McpGuard:
    """Guards one MCP server whose canonical URI is ``server``: the
    ``verifier``'s audience must be that URI (a token for another server is
    refused before any MCP request is read). ``policy`` decides every acting
    request (a :class:`~mandate_auth.cedar.PolicySet`, or an
    :class:`~mandate_auth.mcp.MCPPolicy`); ``groups`` names a holder's
    groups. Denials go to ``logger`` (default ``mandate_auth.mcp``)."""

    def __init__(
        self,
        verifier: Verifier,
        *,
        server: str,
        policy: PolicySet | MCPPolicy,
        groups: Callable[[str], Sequence[str]] | None = None,
        logger: logging.Logger | None = None,
        max_message: int = MAX_MESSAGE,
        max_sessions: int = 10_000,
    ) -> None:
        if verifier is None or policy is None:
            raise ValueError("an McpGuard needs a verifier and a policy: a guard that decides nothing must not look like one that does")
        if not server or verifier.audience.rstrip("/") != server.rstrip("/"):
            raise ValueError(f"the verifier's audience {verifier.audience!r} must be the MCP server's canonical URI {server!r}")
        self.verifier = verifier
        self.server = server
        self.policy = policy if isinstance(policy, MCPPolicy) else MCPPolicy(policy, server, groups)
        if groups is not None:
            self.policy.groups = groups
        self.log = logger or log
        self.max_message = max_message
        self._max_sessions = max(1, max_sessions)
        self._sessions: dict[str, tuple[str, str, str]] = {}
        if not verifier.resource_metadata_url:
            verifier.resource_metadata_url = ResourceMetadata(server, [verifier.issuer]).url()

    # -- wiring ------------------------------------------------------------------------

    def metadata(self, scopes_supported: Sequence[str] = ("tools:*",)) -> ResourceMetadata:
        """The server's RFC 9728 document, naming Mandate (the verifier's
        issuer) as its authorization server."""
        return ResourceMetadata(self.server, [self.verifier.issuer], scopes_supported=tuple(scopes_supported))

    def protect(self, server: Any, *, path: str = "/mcp", scopes_supported: Sequence[str] = ("tools:*",), **app_options: Any) -> ASGIApp:
        """Guard ``server`` (an ``MCPServer`` or a low-level ``Server``): add
        the guard's middleware to it and return its streamable HTTP app
        (``streamable_http_app(streamable_http_path=path, **app_options)``)
        behind the guard, with the RFC 9728 document served at its
        well-known path. Run the returned app with its lifespan (uvicorn's
        default), which runs the SDK's session manager."""
        server.middleware.append(self.middleware)
        app = server.streamable_http_app(streamable_http_path=path, **app_options)
        return self.asgi(app, metadata=self.metadata(scopes_supported))

    def asgi(self, app: ASGIApp, *, metadata: ResourceMetadata | None = None) -> ASGIApp:
        """The guard's HTTP layer in front of ``app`` (an MCP SDK's streamable
        HTTP app whose server runs :attr:`middleware`); ``metadata``, when
        given, is served unauthenticated at its well-known path."""
        md_path = metadata.path() if metadata is not None else None
        md_app = metadata.asgi() if metadata is not None else None

        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and md_app is not None and scope.get("path") == md_path:
                await md_app(scope, receive, send)
                return
            await self._http(app, scope, receive, send)

        return guarded

    # -- the HTTP layer ------------------------------------------------------------------

    async def _http(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        v = self.verifier
        try:
            chain = await authenticate(v, scope)
        except MandateError as err:
            await _respond(send, *rejection(v, err))
            return
        owner = (chain.holder, chain.subject_issuer, chain.subject)
        session, token = _session_and_token(scope)
        if session is not None:
            known = self._sessions.get(session)
            if known is not None and known != owner:
                self.log.info("mcp request refused: session %s belongs to another agent (jti=%s holder=%s)",
                              excerpt(session), chain.jti, excerpt(chain.holder))
                await _respond(send, 403, {"error": "forbidden", "error_description": "this MCP session belongs to another agent"}, [])
                return
        if scope.get("method") == "POST":
            body = await _read_body(receive, self.max_message)
            if body is None:
                await _respond(send, 413, _rpc_error(None, -32600, "the JSON-RPC message is too large"), [])
                return
            try:
                msg = read_message(body)
            except BadMessageError as e:
                await _respond(send, 400, _rpc_error(None, -32600, e.error_description), [])
                return
            if msg.method is not None and is_decided(msg.method):
                if not await self._decide(chain, msg, scope, send):
                    return
            receive = _replay(body, receive)
        scope[CHAIN_KEY] = chain
        scope[VERIFIER_KEY] = v
        scope[TOKEN_KEY] = token
        _authenticated_user(scope, chain)
        if session is None:
            send = self._record_session(send, owner)
        elif scope.get("method") == "DELETE":
            send = self._forget_session(send, session)
        await app(scope, receive, send)

    async def _decide(self, chain: Chain, msg: Message, scope: Scope, send: Send) -> bool:
        """Decide an acting request; answer a refusal and return False, or
        leave the decision in the scope and return True."""
        method = msg.method or ""
        if msg.id is NO_ID:
            await _respond(send, 400, _rpc_error(None, -32600, f"{excerpt(method)} is a request: it needs an id"), [])
            return False
        d = self.policy.decide(chain, method, name=msg.name, uri=msg.uri,
                               arguments=msg.arguments if method in _ARGUMENT_METHODS else None)
        if d.verdict == VERDICT_INSUFFICIENT_SCOPE:
            self.log.info("mcp request refused: insufficient_scope scope=%s jti=%s holder=%s", excerpt(d.scope), chain.jti, excerpt(chain.holder))
            await _respond(send, *rejection(self.verifier, InsufficientScopeError("the token does not grant " + d.scope, scope=d.scope)))
            return False
        if not d.allow:
            self._log_denial(chain, method, msg.name or msg.uri, d)
            await _respond(send, 200, {"jsonrpc": "2.0", "id": msg.id, "error": _denial(d)}, [])
            return False
        scope[DECIDED_KEY] = (msg.id, method, msg.name, msg.uri)
        return True

    def _log_denial(self, chain: Chain | None, method: str, name: str, d: MCPDecision) -> None:
        if chain is None:
            self.log.info("mcp request denied method=%s name=%s policies=%s reason=%s", excerpt(method), excerpt(name), d.policies, d.reason)
            return
        self.log.info("mcp request denied method=%s name=%s policies=%s reason=%s jti=%s holder=%s root=%s", excerpt(method),
                      excerpt(name), d.policies, d.reason, chain.jti, excerpt(chain.holder), chain.root)

    def _record_session(self, send: Send, owner: tuple[str, str, str]) -> Send:
        """Remember who opened a session: the answer that hands out its id."""

        async def recording(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start" and message.get("status", 500) < 400:
                for k, val in message.get("headers") or ():
                    if k.lower() == _SESSION_HEADER:
                        sid = val.decode("latin-1")
                        if sid not in self._sessions and len(self._sessions) >= self._max_sessions:
                            self._sessions.pop(next(iter(self._sessions)))  # the oldest; the SDK's own check still holds it
                        self._sessions[sid] = owner
            await send(message)

        return recording

    def _forget_session(self, send: Send, session: str) -> Send:
        async def forgetting(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start" and message.get("status", 500) < 300:
                self._sessions.pop(session, None)
            await send(message)

        return forgetting

    # -- inside the MCP server -------------------------------------------------------

    async def middleware(self, ctx: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        """The MCP SDK's server middleware (``Server.middleware``): refuses an
        acting request that did not come through the guard's HTTP layer
        decided as the SDK read it, and filters ``tools/list`` by scope."""
        if getattr(ctx, "request_id", None) is None:  # a notification
            return await call_next(ctx)
        scope = _scope_of(getattr(ctx, "request", None))
        chain = scope.get(CHAIN_KEY) if scope is not None else None
        method = ctx.method
        if not isinstance(chain, Chain):
            d = MCPDecision("deny", [], "no verified Mandate chain reached the MCP server (serve it behind McpGuard)")
            self._log_denial(None, method, "", d)
            raise _denial_error(d)
        if not is_decided(method):
            result = await call_next(ctx)
            if method == "tools/list":
                result = _visible(chain, result)
            return result
        params = ctx.params if type(ctx.params) is dict or isinstance(ctx.params, Mapping) else {}
        seen = (ctx.request_id, method, params.get("name") or "", params.get("uri") or "")
        if scope.get(DECIDED_KEY) != seen:
            d = MCPDecision("deny", [], "the MCP server read a request the guard did not decide")
            self._log_denial(chain, method, str(seen[2] or seen[3]), d)
            raise _denial_error(d)
        return await call_next(ctx)


# -- helpers -----------------------------------------------------------------------------


def _denial(d: MCPDecision) -> dict[str, Any]:
    return {"code": CODE_DENIED, "message": "denied: " + d.reason, "data": {"policies": list(d.policies), "reason": d.reason}}


def _denial_error(d: MCPDecision) -> Exception:
    e = _denial(d)
    return _mcp_error(e["code"], e["message"], e["data"])


def _rpc_error(id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}


def _session_and_token(scope: Scope) -> tuple[str | None, str]:
    """The Mcp-Session-Id header, and the token of the (one, verified)
    Authorization header."""
    session = None
    token = ""
    for k, val in scope.get("headers") or ():
        name = k.lower()
        if name == _SESSION_HEADER:
            session = val.decode("latin-1")
        elif name == b"authorization":
            token = val.decode("latin-1").partition(" ")[2].strip(" \t")
    return session, token


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the app behind: the body read once, then the client's
    own messages (a disconnect)."""
    sent = False

    async def replay() -> MutableMapping[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


_USERS: dict[str, tuple[Chain, str, Any, Any]] = {}


def _authenticated_user(scope: Scope, chain: Chain) -> None:
    """The SDK's view of who is calling: its session manager binds a session
    to (client_id, issuer, subject) = (holder, sub_iss, sub). Made once per
    verified chain (the verifier's cache hands out the same one)."""
    token = scope.get(TOKEN_KEY) or ""
    hit = _USERS.get(chain.jti)
    if hit is None or hit[0] is not chain or hit[1] != token:
        from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
        from mcp.server.auth.provider import AccessToken
        from starlette.authentication import AuthCredentials

        at = AccessToken(token=token, client_id=chain.holder, scopes=list(chain.scopes), expires_at=chain.expires_at,
                         subject=chain.subject, claims={"iss": chain.subject_issuer, "jti": chain.jti})
        hit = (chain, token, AuthenticatedUser(at), AuthCredentials(list(chain.scopes)))
        if len(_USERS) >= 4096:
            _USERS.clear()
        _USERS[chain.jti] = hit
    scope["user"] = hit[2]
    scope["auth"] = hit[3]


def _scope_of(request: Any) -> MutableMapping[str, Any] | None:
    s = getattr(request, "scope", request)
    return s if type(s) is dict or isinstance(s, MutableMapping) else None


def _visible(chain: Chain, result: Any) -> Any:
    """A tools/list result with only the tools the chain's scopes cover."""
    if isinstance(result, dict) and isinstance(result.get("tools"), list):
        result = dict(result)
        result["tools"] = [t for t in result["tools"] if isinstance(t, Mapping) and covered_by(chain.scopes, "tools:" + str(t.get("name")))]
        return result
    tools = getattr(result, "tools", None)
    if isinstance(tools, list):
        return result.model_copy(update={"tools": [t for t in tools if covered_by(chain.scopes, "tools:" + str(getattr(t, "name", "")))]})
    return result


def _request_scope(ctx: Any) -> MutableMapping[str, Any] | None:
    """The ASGI scope of the HTTP request that carried an MCP request, from
    an ``MCPServer`` tool's ``Context``, a ``ServerRequestContext``, a
    Starlette ``Request`` or a scope."""
    rc = getattr(ctx, "request_context", None)
    if rc is not None:
        ctx = rc
    req = getattr(ctx, "request", ctx)
    return _scope_of(req)


def chain_of(ctx: Any) -> Chain | None:
    """The chain the guard verified for the request a tool is serving (pass
    the tool's ``Context``), or None."""
    s = _request_scope(ctx)
    c = s.get(CHAIN_KEY) if s is not None else None
    return c if isinstance(c, Chain) else None


def token_of(ctx: Any) -> str | None:
    """The token the request a tool is serving came with — to exchange it
    for the server's own token downstream
    (:meth:`~mandate_auth.Client.exchange_for_downstream`), never to forward it."""
    s = _request_scope(ctx)
    t = s.get(TOKEN_KEY) if s is not None else None
    return t if isinstance(t, str) and t else None
