"""Starting a chain without a static secret, against a real `mandate serve`
configured with a Kubernetes workload issuer and an enterprise IdP issuing
ID-JAGs (the JWT bearer grant, RFC 7523): ``Client.from_workload_token`` /
``AsyncClient.from_workload_token`` and ``redeem_id_jag``. The wire itself is
checked at the network boundary (httpx's MockTransport) at the end."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs

import httpx
import pytest

from mandate_auth import (
    AsyncClient,
    Client,
    InvalidClientError,
    InvalidGrantError,
    Key,
    OAuthError,
    Token,
    WorkloadTokenError,
)

from .conftest import AUDIENCE, ISSUER, MockMandate, Server, claims_of, sign, start_server

pytestmark = pytest.mark.integration

K8S = "https://kubernetes.default.svc.cluster.local"
IDP = "https://login.acme.example"
MAIL = "https://mail.example"


def _clients() -> list[dict[str, Any]]:
    both = ["client_credentials", "token_exchange"]
    return [
        {"id": "orchestrator", "secret": "orch-secret", "grants": both, "scopes": ["db:read:*", "tools:*"], "audiences": [AUDIENCE]},
        {"id": "researcher", "secret": "res-secret", "grants": both, "scopes": ["db:read:*"], "audiences": [AUDIENCE]},
        # a registered client a workload rule names (its grants: the JWT bearer grant, and delegating)
        {"id": "ci-orchestrator", "secret": "ci-secret", "grants": ["jwt_bearer", "token_exchange"], "scopes": ["db:read:*", "tools:*"],
         "audiences": [AUDIENCE]},
        # a client redeeming its users' ID-JAGs
        {"id": "portal", "secret": "portal-secret", "grants": ["jwt_bearer", "token_exchange"], "scopes": ["db:read:*", "mail:send"],
         "audiences": [AUDIENCE, MAIL]},
        # a client not registered for the JWT bearer grant
        {"id": "no-jag", "secret": "no-jag-secret", "grants": both, "scopes": ["db:read:*"], "audiences": [AUDIENCE]},
        {"id": "ops", "secret": "ops-secret", "role": "admin"},
    ]


class Platform:
    """The signers: the Kubernetes API server's service-account key and the
    enterprise IdP's key (ES256, their JWKS beside Mandate's config)."""

    def __init__(self) -> None:
        self.k8s = Key.generate("ES256")
        self.idp = Key.generate("ES256")
        self.issuer = ""  # Mandate's, once it runs

    def service_account(self, ns: str, sa: str, *, aud: str | None = None, life: int = 3600, **over: Any) -> str:
        """A projected service-account token (header and claims as the API
        server writes them), for Mandate's audience."""
        now = int(time.time())
        c: dict[str, Any] = {
            "aud": [aud or self.issuer], "iss": K8S, "sub": f"system:serviceaccount:{ns}:{sa}",
            "iat": now, "nbf": now, "exp": now + life, "jti": str(uuid.uuid4()),
            "kubernetes.io": {
                "namespace": ns,
                "pod": {"name": f"{sa}-5d9c7b-x2x4z", "uid": str(uuid.uuid4())},
                "serviceaccount": {"name": sa, "uid": str(uuid.uuid4())},
                "warnafter": now + life * 3 // 4,
            },
        }
        c.update(over)
        return sign(self.k8s, {"alg": "ES256", "kid": self.k8s.kid}, c)

    def id_jag(self, client: str, *, sub: str = "alice@acme.example", scope: str = "db:read:orders mail:send",
               resource: str = AUDIENCE, **over: Any) -> str:
        """An ID-JAG the IdP made for ``client`` (draft-ietf-oauth-identity-assertion-authz-grant)."""
        now = int(time.time())
        c: dict[str, Any] = {"iss": IDP, "sub": sub, "aud": self.issuer, "client_id": client, "jti": str(uuid.uuid4()),
                             "iat": now, "exp": now + 300, "scope": scope, "resource": resource, "email": sub}
        c.update(over)
        c = {k: v for k, v in c.items() if v is not ...}  # ... removes a claim
        return sign(self.idp, {"alg": "ES256", "kid": self.idp.kid, "typ": "oauth-id-jag+jwt"}, c)


