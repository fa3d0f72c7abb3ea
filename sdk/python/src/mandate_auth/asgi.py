"""ASGI middleware: verify the token of every request locally and put the
:class:`~mandate_auth.chain.Chain` in the request scope, so Starlette,
FastAPI and any other ASGI framework can use it.

- ``Authorization: Bearer <token>``: verified as a bearer token (a bound token
  is refused: it needs its proof).
- ``Authorization: DPoP <token>`` with exactly one ``DPoP`` header: the token,
  then the proof against the configured public URL and the path as the client
  sent it (``raw_path``) — never the ``Host`` header, which the sender
  chooses.

Refusals are answered as Go's verifier answers them (RFC 6750 / RFC 9449):
401 ``invalid_token`` with ``Bearer`` and ``DPoP`` challenges, 401
``invalid_dpop_proof``, 401 ``use_dpop_nonce`` with a ``DPoP-Nonce``, 400
``invalid_request`` for a malformed ``Authorization``, 503 with
``Retry-After`` when the revocation data is stale (fail closed), and 403
``insufficient_scope`` from :func:`require_scope` and :func:`require_policy`.

::

    app = Starlette(routes=[...])
    app.add_middleware(MandateMiddleware, verifier=v)
    # a route guarded by scope:     Route("/orders", require_scope("db:read:orders")(orders))
    # in a handler:                 chain = get_chain(request)
    # FastAPI:                      chain: Chain = Depends(scopes_dependency("db:read:orders"))
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable, MutableMapping
from urllib.parse import quote

from .chain import Chain
from .errors import (
    InsufficientScopeError,
    InvalidDPoPProofError,
    MandateError,
    PolicyDeniedError,
    StaleRevocationsError,
    UseDPoPNonceError,
)
from .scope import uncovered
from .verifier import Verifier

__all__ = ["MandateMiddleware", "require_scope", "require_policy", "get_chain", "scopes_dependency", "CHAIN_KEY"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CHAIN_KEY = "mandate.chain"
VERIFIER_KEY = "mandate.verifier"
DPOP_ALGS = "EdDSA ES256 ES384 ES512 PS256 PS384 PS512 RS256 RS384 RS512"


class _NoToken(MandateError):
    error = "unauthorized"


class _BadAuthorization(MandateError):
    error = "invalid_request"


def get_chain(request_or_scope: Any) -> Chain | None:
    """The chain the middleware verified for this request (a Starlette or
    FastAPI ``Request``, or an ASGI scope), or None."""
    scope = getattr(request_or_scope, "scope", request_or_scope)
    return scope.get(CHAIN_KEY) if isinstance(scope, MutableMapping) else None


def _param(name: str, value: str) -> str:
    return name + '="' + "".join(c for c in value if " " <= c <= "~" and c not in '"\\') + '"'


def _challenge(v: Verifier | None, scheme: str, code: str, description: str, *extra: str) -> str:
    parts = []
    if v is not None and v.realm:
        parts.append(_param("realm", v.realm))
    if code:
        parts.append(_param("error", code))
        if description:
            parts.append(_param("error_description", description))
    for i in range(0, len(extra) - 1, 2):
        if extra[i + 1]:
            parts.append(_param(extra[i], extra[i + 1]))
    return scheme + (" " + ", ".join(parts) if parts else "")


def _bearer(v: Verifier | None, code: str, description: str, scope: str = "") -> str:
    return _challenge(v, "Bearer", code, description, "scope", scope, "resource_metadata", v.resource_metadata_url if v else "")


def _dpop(v: Verifier | None, code: str, description: str) -> str:
    return _challenge(v, "DPoP", code, description, "algs", DPOP_ALGS)


async def _respond(send: Send, status: int, body: Any, headers: list[tuple[str, str]]) -> None:
    raw = json.dumps(body).encode() + b"\n"
    hs = [(b"content-type", b"application/json"), (b"cache-control", b"no-store"), (b"content-length", str(len(raw)).encode())]
    hs += [(k.lower().encode("latin-1"), v.encode("latin-1", "replace")) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": hs})
    await send({"type": "http.response.body", "body": raw})


def rejection(v: Verifier | None, err: BaseException) -> tuple[int, Any, list[tuple[str, str]]]:
    """The status, JSON body and headers answering a refused request."""
    desc = str(getattr(err, "error_description", "") or err)
    if isinstance(err, _NoToken):
        return 401, {"error": "unauthorized", "error_description": "a bearer token is required"}, [
            ("WWW-Authenticate", _bearer(v, "", "")), ("WWW-Authenticate", _dpop(v, "", ""))]
    if isinstance(err, _BadAuthorization):
        return 400, {"error": "invalid_request", "error_description": desc}, [("WWW-Authenticate", _bearer(v, "invalid_request", desc))]
    if isinstance(err, StaleRevocationsError):
        return 503, {"error": "temporarily_unavailable", "error_description": desc}, [("Retry-After", "1")]
    if isinstance(err, UseDPoPNonceError):
        nonce = v.dpop_nonce() if v is not None else err.nonce
        return 401, {"error": "use_dpop_nonce", "error_description": desc}, [
            ("DPoP-Nonce", nonce), ("WWW-Authenticate", _dpop(v, "use_dpop_nonce", desc))]
    if isinstance(err, InvalidDPoPProofError):
        return 401, {"error": "invalid_dpop_proof", "error_description": desc}, [("WWW-Authenticate", _dpop(v, "invalid_dpop_proof", desc))]
    if isinstance(err, PolicyDeniedError):
        return 403, {"error": "insufficient_scope", "error_description": desc, "policies": err.policies}, [
            ("WWW-Authenticate", _bearer(v, "insufficient_scope", desc))]
    if isinstance(err, InsufficientScopeError):
        return 403, {"error": "insufficient_scope", "scope": err.scope}, [("WWW-Authenticate", _bearer(v, "insufficient_scope", desc, err.scope))]
    return 401, {"error": "invalid_token", "error_description": desc}, [
        ("WWW-Authenticate", _bearer(v, "invalid_token", desc)), ("WWW-Authenticate", _dpop(v, "invalid_token", desc))]


def _authorization(scope: Scope) -> tuple[str, str, list[str]]:
    auth: list[str] = []
    proofs: list[str] = []
    for k, val in scope.get("headers") or ():
        name = k.lower()
        if name == b"authorization":
            auth.append(val.decode("latin-1"))
        elif name == b"dpop":
            proofs.append(val.decode("latin-1"))
    if len(auth) > 1:
        raise _BadAuthorization("malformed Authorization header: use 'Bearer <token>': more than one Authorization header")
    if not auth or auth[0] == "":
        raise _NoToken("no bearer token")
    scheme, sep, tok = auth[0].partition(" ")
    if scheme.lower() == "bearer":
        scheme = "Bearer"
    elif scheme.lower() == "dpop":
        scheme = "DPoP"
    else:
        raise _NoToken("no bearer token")
    tok = tok.strip(" \t")
    if not sep or tok == "" or " " in tok or "\t" in tok:
        raise _BadAuthorization("malformed Authorization header: use 'Bearer <token>'")
    return scheme, tok, proofs


def _request_path(scope: Scope) -> str:
    raw = scope.get("raw_path")
    if isinstance(raw, (bytes, bytearray)) and raw:
        return raw.decode("latin-1").partition("?")[0]
    return quote(scope.get("root_path", "") + scope.get("path", "/"), safe="/:@!$&'()*+,;=-._~%")


async def authenticate(v: Verifier, scope: Scope) -> Chain:
    """Extract and verify the request's token (Bearer, or DPoP with exactly
    one proof); raises a :class:`~mandate_auth.errors.MandateError`."""
    scheme, tok, proofs = _authorization(scope)
    if scheme == "Bearer":
        return await v.averify(tok)
    if len(proofs) != 1:
        raise InvalidDPoPProofError(f"invalid DPoP proof: exactly one DPoP header is required (got {len(proofs)})")
    url = v.request_url(_request_path(scope))
    return await v.averify_dpop(tok, proofs[0], scope.get("method", "GET"), url)


class MandateMiddleware:
    """Verifies every HTTP request's token with ``verifier``; a request
    without a valid token is answered and never reaches ``app``. Websocket
    connections are verified too (a refusal closes them with 1008); other
    scopes (lifespan) pass through."""

    def __init__(self, app: ASGIApp, verifier: Verifier) -> None:
        self.app = app
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        try:
            chain = await authenticate(self.verifier, scope)
        except MandateError as err:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await _respond(send, *rejection(self.verifier, err))
            return
        scope[CHAIN_KEY] = chain
        scope[VERIFIER_KEY] = self.verifier
        state = scope.setdefault("state", {})
        if isinstance(state, MutableMapping):
            state["mandate_chain"] = chain
        started = False

        async def tracking_send(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except InsufficientScopeError as err:  # from scopes_dependency or Authorizer.check in a handler
            if started or scope["type"] != "http":
                raise
            await _respond(send, *rejection(self.verifier, err))


def require_scope(*scopes: str) -> Callable[[Any], ASGIApp]:
    """Wrap an ASGI app, or a Starlette-style endpoint ``(request) -> response``, so a
    request passes only when the chain the middleware verified grants every
    one of ``scopes``; otherwise 403 ``insufficient_scope`` naming the
    missing scope. Must run inside :class:`MandateMiddleware`."""

    def check(chain: Chain) -> None:
        missing = uncovered(chain.scopes, scopes)
        if missing is not None:
            raise InsufficientScopeError("the token does not grant " + missing, scope=missing)

    return _guard(check)


def require_policy(authorizer: Any, action: str = "call", resource: Any = None) -> Callable[[Any], ASGIApp]:
    """Wrap an ASGI app so a request passes only when the per-call Cedar
    policy permits its chain to perform ``action`` on ``resource``
    (:class:`mandate_auth.cedar.Authorizer`); otherwise 403 naming the policy."""

    def check(chain: Chain) -> None:
        authorizer.check(chain, action, resource)

    return _guard(check)


class _Guarded:
    """An ASGI app (an object, not a function, so Starlette's ``Route`` mounts
    it as an app) that runs a check on the verified chain first."""

    def __init__(self, app: ASGIApp, check: Callable[[Chain], None]) -> None:
        self.app, self.check = app, check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chain = scope.get(CHAIN_KEY)
        try:
            if chain is None:
                raise _NoToken("no bearer token")
            self.check(chain)
        except MandateError as err:
            await _respond(send, *rejection(scope.get(VERIFIER_KEY), err))
            return
        await self.app(scope, receive, send)


def _guard(check: Callable[[Chain], None]) -> Callable[[Any], ASGIApp]:
    def wrap(app: Any) -> ASGIApp:
        return _Guarded(_as_asgi(app) if _is_request_handler(app) else app, check)

    return wrap


def _is_request_handler(app: Any) -> bool:
    """A Starlette-style endpoint ``(request) -> response`` rather than an ASGI app."""
    import inspect

    try:
        params = [p for p in inspect.signature(app).parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return False
    return len(params) == 1


def _as_asgi(endpoint: Any) -> ASGIApp:
    from starlette.routing import request_response  # only for Starlette-style endpoints

    return request_response(endpoint)


def scopes_dependency(*scopes: str) -> Callable[..., Chain]:
    """A FastAPI dependency returning the verified chain when it grants every
    one of ``scopes`` (403 ``insufficient_scope`` otherwise, answered by
    :class:`MandateMiddleware`)."""
    from starlette.requests import Request

    def dependency(request: Request) -> Chain:
        chain = get_chain(request)
        if chain is None:
            raise InsufficientScopeError("no verified token: is MandateMiddleware installed?")
        missing = uncovered(chain.scopes, scopes)
        if missing is not None:
            raise InsufficientScopeError("the token does not grant " + missing, scope=missing)
        return chain

    # Real objects, not the strings this module's annotations are: FastAPI
    # reads them to inject the request.
    dependency.__annotations__ = {"request": Request, "return": Chain}
    return dependency


