"""The ASGI middleware with Starlette and FastAPI, in process (the real-HTTP
run is in test_integration.py)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mandate_auth import (
    Chain,
    DPoPAuth,
    Key,
    MandateMiddleware,
    RevocationSet,
    StaleRevocationsError,
    Token,
    Verifier,
    get_chain,
    require_policy,
    require_scope,
    scopes_dependency,
)
from mandate_auth.cedar import Authorizer, Entity, PolicySet

from .conftest import AUDIENCE, ISSUER, NOW, POLICIES, token

PUBLIC = "https://orders.example"

pytestmark = pytest.mark.anyio


class Clock:
    t = float(NOW)

    def __call__(self) -> float:
        return self.t


async def whoami(request: Request) -> JSONResponse:
    c = get_chain(request)
    assert c is not None
    return JSONResponse({"holder": c.holder, "subject": c.subject, "scopes": list(c.scopes)})


def app_for(v: Verifier) -> Starlette:
    az = Authorizer(PolicySet.load_dir(POLICIES / "api"))
    routes = [
        Route("/whoami", whoami),
        Route("/orders", require_scope("db:read:orders")(whoami)),
        Route("/writes", require_scope("db:write:orders")(whoami)),
        Route("/table", require_policy(az, "call", Entity("Table", "orders"))(whoami)),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(MandateMiddleware, verifier=v)
    return app


@pytest.fixture
def key() -> Key:
    return Key.generate()


def make(key: Key, revs: Any = None, **kw: Any) -> Verifier:
    return Verifier(issuer=ISSUER, audience=AUDIENCE, keys=key.public_jwks(), revocations=revs or RevocationSet(), now=Clock(),
                    public_url=PUBLIC, realm="orders", **kw)


def client(app: Any, t: Token | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://internal.example:8080",
                             auth=DPoPAuth(t) if t else None)


async def test_bearer(key: Key) -> None:
    app = app_for(make(key))
    t = Token(token(key), now=Clock())
    async with client(app, t) as c:
        r = await c.get("/whoami")
        assert r.status_code == 200 and r.json()["holder"] == "researcher"
        assert (await c.get("/orders")).status_code == 200
        r = await c.get("/writes")
        assert r.status_code == 403 and r.json() == {"error": "insufficient_scope", "scope": "db:write:orders"}
        assert 'error="insufficient_scope"' in r.headers["www-authenticate"] and 'scope="db:write:orders"' in r.headers["www-authenticate"]
        assert (await c.get("/table")).status_code == 200


async def test_refusals_are_rfc6750_answers(key: Key) -> None:
    app = app_for(make(key))
    async with client(app) as c:
        r = await c.get("/whoami")
        assert r.status_code == 401 and r.headers.get_list("www-authenticate") == ['Bearer realm="orders"', 'DPoP realm="orders", algs="EdDSA ES256 ES384 ES512 PS256 PS384 PS512 RS256 RS384 RS512"']
        assert r.headers["cache-control"] == "no-store"
        r = await c.get("/whoami", headers={"Authorization": "Bearer"})
        assert r.status_code == 400 and r.json()["error"] == "invalid_request"
        r = await c.get("/whoami", headers=[("Authorization", "Bearer a"), ("Authorization", "Bearer b")])
        assert r.status_code == 400
        r = await c.get("/whoami", headers={"Authorization": "Basic eDp5"})
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
        r = await c.get("/whoami", headers={"Authorization": "Bearer " + token(key, iss="https://evil.example")})
        assert r.status_code == 401 and r.json()["error"] == "invalid_token"
        assert "another issuer" in r.json()["error_description"]
        assert 'Bearer realm="orders", error="invalid_token"' in r.headers["www-authenticate"]


async def test_dpop_bound_tokens(key: Key) -> None:
    v = make(key)
    app = app_for(v)
    holder = Key.generate("ES256")
    value = token(key, cnf={"jkt": holder.jkt})
    async with client(app) as c:
        r = await c.get("/whoami", headers={"Authorization": "Bearer " + value})
        assert r.status_code == 401 and "sender-constrained" in r.json()["error_description"]
    # The proof names the public URL; the request reached http://internal.example:8080 (a proxy's Host).
    t = Token(value, "DPoP", key=holder, now=Clock())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://internal.example:8080") as c:
        proof = holder.proof("GET", PUBLIC + "/whoami", access_token=value, now=NOW)
        r = await c.get("/whoami?x=1", headers={"Authorization": "DPoP " + value, "DPoP": proof})
        assert r.status_code == 200, r.text
        r = await c.get("/whoami", headers={"Authorization": "DPoP " + value, "DPoP": proof})
        assert r.status_code == 401 and r.json()["error"] == "invalid_dpop_proof"  # replayed
        p2 = holder.proof("GET", "http://internal.example:8080/whoami", access_token=value, now=NOW)
        r = await c.get("/whoami", headers={"Authorization": "DPoP " + value, "DPoP": p2})
        assert r.status_code == 401  # a proof for the Host the request came with is not one for this server
        p3 = holder.proof("GET", PUBLIC + "/whoami", access_token=value, now=NOW)
        r = await c.get("/whoami", headers=[("Authorization", "DPoP " + value), ("DPoP", p3), ("DPoP", p3)])
        assert r.status_code == 401 and "exactly one DPoP header" in r.json()["error_description"]
        assert r.headers["www-authenticate"].startswith('DPoP realm="orders", error="invalid_dpop_proof"')
    del t


async def test_dpop_auth_answers_a_nonce_challenge_once(key: Key) -> None:
    v = make(key, dpop_nonce=True)
    app = app_for(v)
    holder = Key.generate()
    seen: list[int] = []

    async def hook(resp: httpx.Response) -> None:
        seen.append(resp.status_code)

    t = Token(token(key, cnf={"jkt": holder.jkt}), "DPoP", key=holder, now=Clock())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC, auth=DPoPAuth(t),
                                 event_hooks={"response": [hook]}) as c:
        r = await c.get("/orders")
        assert r.status_code == 200 and seen == [401, 200]


async def test_stale_revocation_data_is_503(key: Key) -> None:
    class Stale(RevocationSet):
        def check_current(self, now: float) -> None:
            raise StaleRevocationsError("revocation data is stale: never synced")

    app = app_for(make(key, Stale()))
    async with client(app, Token(token(key))) as c:
        r = await c.get("/whoami")
        assert r.status_code == 503 and r.headers["retry-after"] == "1" and r.json()["error"] == "temporarily_unavailable"


async def test_policy_denial_names_the_policy(key: Key) -> None:
    app = app_for(make(key))
    deep = token(key, lineage=["a", "b", "c", "d"], act={"sub": "researcher"})
    async with client(app, Token(deep)) as c:
        r = await c.get("/table")
        assert r.status_code == 403
        assert r.json()["policies"] == ["orders-depth-limit"] and "orders-depth-limit" in r.json()["error_description"]


async def test_fastapi(key: Key) -> None:
    api = FastAPI()

    @api.get("/orders")
    def orders(chain: Chain = Depends(scopes_dependency("db:read:orders"))) -> dict[str, str]:
        return {"holder": chain.holder}

    @api.get("/writes")
    def writes(chain: Chain = Depends(scopes_dependency("db:write:orders"))) -> dict[str, str]:
        return {"holder": chain.holder}

    api.add_middleware(MandateMiddleware, verifier=make(key))
    async with client(api, Token(token(key))) as c:
        r = await c.get("/orders")
        assert r.status_code == 200 and r.json() == {"holder": "researcher"}
        r = await c.get("/writes")
        assert r.status_code == 403 and r.json()["scope"] == "db:write:orders"
    async with client(api) as c:
        assert (await c.get("/orders")).status_code == 401


async def test_lifespan_passes_through(key: Key) -> None:
    events: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        events.append(scope["type"])

    mw = MandateMiddleware(inner, make(key))
    await mw({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert events == ["lifespan"]


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_websockets_are_verified_too(key: Key) -> None:
    from starlette.routing import WebSocketRoute
    from starlette.testclient import TestClient
    from starlette.websockets import WebSocket, WebSocketDisconnect

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        c = get_chain(websocket)
        await websocket.send_text(c.holder if c else "?")
        await websocket.close()

    app = Starlette(routes=[WebSocketRoute("/ws", ws)])
    app.add_middleware(MandateMiddleware, verifier=make(key))
    with TestClient(app) as tc:
        with tc.websocket_connect("/ws", headers={"Authorization": "Bearer " + token(key)}) as s:
            assert s.receive_text() == "researcher"
        with pytest.raises(WebSocketDisconnect) as e:
            with tc.websocket_connect("/ws") as s:
                s.receive_text()
        assert e.value.code == 1008


def test_agent_names_follow_the_rules() -> None:
    from mandate_auth import Client

    c = Client("https://mandate.example", "orchestrator", "s")
    assert c.spawn_agent("summarizer-7f3a").name == "orchestrator/summarizer-7f3a"
    for bad in ("", ".hidden", "-flag", "a/b", "x" * 65, "dot.", "~", "é"):
        with pytest.raises(ValueError):
            c.spawn_agent(bad)
    c.close()