@pytest.fixture(scope="module")
def platform() -> Platform:
    return Platform()


@pytest.fixture(scope="module")
def mandate(platform: Platform) -> Iterator[Server]:
    """Mandate with a Kubernetes workload issuer (generated names for the
    agents namespace, a registered client for ops/orchestrator) and an
    enterprise IdP."""
    tmp = Path(tempfile.mkdtemp(prefix="mandate-py-workload-"))
    config = {
        "workload_issuers": [{
            "issuer": K8S, "jwks_file": "./k8s-jwks.json",
            "rules": [
                {"match": {"sub": "system:serviceaccount:ops:orchestrator"}, "client": "ci-orchestrator"},
                {"match": {"sub": "system:serviceaccount:agents:*"},
                 "agent": "k8s/{kubernetes.io.namespace}/{kubernetes.io.serviceaccount.name}",
                 "scopes": ["db:read:*"], "audiences": [AUDIENCE], "groups": ["research-agents"]},
            ],
        }],
        "id_jag_issuers": [{"issuer": IDP, "jwks_file": "./idp-jwks.json"}],
    }
    files = {"k8s-jwks.json": json.dumps(platform.k8s.public_jwks()), "idp-jwks.json": json.dumps(platform.idp.public_jwks())}
    s = start_server(tmp, _clients(), config=config, files=files)
    platform.issuer = s.issuer
    try:
        yield s
    finally:
        s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    return tmp_path / "token"


def write(path: Path, token: str) -> None:
    """As the kubelet does: a new file swapped in whole (here with a newline
    after the token, which the client strips)."""
    tmp = path.with_suffix(".new")
    tmp.write_text(token + "\n")
    os.replace(tmp, path)


def assert_secret_kept(e: BaseException, *secrets: str) -> None:
    for s in secrets:
        assert s not in str(e) and s not in repr(e) and s.split(".")[2] not in str(e)


# -- a Kubernetes workload ------------------------------------------------------------------


def test_a_workload_mints_its_root_from_its_token_file(mandate: Server, platform: Platform, token_file: Path) -> None:
    sa = platform.service_account("agents", "researcher")
    write(token_file, sa)
    with Client.from_workload_token(mandate.issuer, token_file) as me:
        assert me.client_id is None and me.workload
        assert sa not in repr(me) and str(token_file) in repr(me)
        root = me.mint(scope="db:read:orders", audience=AUDIENCE)
        info = root.info
        assert (info.subject, info.holder, info.subject_issuer, info.actors) == ("k8s/agents/researcher", "k8s/agents/researcher",
                                                                                  mandate.issuer, ())
        assert root.scopes == ["db:read:orders"] and info.audiences == (AUDIENCE,) and not root.bound
        assert me.client_id == "k8s/agents/researcher"
        # No scope or audience: the rule's ceiling.
        assert me.mint().scopes == ["db:read:*"]


def test_a_root_never_outlives_the_platform_token(mandate: Server, platform: Platform) -> None:
    short = platform.service_account("agents", "researcher", life=120)
    with Client.from_workload_token(mandate.issuer, token=lambda: short) as me:
        root = me.mint()
    assert root.info.expires_at == claims_of(short)["exp"]  # not the server's root_ttl (15 min)


def test_a_rotated_token_is_read_at_the_next_request(mandate: Server, platform: Platform, token_file: Path) -> None:
    write(token_file, platform.service_account("agents", "researcher"))
    with Client.from_workload_token(mandate.issuer, str(token_file)) as me:
        first = me.mint()
        assert first.info.subject == "k8s/agents/researcher" and me.client_id == "k8s/agents/researcher"
        # The platform rotates the file (here to another service account's
        # token, so that the change shows): the next request sends the new one.
        write(token_file, platform.service_account("agents", "summarizer"))
        second = me.mint()
        assert second.info.subject == "k8s/agents/summarizer" and second.info.holder == "k8s/agents/summarizer"
        assert me.client_id == "k8s/agents/summarizer"
        # The researcher's root is not the summarizer's to exchange.
        with pytest.raises(OAuthError) as e:
            me.downscope(first, scope="db:read:orders")
        assert e.value.error == "invalid_request"


