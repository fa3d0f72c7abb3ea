"""Against the real `mandate serve`: the demo's story in Python — mint,
delegate twice with narrowing, an ephemeral agent, protected calls verified
locally by the Verifier and the ASGI middleware over real HTTP, a leaked
bound token refused, and revoking the root refusing the protected calls
within a second — and what a client and a verifier meet on the way."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Route

from mandate_auth import (
    AsyncClient,
    Client,
    DiscoveryError,
    DPoPAuth,
    DPoPProofRejectedError,
    FeedCredentialsError,
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
    Key,
    MandateError,
    OAuthError,
    StaleRevocationsError,
    Token,
    Verifier,
    WrongAudienceError,
    api_client,
    async_api_client,
)

from .conftest import API, AUDIENCE, ODD_ID, ODD_SECRET, Served, Server, mandate_binary, start_server

pytestmark = pytest.mark.integration


def client(server: Server, cid: str, **kw: Any) -> Client:
    return Client(server.issuer, cid, server.secrets[cid], **kw)


def test_the_demo_story(server: Server, api: API) -> None:
    orch = client(server, "orchestrator", dpop_key=Key.generate())
    res = client(server, "researcher", dpop_key=Key.generate())
    db = client(server, "db-agent", dpop_key=Key.generate("ES256"))

    # Mint: a root for the task, bound to the orchestrator's key.
    root = orch.mint(audience=AUDIENCE)
    assert root.bound and root.key is orch.dpop_key
    assert root.info.depth == 0 and set(root.scopes) == {"db:read:*", "tools:*"} and root.info.subject_issuer == server.issuer

    # Delegate twice, narrowing: orchestrator → researcher (db:read:*) → db-agent (db:read:orders).
    child = orch.delegate(root, res.identity(), scope="db:read:*")
    assert child.key is None  # bound to the researcher's key, which only the researcher has
    mine = res.adopt(child.value)
    assert mine.key is res.dpop_key and mine.info.holder == "researcher"
    with pytest.raises(InvalidScopeError) as e:
        res.exchange(mine, scope="db:write:orders")
    assert e.value.error == "invalid_scope" and e.value.error_description
    grandchild = db.adopt(res.delegate(mine, db.identity(), scope="db:read:orders").value)
    info = grandchild.info
    assert (info.subject, info.holder, info.actors) == ("orchestrator", "db-agent", ("db-agent", "researcher"))
    assert info.lineage == (root.info.jti, child.info.jti) and info.scopes == ("db:read:orders",) and info.bound

    # An ephemeral agent: a fresh key is its whole identity.
    agent = orch.spawn_agent("summarizer-7f3a")
    et = orch.delegate_to_agent(root, agent, scope="db:read:orders", audience=AUDIENCE)
    assert et.key is agent.key and et.info.holder == "orchestrator/summarizer-7f3a" and et.info.jkt == agent.key.jkt
    theirs = agent.adopt(et.value)

    # Protected calls, verified locally by the API's Verifier behind the ASGI middleware.
    with api_client(grandchild) as http:
        r = http.get(api.url + "/orders")
        assert r.status_code == 200, r.text
        assert r.json() == {"holder": "db-agent", "subject": "orchestrator", "actors": ["db-agent", "researcher"], "depth": 2}
    with api_client(theirs) as http:
        r = http.get(api.url + "/orders?page=1")
        assert r.status_code == 200 and r.json()["holder"] == "orchestrator/summarizer-7f3a"

    # A leaked bound token is refused: as a bearer token, with another key's proof, and at the token endpoint.
    leaked = grandchild.value
    r = httpx.get(api.url + "/orders", headers={"Authorization": "Bearer " + leaked})
    assert r.status_code == 401 and r.json()["error"] == "invalid_token" and "sender-constrained" in r.json()["error_description"]
    with api_client(Token(leaked, "DPoP", key=Key.generate())) as http:
        r = http.get(api.url + "/orders")
        assert r.status_code == 401 and r.json()["error"] == "invalid_dpop_proof"
    with pytest.raises(DPoPProofRejectedError):
        client(server, "db-agent").exchange(leaked)  # its holder's secret alone is not enough
    with pytest.raises(OAuthError):
        orch.exchange(Token(leaked, "DPoP", key=Key.generate()))  # nor is another client with another key

    # Revoke the root: every protected call below it is refused within a second.
    orch.revoke(root)
    started = time.monotonic()
    refused: dict[str, float] = {}
    with api_client(grandchild) as g, api_client(theirs) as a:
        while len(refused) < 2 and time.monotonic() - started < 1.0:
            for name, http in (("grandchild", g), ("agent", a)):
                if name not in refused:
                    r = http.get(api.url + "/orders")
                    if r.status_code == 401:
                        assert "revoked" in r.json()["error_description"]
                        refused[name] = time.monotonic() - started
    assert set(refused) == {"grandchild", "agent"}, f"still accepted a second after the revocation: {refused}"
    with pytest.raises(InvalidRequestError):
        res.exchange(mine, scope="db:read:orders")  # Mandate refuses it too


def test_client_errors_are_typed(server: Server) -> None:
    with pytest.raises(InvalidClientError) as e:
        Client(server.issuer, "orchestrator", "wrong").mint()
    assert e.value.status == 401 and e.value.error == "invalid_client"
    orch = client(server, "orchestrator")
    with pytest.raises(InvalidScopeError):
        orch.mint(scope="db:write:orders")
    with pytest.raises(InvalidTargetError):
        orch.mint(audience="https://elsewhere.example")
    with pytest.raises(OAuthError) as e2:
        client(server, "orders-api").mint()
    assert e2.value.error in ("unauthorized_client", "invalid_request", "invalid_scope")
    assert "orch-secret" not in repr(e.value) + str(e.value)


def test_discovery_checks_the_issuer(server: Server) -> None:
    with pytest.raises(DiscoveryError):
        Client(server.issuer + "/", "orchestrator", "x").discover()
    with pytest.raises(DiscoveryError):
        Client("http://127.0.0.1:9", "orchestrator", "x").discover()
    md = client(server, "orchestrator").discover()
    assert md.issuer == server.issuer and md.token_endpoint.startswith(server.issuer)


def test_secret_is_form_urlencoded_before_basic(server: Server) -> None:
    t = Client(server.issuer, ODD_ID, ODD_SECRET).mint()
    assert t.info.holder == ODD_ID and t.scopes == ["tools:search"] and not t.bound


def test_private_key_jwt(server: Server) -> None:
    k = server.keys["keyed"]
    c = Client(server.issuer, "keyed", client_key=k, dpop_key=Key.generate())
    t = c.mint(scope="tools:search")
    assert t.bound and t.info.holder == "keyed"
    down = c.downscope(t, scope="tools:search")
    assert down.info.lineage == (t.info.jti,)
    c.revoke(t)
    with pytest.raises(InvalidClientError):
        Client(server.issuer, "keyed", client_key=Key.generate("ES256", )).mint()
    with pytest.raises(ValueError):
        Client(server.issuer, "keyed", "secret", client_key=k)


def test_identity_tokens_grant_nothing_at_a_resource_server(server: Server, api: API) -> None:
    ident = client(server, "researcher").identity()
    assert ident.info.audiences == (server.issuer,) and ident.scopes == []
    with pytest.raises(WrongAudienceError):
        api.verifier.verify(ident.value)


def test_bearer_chain_and_revoking_a_middle_link(server: Server, api: API) -> None:
    orch, res = client(server, "orchestrator"), client(server, "researcher")
    root = orch.mint(scope="db:read:*", audience=AUDIENCE)
    child = res.adopt(orch.delegate(root, res.identity(), scope="db:read:orders").value)
    assert not child.bound
    c = api.verifier.verify(child.value)
    assert c.holder == "researcher" and c.lineage == (root.info.jti,)
    with api_client(child) as http:
        assert http.get(api.url + "/orders").status_code == 200
    res.revoke(child)
    deadline = time.monotonic() + 1.0
    with api_client(child) as http:
        while http.get(api.url + "/orders").status_code == 200:
            assert time.monotonic() < deadline, "a revoked token was still accepted after a second"
    assert api.verifier.verify(root.value).jti == root.info.jti  # the parent lives on


@pytest.mark.anyio
async def test_async_client(server: Server, api: API) -> None:
    async with AsyncClient(server.issuer, "orchestrator", server.secrets["orchestrator"], dpop_key=Key.generate()) as orch:
        root = await orch.mint(audience=AUDIENCE)
        agent = orch.spawn_agent("async-1")
        t = await orch.delegate_to_agent(root, agent, scope="db:read:orders", audience=AUDIENCE)
        async with async_api_client(agent.adopt(t.value)) as http:
            r = await http.get(api.url + "/orders")
            assert r.status_code == 200 and r.json()["holder"] == "orchestrator/async-1"
        c = await api.verifier.averify_dpop(t.value, agent.key.proof("GET", api.url + "/x", access_token=t.value), "GET", api.url + "/x")
        assert c.jkt == agent.key.jkt
        await orch.revoke(root)
        with pytest.raises(InvalidRequestError):
            await orch.delegate_to_agent(root, agent, scope="db:read:orders")


def test_redirects_never_carry_credentials(server: Server) -> None:
    seen: list[str | None] = []

    async def redirect(request: Request) -> RedirectResponse:
        return RedirectResponse("/target", status_code=302)

    async def target(request: Request) -> JSONResponse:
        seen.append(request.headers.get("authorization"))
        return JSONResponse({})

    s = Served(Starlette(routes=[Route("/r", redirect), Route("/target", target)])).serve()
    try:
        t = client(server, "orchestrator").mint()
        with api_client(t, follow_redirects=True) as http:
            r = http.get(s.url + "/r")
            assert r.status_code == 302
        assert seen == []  # api_client returned the redirect; the target never saw the token
        # A client of the caller's that follows redirects: httpx keeps Authorization on a same-origin
        # redirect, so DPoPAuth cannot stop it, but it makes the mistake loud.
        with httpx.Client(auth=DPoPAuth(t), follow_redirects=True) as http:
            with pytest.raises(MandateError) as e:
                http.get(s.url + "/r")
            assert e.value.error == "redirect_followed"
    finally:
        s.stop()


def test_the_feed_refuses_wrong_credentials(server: Server) -> None:
    with pytest.raises(FeedCredentialsError):
        Verifier.discover(server.issuer, audience=AUDIENCE, client_id="orders-api", client_secret="nope")
    with pytest.raises(DiscoveryError):
        Verifier.discover(server.issuer + "/", audience=AUDIENCE, client_id="orders-api", client_secret="x")
    with pytest.raises(ValueError):
        Verifier.discover(server.issuer, audience=server.issuer, client_id="orders-api", client_secret="x")


@pytest.fixture
def own_server() -> Iterator[Server]:
    tmp = Path(tempfile.mkdtemp(prefix="mandate-py-own-"))
    s = start_server(tmp)
    try:
        yield s
    finally:
        s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def test_compromised_key_and_staleness(own_server: Server) -> None:
    s = own_server
    v = Verifier.discover(s.issuer, audience=AUDIENCE, client_id="orders-api", client_secret=s.secrets["orders-api"],
                          max_staleness=2, feed_wait=1)
    try:
        orch = client(s, "orchestrator")
        old = orch.mint(audience=AUDIENCE)
        assert v.verify(old.value).jti == old.info.jti
        feed: Any = v.revocations
        before = feed.syncs
        # An emergency rotation: the new ES256 key signs at once; the feed names the old key compromised.
        env = {**os.environ, "MANDATE_SERVER": s.issuer, "MANDATE_CLIENT_ID": "ops", "MANDATE_CLIENT_SECRET": s.secrets["ops"]}
        subprocess.run([mandate_binary(), "keys", "rotate", "--compromised", "--alg", "ES256",
                        "--reason", "sdk test"], env=env, check=True, capture_output=True, timeout=60)
        assert feed.wait_for_sync(before, 5)
        deadline = time.monotonic() + 5
        while True:
            try:
                v.verify(old.value)
            except Exception as e:  # the old key is dropped: cached or not, its tokens are refused
                assert getattr(e, "verdict", "") == "invalid_signature", e
                break
            assert time.monotonic() < deadline, "a token of a compromised key still verified"
            time.sleep(0.02)
        new = orch.mint(audience=AUDIENCE)
        assert v.verify(new.value).holder == "orchestrator"  # an unknown kid: the JWKS is refetched

        # Mandate goes away: the verifier fails closed once its data is older than the bound.
        s.stop()
        deadline = time.monotonic() + 10
        while True:
            try:
                v.verify(new.value)
            except StaleRevocationsError:
                break
            assert time.monotonic() < deadline, "the verifier kept vouching for tokens with no feed"
            time.sleep(0.05)
    finally:
        v.close()


def test_a_bound_token_of_the_actor_names_it(server: Server, api: API) -> None:
    orch = client(server, "orchestrator", dpop_key=Key.generate())
    res = client(server, "researcher", dpop_key=Key.generate("ES256"))
    root = orch.mint(audience=AUDIENCE)
    own = res.mint()  # bound to the researcher's key: useless to whoever it is handed to
    child = res.adopt(orch.delegate(root, own, scope="db:read:orders").value)
    assert child.info.holder == "researcher" and child.info.jkt == res.dpop_key.jkt  # type: ignore[union-attr]
    with api_client(child) as http:
        assert http.get(api.url + "/orders").status_code == 200
    # A scoped bearer token is never an actor token: it would hand its holder's powers to the delegator.
    bearer = client(server, "researcher").mint()
    with pytest.raises(InvalidRequestError):
        client(server, "orchestrator").delegate(client(server, "orchestrator").mint(), bearer, scope="db:read:orders")


def test_an_unreachable_mandate_is_an_oauth_error(server: Server) -> None:
    c = client(server, "orchestrator")
    c.discover()
    assert c.metadata is not None
    import dataclasses

    c._md = dataclasses.replace(c.metadata, token_endpoint="http://127.0.0.1:9/oauth2/token")  # noqa: SLF001 (nothing listens there)
    with pytest.raises(OAuthError) as e:
        c.mint()
    assert e.value.error == "temporarily_unavailable" and server.secrets["orchestrator"] not in str(e.value)
