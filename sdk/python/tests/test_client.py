"""What the client sends, seen at the network boundary (httpx's
MockTransport); the real server is in test_integration.py."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from mandate_auth import AsyncClient, Client, DiscoveryError, InvalidScopeError, Key, OAuthError

from .conftest import ISSUER, MOCK_METADATA, MockMandate, claims_of


def token_answer(**kw: Any) -> httpx.Response:
    return httpx.Response(200, json={"access_token": "a.b.c", "token_type": "DPoP", "expires_in": 60, "scope": "x", **kw})


def test_basic_credentials_are_form_urlencoded_first() -> None:
    m = MockMandate([token_answer(token_type="Bearer")])
    with Client(ISSUER, "a b:c", "p@ss+/é", http=httpx.Client(transport=httpx.MockTransport(m))) as c:
        c.mint(scope=["db:read:*", "tools:*"], audience=["https://a.example", "https://b.example"])
    req = m.requests[0]
    user, _, pw = base64.b64decode(req.headers["authorization"].split()[1]).decode().partition(":")
    assert (user, pw) == ("a+b%3Ac", "p%40ss%2B%2F%C3%A9")
    form = parse_qs(req.content.decode())
    assert form["scope"] == ["db:read:* tools:*"] and form["audience"] == ["https://a.example", "https://b.example"]
    assert "dpop" not in req.headers


def test_a_nonce_challenge_is_answered_once() -> None:
    challenge = httpx.Response(400, json={"error": "use_dpop_nonce", "error_description": "nonce"}, headers={"DPoP-Nonce": "n1"})
    m = MockMandate([challenge, token_answer()])
    key = Key.generate()
    with Client(ISSUER, "orchestrator", "s", dpop_key=key, http=httpx.Client(transport=httpx.MockTransport(m))) as c:
        t = c.mint()
    assert t.bound and t.key is key
    first, second = (claims_of(r.headers["dpop"]) for r in m.requests)
    assert "nonce" not in first and second["nonce"] == "n1" and first["jti"] != second["jti"]
    assert first["htm"] == "POST" and first["htu"] == MOCK_METADATA["token_endpoint"] and "ath" not in first
    again = httpx.Response(400, json={"error": "use_dpop_nonce"}, headers={"DPoP-Nonce": "n2"})
    m = MockMandate([challenge, again])
    with Client(ISSUER, "orchestrator", "s", dpop_key=key, http=httpx.Client(transport=httpx.MockTransport(m))) as c:
        with pytest.raises(OAuthError) as e:
            c.mint()
    assert e.value.error == "use_dpop_nonce" and len(m.requests) == 2


def test_private_key_jwt_assertions_are_fresh_each_time() -> None:
    k = Key.generate("ES256")
    challenge = httpx.Response(400, json={"error": "use_dpop_nonce"}, headers={"DPoP-Nonce": "n"})
    m = MockMandate([challenge, token_answer()])
    with Client(ISSUER, "keyed", client_key=k, dpop_key=Key.generate(), http=httpx.Client(transport=httpx.MockTransport(m)),
                now=lambda: 1_800_000_000.0) as c:
        c.mint()
    forms = [parse_qs(r.content.decode()) for r in m.requests]
    assert all("authorization" not in r.headers for r in m.requests)
    a1, a2 = (claims_of(f["client_assertion"][0]) for f in forms)
    assert a1["iss"] == a1["sub"] == "keyed" and a1["aud"] == ISSUER and a1["exp"] - a1["iat"] == 60 and a1["jti"] != a2["jti"]
    assert forms[0]["client_assertion_type"] == ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"]
    hdr = json.loads(base64.urlsafe_b64decode(forms[0]["client_assertion"][0].split(".")[0] + "=="))
    assert hdr == {"alg": "ES256", "typ": "JWT", "kid": k.kid}


def test_errors_and_redirects() -> None:
    m = MockMandate([httpx.Response(400, json={"error": "invalid_scope", "error_description": "db:write is not yours"}),
                 httpx.Response(302, headers={"Location": "https://evil.example/token"}),
                 httpx.Response(500, text="oops"), httpx.Response(200, text="not json")])
    with Client(ISSUER, "o", "s", http=httpx.Client(transport=httpx.MockTransport(m), follow_redirects=True)) as c:
        with pytest.raises(InvalidScopeError) as e:
            c.mint()
        assert (e.value.error, e.value.error_description, e.value.status) == ("invalid_scope", "db:write is not yours", 400)
        with pytest.raises(OAuthError) as e2:
            c.mint()
        assert e2.value.status == 302 and len(m.requests) == 2  # never followed
        with pytest.raises(OAuthError):
            c.mint()
        with pytest.raises(OAuthError):
            c.mint()


def test_discovery_refuses_another_issuer() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={**MOCK_METADATA, "issuer": "https://evil.example"})

    with Client(ISSUER, "o", "s", http=httpx.Client(transport=httpx.MockTransport(handler))) as c:
        with pytest.raises(DiscoveryError):
            c.mint()


@pytest.mark.parametrize("key", ["token_endpoint", "revocation_endpoint"])
def test_discovery_refuses_endpoints_on_another_origin(key: str) -> None:
    # Credentials (a secret, an assertion, a platform token) go to the
    # server discovered, nowhere else, as in the Go and TypeScript clients.
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json={**MOCK_METADATA, key: "https://evil.example/oauth2/token"})

    with Client(ISSUER, "o", "s", http=httpx.Client(transport=httpx.MockTransport(handler))) as c:
        with pytest.raises(DiscoveryError, match="not on the issuer's origin"):
            c.mint()
    assert [r.url.path for r in seen] == ["/.well-known/oauth-authorization-server"]


@pytest.mark.anyio
async def test_async_client_sends_the_same() -> None:
    m = MockMandate([token_answer(), httpx.Response(200)])
    key = Key.generate()
    async with AsyncClient(ISSUER, "o", "s", dpop_key=key, http=httpx.AsyncClient(transport=httpx.MockTransport(m))) as c:
        agent = c.spawn_agent("a1")
        subject = c.adopt("e30." + base64.urlsafe_b64encode(json.dumps({"cnf": {"jkt": key.jkt}}).encode()).decode().rstrip("=") + ".x")
        t = await c.delegate_to_agent(subject, agent, scope="db:read:x", audience="https://api.example")
        await c.revoke(t)
    form = parse_qs(m.requests[0].content.decode())
    actor = claims_of(form["actor_token"][0])
    assert actor["iss"] == "o" and actor["sub"] == "o/a1" and actor["aud"] == ISSUER and actor["exp"] - actor["iat"] == 120
    assert form["actor_token_type"] == ["urn:ietf:params:oauth:token-type:jwt"]
    assert t.key is agent.key and claims_of(m.requests[0].headers["dpop"])["htm"] == "POST"
    assert parse_qs(m.requests[1].content.decode()) == {"token": ["a.b.c"]} and "dpop" not in m.requests[1].headers


def test_a_bound_token_without_its_key_is_never_sent() -> None:
    """Both ways a token reaches a server (DPoPAuth for httpx, McpAuth for the
    MCP client's httpx2) refuse a DPoP-bound token whose key is not here,
    before any request leaves: a DPoP token without a proof would only be
    refused (or, worse, taken as a bearer token by a lax server)."""
    import httpx2

    from mandate_auth import DPoPAuth, MandateError, Token
    from mandate_auth.mcp.client import McpAuth

    sent: list[Any] = []
    bound = Token("a.b.c", token_type="DPoP")
    with httpx.Client(transport=httpx.MockTransport(lambda r: sent.append(r) or httpx.Response(200)), auth=DPoPAuth(bound)) as c:
        with pytest.raises(MandateError) as e:
            c.get("https://api.example/x")
    assert e.value.error == "missing_dpop_key"
    with httpx2.Client(transport=httpx2.MockTransport(lambda r: sent.append(r) or httpx2.Response(200)), auth=McpAuth(bound)) as c2:
        with pytest.raises(MandateError) as e:
            c2.get("https://mcp.example/mcp")
    assert e.value.error == "missing_dpop_key" and sent == []
    with httpx2.Client(transport=httpx2.MockTransport(lambda r: sent.append(r) or httpx2.Response(200)),
                       auth=McpAuth(Token("a.b.c"))) as c2:
        c2.get("https://mcp.example/mcp")
    assert [r.headers["Authorization"] for r in sent] == ["Bearer a.b.c"] and "DPoP" not in sent[0].headers