def test_a_workload_exchanges_and_revokes_as_itself(mandate: Server, platform: Platform, token_file: Path) -> None:
    sa = platform.service_account("agents", "researcher")
    write(token_file, sa)
    with Client.from_workload_token(mandate.issuer, token_file) as me, \
            Client(mandate.issuer, "researcher", mandate.secrets["researcher"]) as researcher:
        root = me.mint(audience=AUDIENCE)
        child = me.downscope(root, scope="db:read:orders")
        assert child.info.holder == "k8s/agents/researcher" and child.info.lineage == (root.info.jti,)
        assert child.scopes == ["db:read:orders"]
        # ... and delegates to a registered agent, named by its identity token.
        handed = me.delegate(root, researcher.identity(), scope="db:read:orders")
        assert (handed.info.subject, handed.info.holder, handed.info.actors) == ("k8s/agents/researcher", "researcher", ("researcher",))
        assert me.client_id == "k8s/agents/researcher"  # a token handed on teaches it nothing
        # Another client cannot exchange the workload's root.
        with pytest.raises(OAuthError) as e:
            researcher.downscope(root)
        assert e.value.error == "invalid_request"
        # Revoking its root ends everything below it.
        me.revoke(root)
        for t in (root, child):
            with pytest.raises(OAuthError) as e:
                me.downscope(t, scope="db:read:orders")
            assert e.value.error == "invalid_request"
        with pytest.raises(OAuthError):
            researcher.downscope(handed)


def test_a_workload_is_delegated_to_by_its_identity_token(mandate: Server, platform: Platform, token_file: Path) -> None:
    write(token_file, platform.service_account("agents", "researcher"))
    with Client.from_workload_token(mandate.issuer, token_file) as me, \
            Client(mandate.issuer, "orchestrator", mandate.secrets["orchestrator"]) as orch:
        ident = me.identity()
        assert ident.info.holder == "k8s/agents/researcher" and ident.info.audiences == (mandate.issuer,) and ident.scopes == []
        assert me.client_id == "k8s/agents/researcher"  # learnt from the identity token too
        task = orch.mint(scope="db:read:*", audience=AUDIENCE)
        mine = orch.delegate(task, ident, scope="db:read:orders")
        assert (mine.info.subject, mine.info.holder, mine.info.actors) == ("orchestrator", "k8s/agents/researcher", ("k8s/agents/researcher",))
        narrower = me.downscope(mine, scope="db:read:orders")
        assert narrower.info.holder == "k8s/agents/researcher" and narrower.info.lineage == (task.info.jti, mine.info.jti)
        # The rule's ceiling holds for what it is delegated too.
        with pytest.raises(OAuthError) as e:
            orch.delegate(task, me.identity(), scope="tools:search")
        assert e.value.error == "invalid_scope"


def test_a_rule_may_name_a_registered_client(mandate: Server, platform: Platform) -> None:
    sa = platform.service_account("ops", "orchestrator")
    with Client.from_workload_token(mandate.issuer, token=lambda: sa) as me:
        root = me.mint()
        assert me.client_id == "ci-orchestrator" and root.info.subject == "ci-orchestrator"
        assert sorted(root.scopes) == ["db:read:*", "tools:*"]  # the registration's ceiling
        assert me.downscope(root, scope="tools:search").info.holder == "ci-orchestrator"
        # A workload may redeem its users' ID-JAGs too, authenticated by its token.
        user = me.redeem_id_jag(platform.id_jag("ci-orchestrator", scope="db:read:orders"))
        assert (user.info.subject, user.info.subject_issuer, user.info.holder, user.scopes) == (
            "alice@acme.example", IDP, "ci-orchestrator", ["db:read:orders"])


def test_a_dpop_bound_workload_root(mandate: Server, platform: Platform, token_file: Path) -> None:
    write(token_file, platform.service_account("agents", "researcher"))
    key = Key.generate()
    with Client.from_workload_token(mandate.issuer, token_file, dpop_key=key) as me:
        root = me.mint(scope="db:read:*", audience=AUDIENCE)
        assert root.bound and root.key is key and root.info.jkt == key.jkt
        child = me.downscope(root, scope="db:read:orders")  # proves possession of the key
        assert child.bound and child.key is key and child.info.jkt == key.jkt
        assert me.identity().info.jkt == key.jkt
    # Without the key, the bound root is useless to anyone else holding the token.
    with Client.from_workload_token(mandate.issuer, token_file) as thief:
        with pytest.raises(OAuthError):
            thief.downscope(root.value, scope="db:read:orders")


def test_refused_workload_tokens(mandate: Server, platform: Platform, token_file: Path) -> None:
    refused = {
        "another audience": platform.service_account("agents", "researcher", aud="https://vault.example"),
        "expired": platform.service_account("agents", "researcher", exp=int(time.time()) - 120),
        "lives too long": platform.service_account("agents", "researcher", life=48 * 3600),
        "matches no rule": platform.service_account("kube-system", "default"),
        "signed by another key": sign(Key.generate("ES256"), {"alg": "ES256", "kid": platform.k8s.kid},
                                      claims_of(platform.service_account("agents", "researcher"))),
    }
    good = platform.service_account("agents", "researcher")
    write(token_file, good)
    with Client.from_workload_token(mandate.issuer, token_file) as me:
        root = me.mint()
        for why, bad in refused.items():
            write(token_file, bad)
            with pytest.raises(InvalidGrantError) as g:  # the grant: invalid_grant (RFC 7523 §3.1)
                me.mint()
            assert (g.value.error, g.value.status) == ("invalid_grant", 400), why
            with pytest.raises(InvalidClientError) as c:  # a client assertion: invalid_client
                me.downscope(root, scope="db:read:orders")
            assert (c.value.error, c.value.status) == ("invalid_client", 401), why
            with pytest.raises(InvalidClientError):
                me.identity()
            with pytest.raises(InvalidClientError):
                me.revoke(root)
            for refusal in (g.value, c.value):
                assert_secret_kept(refusal, bad, good)
        assert me.client_id == "k8s/agents/researcher"  # refusals teach it nothing
        # A scope beyond the rule is the scope's refusal, not the token's.
        write(token_file, good)
        with pytest.raises(OAuthError) as scope:
            me.mint(scope="tools:search")
        assert scope.value.error == "invalid_scope"


def test_a_token_that_cannot_be_read_names_the_file_only(mandate: Server, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "token"
    with Client.from_workload_token(mandate.issuer, missing) as me:
        with pytest.raises(WorkloadTokenError) as e:
            me.mint()
        assert str(missing) in str(e.value) and e.value.path == str(missing) and "No such file" in str(e.value)
        assert e.value.error == "workload_token_unavailable"
    for content, why in ((b"", "empty"), (b"  \n\t\n", "empty"), (b"secret-\xff-bytes", "not ASCII"), (b"x" * 70_000, "larger")):
        f = tmp_path / "bad-token"
        f.write_bytes(content)
        with Client.from_workload_token(mandate.issuer, f) as me:
            with pytest.raises(WorkloadTokenError) as e:
                me.identity()
        assert why in str(e.value) and str(f) in str(e.value) and "secret" not in str(e.value) and "xxxx" not in str(e.value)
    with Client.from_workload_token(mandate.issuer, tmp_path) as me:  # a directory
        with pytest.raises(WorkloadTokenError) as e:
            me.mint()
        assert str(tmp_path) in str(e.value)
    with Client.from_workload_token(mandate.issuer, token=lambda: "") as me:
        with pytest.raises(WorkloadTokenError, match="callable"):
            me.mint()


def test_exactly_one_source_of_the_token() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Client.from_workload_token("https://mandate.example")
    with pytest.raises(ValueError, match="exactly one"):
        Client.from_workload_token("https://mandate.example", "/var/run/token", token=lambda: "t")
    with pytest.raises(ValueError, match="exactly one"):
        AsyncClient.from_workload_token("https://mandate.example")
    with pytest.raises(TypeError):
        Client.from_workload_token("https://mandate.example", token="a.b.c")  # type: ignore[arg-type]
    me = Client.from_workload_token("https://mandate.example", token=lambda: "t")
    with pytest.raises(ValueError, match="not known yet"):
        me.spawn_agent("helper")
    me.close()


# -- an enterprise IdP's ID-JAG ------------------------------------------------------------------


def test_an_id_jag_is_redeemed_for_the_users_root(mandate: Server, platform: Platform) -> None:
    jag = platform.id_jag("portal")
    with Client(mandate.issuer, "portal", mandate.secrets["portal"]) as portal, \
            Client(mandate.issuer, "researcher", mandate.secrets["researcher"]) as researcher:
        root = portal.redeem_id_jag(jag)
        info = root.info
        assert (info.subject, info.subject_issuer, info.holder, info.actors) == ("alice@acme.example", IDP, "portal", ("portal",))
        assert sorted(root.scopes) == ["db:read:orders", "mail:send"] and info.audiences == (AUDIENCE,)  # requested (all) ∩ ID-JAG ∩ registration
        # Single use: the same ID-JAG again is invalid_grant.
        with pytest.raises(InvalidGrantError) as e:
            portal.redeem_id_jag(jag)
        assert e.value.status == 400
        assert_secret_kept(e.value, jag)
        # Narrower, and delegated from as any root.
        narrow = portal.redeem_id_jag(platform.id_jag("portal"), scope="db:read:orders", audience=AUDIENCE)
        assert narrow.scopes == ["db:read:orders"]
        child = portal.delegate(narrow, researcher.identity(), scope="db:read:orders")
        assert (child.info.subject, child.info.holder, child.info.actors) == ("alice@acme.example", "researcher", ("researcher", "portal"))


def test_refused_id_jags(mandate: Server, platform: Platform) -> None:
    with Client(mandate.issuer, "portal", mandate.secrets["portal"]) as portal:
        for why, jag in {
            "made for another client": platform.id_jag("ci-orchestrator"),
            "for another authorization server": platform.id_jag("portal", aud="https://as.other.example"),
            "lives too long": platform.id_jag("portal", exp=int(time.time()) + 3600),
            "no jti": platform.id_jag("portal", jti=...),
        }.items():
            with pytest.raises(InvalidGrantError) as e:
                portal.redeem_id_jag(jag)
            assert e.value.error == "invalid_grant", why
            assert_secret_kept(e.value, jag)
        with pytest.raises(OAuthError) as scope:
            portal.redeem_id_jag(platform.id_jag("portal"), scope="db:read:customers")
        assert scope.value.error == "invalid_scope"
        with pytest.raises(ValueError):
            portal.redeem_id_jag("")
    # A client not registered for the grant.
    with Client(mandate.issuer, "no-jag", mandate.secrets["no-jag"]) as other:
        with pytest.raises(OAuthError) as unauthorized:
            other.redeem_id_jag(platform.id_jag("no-jag"))
        assert unauthorized.value.error == "unauthorized_client"


def test_a_bound_id_jag_root(mandate: Server, platform: Platform) -> None:
    key = Key.generate("ES256")
    with Client(mandate.issuer, "portal", mandate.secrets["portal"], dpop_key=key) as portal:
        root = portal.redeem_id_jag(platform.id_jag("portal", resource=MAIL), scope="mail:send", audience=MAIL)
        assert root.bound and root.key is key and root.info.audiences == (MAIL,) and root.scopes == ["mail:send"]


def test_the_readme_example_runs(mandate: Server, platform: Platform, token_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import re

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("## Without a secret") :]
    m = re.search(r"```python\n(.*?)```", section, re.S)
    assert m is not None
    code = m.group(1).replace('"https://mandate.example"', repr(mandate.issuer))
    code = code.replace('"/var/run/secrets/mandate/token"', repr(str(token_file)))
    write(token_file, platform.service_account("agents", "researcher"))
    env: dict[str, Any] = {"portal_secret": mandate.secrets["portal"], "id_jag": platform.id_jag("portal")}
    exec(compile(code, "README.md", "exec"), env)  # noqa: S102 - our own README
    assert capsys.readouterr().out.strip() == "k8s/agents/researcher"
    assert env["mine"].info.holder == "k8s/agents/researcher" and env["root"].bound
    assert (env["user_root"].info.subject, env["user_root"].info.holder) == ("alice@acme.example", "portal")


# -- the async twin ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_workload_and_id_jag(mandate: Server, platform: Platform, token_file: Path) -> None:
    write(token_file, platform.service_account("agents", "researcher"))
    async with AsyncClient.from_workload_token(mandate.issuer, token_file, dpop_key=Key.generate()) as me:
        assert me.client_id is None
        root = await me.mint(scope="db:read:*", audience=AUDIENCE)
        assert root.info.subject == "k8s/agents/researcher" and root.bound and me.client_id == "k8s/agents/researcher"
        child = await me.downscope(root, scope="db:read:orders")
        assert child.info.lineage == (root.info.jti,) and child.info.holder == "k8s/agents/researcher"
        assert (await me.identity()).info.audiences == (mandate.issuer,)
        write(token_file, platform.service_account("agents", "summarizer"))
        assert (await me.mint()).info.subject == "k8s/agents/summarizer" and me.client_id == "k8s/agents/summarizer"
        write(token_file, platform.service_account("agents", "summarizer", aud="https://vault.example"))
        with pytest.raises(InvalidGrantError):
            await me.mint()
        with pytest.raises(InvalidClientError):
            await me.downscope(root)
        write(token_file, platform.service_account("agents", "researcher"))
        await me.revoke(root)
        with pytest.raises(OAuthError) as e:
            await me.downscope(child)
        assert e.value.error == "invalid_request"
    async with AsyncClient.from_workload_token(mandate.issuer, token_file.parent / "missing") as nobody:
        with pytest.raises(WorkloadTokenError):
            await nobody.mint()
    async with AsyncClient(mandate.issuer, "portal", mandate.secrets["portal"]) as portal:
        jag = platform.id_jag("portal")
        t = await portal.redeem_id_jag(jag, scope="db:read:orders")
        assert (t.info.subject, t.info.holder, t.scopes) == ("alice@acme.example", "portal", ["db:read:orders"])
        with pytest.raises(InvalidGrantError):
            await portal.redeem_id_jag(jag)


# -- the wire, at the network boundary ----------------------------------------------------------------

PLATFORM_TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2lnbmF0dXJlLW9mLXRoZS1wbGF0Zm9ybQ"


def _issued(holder: str) -> str:
    return sign(Key.generate(), {"alg": "EdDSA", "typ": "at+jwt"}, {"iss": ISSUER, "sub": holder, "client_id": holder, "jti": "j",
                                                                      "scope": "db:read:*", "exp": 2_000_000_000})


def _answer(value: str) -> httpx.Response:
    return httpx.Response(200, json={"access_token": value, "token_type": "Bearer", "expires_in": 60})


def test_the_wire_of_a_workload_client(token_file: Path) -> None:
    write(token_file, PLATFORM_TOKEN)
    m = MockMandate([_answer(_issued("k8s/agents/a")), _answer(_issued("k8s/agents/a")), _answer(_issued("k8s/agents/a")),
                  httpx.Response(200)])
    with Client.from_workload_token(ISSUER, token_file, http=httpx.Client(transport=httpx.MockTransport(m))) as me:
        root = me.mint(scope="db:read:*", audience=AUDIENCE)
        me.downscope(root, scope="db:read:orders")
        me.identity()
        me.revoke(root)
    mint, exchange, ident, revoke = (m.form(i) for i in range(4))
    # The root: the JWT bearer grant, the token the assertion, nothing else.
    assert mint == {"grant_type": ["urn:ietf:params:oauth:grant-type:jwt-bearer"], "assertion": [PLATFORM_TOKEN],
                    "scope": ["db:read:*"], "audience": [AUDIENCE]}
    # Everything else: the token as the client assertion, and no client_id.
    for f in (exchange, ident, revoke):
        assert f["client_assertion_type"] == ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"]
        assert f["client_assertion"] == [PLATFORM_TOKEN] and "client_id" not in f and "assertion" not in f
    assert exchange["grant_type"] == ["urn:ietf:params:oauth:grant-type:token-exchange"]
    assert ident["grant_type"] == ["client_credentials"] and ident["audience"] == [ISSUER]
    assert revoke["token"] == [root.value]
    assert all("authorization" not in r.headers and "dpop" not in r.headers for r in m.requests)
    assert me.client_id == "k8s/agents/a"


def test_the_token_is_read_again_for_a_nonce_retry(token_file: Path) -> None:
    write(token_file, PLATFORM_TOKEN)
    challenge = httpx.Response(400, json={"error": "use_dpop_nonce"}, headers={"DPoP-Nonce": "n1"})

    def rotate_then_answer(req: httpx.Request) -> httpx.Response:
        write(token_file, PLATFORM_TOKEN + "2")
        return challenge

    m = MockMandate([rotate_then_answer, _answer(_issued("k8s/agents/a"))])
    key = Key.generate()
    with Client.from_workload_token(ISSUER, token_file, dpop_key=key, http=httpx.Client(transport=httpx.MockTransport(m))) as me:
        me.mint()
    first, second = (parse_qs(r.content.decode()) for r in m.requests)
    assert first["assertion"] == [PLATFORM_TOKEN] and second["assertion"] == [PLATFORM_TOKEN + "2"]
    assert all("dpop" in r.headers for r in m.requests)


def test_an_answer_quoting_the_token_does_not_put_it_in_the_error(token_file: Path) -> None:
    write(token_file, PLATFORM_TOKEN)
    echo = httpx.Response(400, json={"error": "invalid_grant", "error_description": f"bad assertion {PLATFORM_TOKEN}!"})
    echo_client = httpx.Response(401, json={"error": "invalid_client", "error_description": f"bad {PLATFORM_TOKEN}"})
    m = MockMandate([echo, echo_client])
    with Client.from_workload_token(ISSUER, token_file, http=httpx.Client(transport=httpx.MockTransport(m))) as me:
        with pytest.raises(InvalidGrantError) as g:
            me.mint()
        with pytest.raises(InvalidClientError) as c:
            me.downscope(Token(value=_issued("k8s/agents/a")))
    assert_secret_kept(g.value, PLATFORM_TOKEN)
    assert_secret_kept(c.value, PLATFORM_TOKEN)
    assert "<the assertion>" in str(g.value) and "<the client_assertion>" in str(c.value)


def test_the_wire_of_an_id_jag_redemption() -> None:
    m = MockMandate([_answer(_issued("portal"))])
    with Client(ISSUER, "portal", "s3cret", http=httpx.Client(transport=httpx.MockTransport(m))) as portal:
        portal.redeem_id_jag("a.b.c", scope=["db:read:orders", "mail:send"], audience=AUDIENCE)
    assert m.form(0) == {"grant_type": ["urn:ietf:params:oauth:grant-type:jwt-bearer"], "assertion": ["a.b.c"],
                         "scope": ["db:read:orders mail:send"], "audience": [AUDIENCE]}
    assert m.requests[0].headers["authorization"].startswith("Basic ")
