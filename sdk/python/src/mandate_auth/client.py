"""Mandate's client, for orchestrators and agents: discovery (RFC 8414, the
issuer checked), ``client_credentials`` roots and identity tokens, RFC 8693
token exchange to a registered agent or to an ephemeral one, DPoP (RFC 9449)
on every request, revocation (RFC 7009), and the JWT bearer grant (RFC 7523):
a workload's root from its platform's token, a user's root from an
enterprise IdP's ID-JAG. :class:`Client` is synchronous, :class:`AsyncClient`
its ``async`` twin; both are context managers, in the manner of httpx and
authlib.

A client authenticates with ``client_secret_basic`` (id and secret
form-urlencoded before Base64, RFC 6749 §2.3.1) or ``private_key_jwt`` (RFC
7523, with a :class:`~mandate_auth.jose.Key`) — or, made by
:meth:`Client.from_workload_token`, with no secret at all: the token its
platform issues and rotates (a Kubernetes projected service-account token, a
SPIFFE JWT-SVID, a CI job's OIDC token) is its grant and its
``client_assertion``. With a ``dpop_key``, every token it obtains for itself
is bound to that key, and exchanging a bound token proves possession of it.
Secrets and tokens never appear in its errors or reprs, and requests to
Mandate never follow redirects.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Union

import httpx

from ._b64 import b64encode
from .claims import TokenInfo, decode_unverified
from .errors import DiscoveryError, OAuthError, WorkloadTokenError, excerpt
from .jose import Key
from .remote import basic_auth, metadata_url

__all__ = ["Token", "Agent", "Client", "AsyncClient", "Metadata",
           "GRANT_CLIENT_CREDENTIALS", "GRANT_TOKEN_EXCHANGE", "GRANT_JWT_BEARER", "TOKEN_TYPE_ACCESS_TOKEN", "TOKEN_TYPE_JWT"]

GRANT_CLIENT_CREDENTIALS = "client_credentials"
GRANT_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
GRANT_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_TYPE_ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
TOKEN_TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ANSWER = 1 << 20
MAX_WORKLOAD_TOKEN = 64 << 10  # a file larger than this holds no token
_AGENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")

ScopeArg = Union[str, Iterable[str], None]
AudienceArg = Union[str, Iterable[str], None]
TokenFile = Union[str, "os.PathLike[str]"]


@dataclass(repr=False)
class Token:
    """An access token with what its holder needs to use it. ``value`` is the
    token itself: hand it on deliberately; its repr never shows it."""

    value: str
    token_type: str = "Bearer"
    """``Bearer``, or ``DPoP`` for a token bound to a key."""
    scope: str = ""
    expires_at: float = 0.0
    key: Key | None = None
    """The key a DPoP token is bound to, when this side holds it (the holder's
    own tokens); None for bearer tokens and for tokens handed on."""
    now: Callable[[], float] | None = field(default=None, compare=False)

    @property
    def bound(self) -> bool:
        """Whether the token is bound to a key (DPoP)."""
        return self.token_type.lower() == "dpop"

    @property
    def info(self) -> TokenInfo:
        """A decoded view (sub, sub_iss, holder, act chain, lineage, scopes,
        audiences, exp, cnf) — NOT verified: for display and bookkeeping."""
        return decode_unverified(self.value)

    @property
    def scopes(self) -> list[str]:
        return self.scope.split() if self.scope else []

    def clock(self) -> float:
        return self.now() if self.now is not None else time.time()

    def auth(self) -> "Any":
        """An ``httpx.Auth`` that sends this token to resource servers (with a
        fresh DPoP proof per request when it is bound)."""
        from .httpauth import DPoPAuth

        return DPoPAuth(self)

    def __repr__(self) -> str:
        try:
            jti = decode_unverified(self.value).jti
        except ValueError:
            jti = "?"
        return f"Token(type={self.token_type!r}, jti={excerpt(jti)!r}, scope={self.scope!r}, expires_at={self.expires_at!r})"

    __str__ = __repr__


def _adopt(value: str, key: Key | None, now: Callable[[], float] | None) -> Token:
    t = Token(value=value, now=now)
    try:
        info = decode_unverified(value)
    except ValueError:
        return t
    t.scope, t.expires_at = " ".join(info.scopes), float(info.expires_at)
    if info.bound:
        t.token_type, t.key = "DPoP", key
    return t


@dataclass(repr=False)
class Agent:
    """An ephemeral agent: a name in its owner's namespace and a fresh key,
    with no registration of its own (docs/dpop.md). Give the agent its
    ``Agent`` (at least ``name`` and ``key``) and the token delegated to it;
    nobody else can use that token."""

    name: str
    key: Key
    owner: str
    now: Callable[[], float] | None = field(default=None, compare=False)

    def actor_token(self, issuer: str, ttl: float = 120.0, now: float | None = None) -> str:
        """The agent's self-signed actor token (``agent+jwt``) for an exchange
        at ``issuer``, valid for ``ttl`` seconds (Mandate accepts at most 10 min)."""
        t = int(now if now is not None else (self.now() if self.now else time.time()))
        return self.key.sign_jwt(
            "agent+jwt",
            {"iss": self.owner, "sub": self.name, "aud": issuer, "iat": t, "exp": t + int(ttl), "jti": b64encode(os.urandom(12))},
        )

    def adopt(self, value: str) -> Token:
        """Wrap a token delegated to the agent with the agent's key."""
        return _adopt(value, self.key, self.now)

    def __repr__(self) -> str:
        return f"Agent(name={self.name!r}, key={self.key!r})"


def _same_origin(endpoint: str, issuer: str) -> bool:
    """Whether endpoint has issuer's scheme and host (with port)."""
    e, i = httpx.URL(endpoint), httpx.URL(issuer)
    return e.scheme == i.scheme and e.netloc.lower() == i.netloc.lower()


@dataclass(frozen=True)
class Metadata:
    """The endpoints RFC 8414 discovery found."""

    issuer: str
    token_endpoint: str
    revocation_endpoint: str
    jwks_uri: str = ""
    introspection_endpoint: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


def _values(v: str | Iterable[str] | None) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v] if v else []
    return [x for x in v]


def _scope(v: ScopeArg) -> str:
    return " ".join(_values(v)) if not isinstance(v, str) else v


class _WorkloadToken:
    """Where a workload client's platform token comes from: a file re-read
    at every request (a projected token the platform rotates in place), or a
    callable. Its repr names the file, never the token."""

    def __init__(self, token_file: TokenFile | None, token: Callable[[], str] | None) -> None:
        if (token_file is None) == (token is None):
            raise ValueError("give exactly one of token_file (a path, re-read at every request) and token (a callable returning the token)")
        if token is not None and not callable(token):
            raise TypeError("token must be a callable returning the current token (to give a fixed one: token=lambda: value)")
        self.path = os.fspath(token_file) if token_file is not None else None
        self._get = token

    def __call__(self) -> str:
        if self.path is not None:
            try:
                with open(self.path, "rb") as f:
                    raw = f.read(MAX_WORKLOAD_TOKEN + 1)
            except OSError as e:
                raise WorkloadTokenError(f"cannot read the workload token file {self.path!r}: {e.strerror or type(e).__name__}",
                                         path=self.path) from None
            if len(raw) > MAX_WORKLOAD_TOKEN:
                raise WorkloadTokenError(f"the workload token file {self.path!r} is larger than {MAX_WORKLOAD_TOKEN} bytes: not a token",
                                         path=self.path)
            try:
                value = raw.decode("ascii").strip()
            except UnicodeDecodeError:
                raise WorkloadTokenError(f"the workload token file {self.path!r} is not ASCII text: not a token", path=self.path) from None
            if not value:
                raise WorkloadTokenError(f"the workload token file {self.path!r} is empty", path=self.path)
            return value
        assert self._get is not None
        got = self._get()
        if not isinstance(got, str) or not got.strip():
            raise WorkloadTokenError(f"the workload token callable returned {'an empty string' if isinstance(got, str) else type(got).__name__}, not a token")
        return got.strip()

    def __repr__(self) -> str:
        return f"token_file={self.path!r}" if self.path is not None else "token=<callable>"


class _Base:
    """What the sync and async clients share: every request is built and
    every answer read here; only the sending differs."""

    def __init__(
        self,
        issuer: str,
        client_id: str | None,
        client_secret: str | None = None,
        *,
        client_key: Key | None = None,
        dpop_key: Key | None = None,
        now: Callable[[], float] | None = None,
        workload: _WorkloadToken | None = None,
    ) -> None:
        if workload is not None:
            if client_id is not None or client_secret is not None or client_key is not None:
                raise ValueError("a workload client authenticates with its platform token alone")
        elif (client_secret is None) == (client_key is None):
            raise ValueError("give exactly one of client_secret (client_secret_basic) and client_key (private_key_jwt)")
        elif client_id is None:
            raise ValueError("client_id is required (a workload with no secret: Client.from_workload_token)")
        self.issuer = issuer
        self.client_id: str | None = client_id
        """The client's id: as registered, or, for a workload client, the
        identity Mandate maps its platform token to, learnt from each token
        Mandate issues the client for itself (None before the first)."""
        self._secret = client_secret
        self._client_key = client_key
        self._workload = workload
        self.dpop_key = dpop_key
        self._now = now
        self._md: Metadata | None = None

    # -- helpers -----------------------------------------------------------------

    def time(self) -> float:
        return self._now() if self._now is not None else time.time()

    @property
    def metadata(self) -> Metadata | None:
        return self._md

    @property
    def workload(self) -> bool:
        """Whether the client authenticates with a workload token
        (:meth:`Client.from_workload_token`)."""
        return self._workload is not None

    def __repr__(self) -> str:
        if self._workload is not None:
            return f"{type(self).__name__}(issuer={self.issuer!r}, client_id={self.client_id!r}, {self._workload!r})"
        return f"{type(self).__name__}(issuer={self.issuer!r}, client_id={self.client_id!r})"

    def adopt(self, value: str) -> Token:
        """Wrap a token this client was given (a delegation to it) with the
        client's key, so it can use and exchange it."""
        return _adopt(value, self.dpop_key, self._now)

    def spawn_agent(self, name: str, alg: str = "EdDSA") -> Agent:
        """An ephemeral agent named ``<client id>/<name>`` with a fresh key.
        ``name`` is 1–64 letters, digits and ``._-``, beginning with a letter
        or digit and not ending with a dot (docs/dpop.md)."""
        if not _AGENT_NAME.match(name) or name.endswith("."):
            raise ValueError(f"agent name {excerpt(name)!r}: use 1-64 letters, digits and ._- (starting with a letter or digit, not ending with a dot)")
        if self.client_id is None:
            raise ValueError("the workload's client id is not known yet: it is learnt from the first token Mandate issues it (mint first)")
        return Agent(name=f"{self.client_id}/{name}", key=Key.generate(alg), owner=self.client_id, now=self._now)

    def _accept_metadata(self, status: int, body: bytes) -> Metadata:
        try:
            doc = httpx.Response(status, content=body).json() if status == 200 else None
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise DiscoveryError(f"no metadata for {self.issuer} (HTTP {status})")
        if doc.get("issuer") != self.issuer:  # RFC 8414 §3.3
            raise DiscoveryError(f"metadata names issuer {doc.get('issuer')!r}, not {self.issuer!r}")
        tok, rev = doc.get("token_endpoint"), doc.get("revocation_endpoint")
        if not isinstance(tok, str) or not tok:
            raise DiscoveryError("metadata has no token_endpoint")
        for e in (tok, rev if isinstance(rev, str) else ""):
            # Credentials go to the server discovered, nowhere else (the Go
            # and TypeScript clients refuse the same).
            if e and not _same_origin(e, self.issuer):
                raise DiscoveryError(f"endpoint {excerpt(e)!r} is not on the issuer's origin")
        self._md = Metadata(issuer=self.issuer, token_endpoint=tok, revocation_endpoint=rev if isinstance(rev, str) else "",
                            jwks_uri=str(doc.get("jwks_uri") or ""), introspection_endpoint=str(doc.get("introspection_endpoint") or ""),
                            raw=doc)
        return self._md

    def _client_auth(self, form: dict[str, Any]) -> httpx.BasicAuth | None:
        if self._workload is not None:
            # The platform token, read now (it rotates). A JWT bearer grant
            # without an assertion is the workload's own root: the token is
            # the grant and the authentication both, with no other (RFC 7523
            # §3.1); everywhere else it is the client assertion (§2.2). No
            # client_id: the token names the client, and after a rotation to
            # another identity a remembered one would be wrong.
            value = self._workload()
            if form.get("grant_type") == GRANT_JWT_BEARER and "assertion" not in form:
                form["assertion"] = value
            else:
                form["client_assertion_type"] = CLIENT_ASSERTION_TYPE
                form["client_assertion"] = value
            return None
        if self._client_key is not None:
            t = int(self.time())
            form["client_id"] = self.client_id
            form["client_assertion_type"] = CLIENT_ASSERTION_TYPE
            form["client_assertion"] = self._client_key.sign_jwt(
                "JWT",
                {"iss": self.client_id, "sub": self.client_id, "aud": self.issuer, "iat": t, "exp": t + 60, "jti": b64encode(os.urandom(16))},
                embed_jwk=False,
            )
            return None
        return basic_auth(self.client_id or "", self._secret or "")

    def _token_request(self, md: Metadata, form: Mapping[str, Any], proof_key: Key | None, nonce: str | None) -> dict[str, Any]:
        data = dict(form)
        auth = self._client_auth(data)
        headers = {"Accept": "application/json"}
        if proof_key is not None:
            headers["DPoP"] = proof_key.proof("POST", md.token_endpoint, nonce=nonce, now=self.time())
        return dict(method="POST", url=md.token_endpoint, data=data, headers=headers, auth=auth, follow_redirects=False)

    def _revoke_request(self, md: Metadata, token: str) -> dict[str, Any]:
        if not md.revocation_endpoint:
            raise DiscoveryError("the issuer's metadata names no revocation_endpoint")
        data: dict[str, Any] = {"token": token}
        auth = self._client_auth(data)
        return dict(method="POST", url=md.revocation_endpoint, data=data, headers={"Accept": "application/json"}, auth=auth,
                    follow_redirects=False)

    @staticmethod
    def _nonce_retry(resp: httpx.Response) -> str | None:
        """The nonce to retry with when the server asked for one (RFC 9449 §8)."""
        nonce = resp.headers.get("DPoP-Nonce")
        if resp.status_code in (400, 401) and nonce:
            try:
                if resp.json().get("error") == "use_dpop_nonce":
                    return str(nonce)
            except (ValueError, AttributeError):
                return None
        return None

    def _error(self, resp: httpx.Response, sent: Mapping[str, Any] | None = None) -> OAuthError:
        if 300 <= resp.status_code < 400:
            return OAuthError(f"Mandate answered a redirect (HTTP {resp.status_code}), which is never followed with credentials",
                              status=resp.status_code)
        try:
            body = resp.json()
        except ValueError:
            body = None
        e = OAuthError.from_response(resp.status_code, body)
        if sent:
            # Mandate never quotes an assertion; should an answer ever do so,
            # the platform token or ID-JAG still stays out of the error.
            for name in ("assertion", "client_assertion"):
                v = sent.get(name)
                if isinstance(v, str) and len(v) >= 8 and v in e.error_description:
                    e.error_description = e.error_description.replace(v, f"<the {name}>")
                    e.args = (e.error_description,)
        return e

    def _read_token(self, resp: httpx.Response, child_key: Key | None, sent: Mapping[str, Any] | None = None) -> Token:
        if resp.status_code != 200:
            raise self._error(resp, sent)
        try:
            out = resp.json()
            value, ttype = out["access_token"], out.get("token_type", "Bearer")
            if not isinstance(value, str) or not value or not isinstance(ttype, str):
                raise ValueError
            expires_in = out.get("expires_in") or 0
            scope = out.get("scope") or ""
        except (ValueError, KeyError, TypeError, AttributeError):
            raise OAuthError("the token endpoint's answer is not a token response", status=resp.status_code) from None
        t = Token(value=value, token_type=ttype, scope=scope if isinstance(scope, str) else "",
                  expires_at=self.time() + float(expires_in if isinstance(expires_in, (int, float)) else 0), now=self._now)
        if t.bound:
            t.key = child_key
        if self._workload is not None and sent is not None and "actor_token" not in sent:
            # A token the workload keeps (its root, its identity token, a
            # down-scoped child): its holder is the identity the platform
            # token maps to, which a rotation may have changed.
            holder = _holder_of(value)
            if holder:
                self.client_id = holder
        return t

    # -- the requests' forms ----------------------------------------------------------

    def _mint_args(self, scope: ScopeArg, audience: AudienceArg, grant: str | None = None) -> tuple[dict[str, Any], Key | None, Key | None]:
        # A workload's root is the JWT bearer grant (its token, the
        # assertion, is added when the request is made: _client_auth);
        # every other client's is client_credentials, as are identity tokens.
        if grant is None:
            grant = GRANT_JWT_BEARER if self._workload is not None else GRANT_CLIENT_CREDENTIALS
        form: dict[str, Any] = {"grant_type": grant}
        s = _scope(scope)
        if s:
            form["scope"] = s
        auds = _values(audience)
        if auds:
            form["audience"] = auds
        return form, self.dpop_key, self.dpop_key

    def _exchange_args(self, subject: Token | str, actor: Token | str | None, scope: ScopeArg, audience: AudienceArg,
                       requested_token_type: str | None) -> tuple[dict[str, Any], Key | None, Key | None]:
        if isinstance(subject, str):
            subject = self.adopt(subject)
        form: dict[str, Any] = {
            "grant_type": GRANT_TOKEN_EXCHANGE,
            "subject_token": subject.value,
            "subject_token_type": TOKEN_TYPE_ACCESS_TOKEN,
        }
        actor_value = actor.value if isinstance(actor, Token) else actor
        if actor_value:
            form["actor_token"] = actor_value
            form["actor_token_type"] = TOKEN_TYPE_JWT
        s = _scope(scope)
        if s:
            form["scope"] = s
        auds = _values(audience)
        if auds:
            form["audience"] = auds
        if requested_token_type:
            form["requested_token_type"] = requested_token_type
        proof_key = subject.key or self.dpop_key
        child_key = None
        if not actor_value or _holder_of(actor_value) == self.client_id:
            child_key = proof_key  # the holder stays: the child is bound to the same key
        return form, proof_key, child_key

    def _identity_args(self) -> tuple[dict[str, Any], Key | None, Key | None]:
        return self._mint_args(None, self.issuer, GRANT_CLIENT_CREDENTIALS)

    def _id_jag_args(self, id_jag: str, scope: ScopeArg, audience: AudienceArg) -> tuple[dict[str, Any], Key | None, Key | None]:
        if not isinstance(id_jag, str) or not id_jag.strip():
            raise ValueError("an ID-JAG redemption needs the ID-JAG (a compact JWT from the enterprise IdP)")
        form, proof_key, child_key = self._mint_args(scope, audience, GRANT_JWT_BEARER)
        form["assertion"] = id_jag.strip()
        return form, proof_key, child_key

    def _downstream_args(self, received: Token | str, audience: AudienceArg, scope: ScopeArg) -> tuple[dict[str, Any], Key | None, Key | None]:
        auds = _values(audience)
        if not auds:
            raise ValueError("an audience exchange names the downstream API (audience)")
        value = received.value if isinstance(received, Token) else received
        if not isinstance(value, str) or not value:
            raise ValueError("an audience exchange needs the token that was received")
        form: dict[str, Any] = {
            "grant_type": GRANT_TOKEN_EXCHANGE,
            "subject_token": value,
            "subject_token_type": TOKEN_TYPE_ACCESS_TOKEN,
            "audience": auds,
        }
        s = _scope(scope)
        if s:
            form["scope"] = s
        # No proof of the received token's key (the caller proved it to this
        # server); this client proves its own key, and the child is bound to it.
        return form, self.dpop_key, self.dpop_key


def _unreachable(e: httpx.HTTPError) -> OAuthError:
    """A transport failure as an OAuth error (``temporarily_unavailable``): the
    request and its form never appear in it."""
    return OAuthError(f"Mandate could not be reached ({type(e).__name__})", error="temporarily_unavailable")


def _holder_of(actor: str) -> str:
    """The holder an actor token names, read unverified (only to know whether
    the child stays with this client; the server decides)."""
    try:
        info = decode_unverified(actor)
    except ValueError:
        return ""
    return info.holder


class Client(_Base):
    """A synchronous Mandate client for one registered client.

    >>> with Client("https://mandate.example", "orchestrator", secret, dpop_key=Key.generate()) as orch:
    ...     root = orch.mint()
    ...     agent = orch.spawn_agent("summarizer-7f3a")
    ...     tok = orch.delegate_to_agent(root, agent, scope="db:read:orders", audience="https://orders.example")
    ...     orch.revoke(root)

    Discovery happens on first use (or call :meth:`discover` to fail early).
    A workload with no secret at all starts from its platform's token
    (:meth:`from_workload_token`).
    """

    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str | None = None,
        *,
        client_key: Key | None = None,
        dpop_key: Key | None = None,
        http: httpx.Client | None = None,
        timeout: float = 30.0,
        now: Callable[[], float] | None = None,
        _workload: _WorkloadToken | None = None,
    ) -> None:
        super().__init__(issuer, client_id, client_secret, client_key=client_key, dpop_key=dpop_key, now=now, workload=_workload)
        self._own_http = http is None
        self._http = http or httpx.Client(timeout=timeout, follow_redirects=False)

    @classmethod
    def from_workload_token(
        cls,
        issuer: str,
        token_file: TokenFile | None = None,
        *,
        token: Callable[[], str] | None = None,
        dpop_key: Key | None = None,
        http: httpx.Client | None = None,
        timeout: float = 30.0,
        now: Callable[[], float] | None = None,
    ) -> Client:
        """A client with no secret: the workload its platform's token names
        (a Kubernetes projected service-account token, a SPIFFE JWT-SVID, a
        CI job's OIDC token, from an issuer Mandate's ``workload_issuers``
        configure).

        Give exactly one of ``token_file``, a path read afresh at every
        request (so a token the platform rotates in place is picked up;
        surrounding white space stripped), and ``token``, a callable
        returning the current token. A file that cannot be read raises
        :class:`~mandate_auth.errors.WorkloadTokenError` naming the path.

        :meth:`mint` is then the JWT bearer grant (RFC 7523 §2.1) with the
        token as the assertion and no other client authentication; every
        other request (:meth:`identity`, the exchanges, :meth:`revoke`,
        :meth:`redeem_id_jag`) sends it as the ``client_assertion``
        (§2.2). Mandate maps it to a registered client or a generated
        identity (``k8s/agents/researcher``): :attr:`client_id` is None
        until Mandate issues the client a token, then that token's
        ``client_id`` (each token the client keeps for itself updates it,
        so a rotation to another identity shows). The token never appears
        in errors or reprs.

        >>> with Client.from_workload_token("https://mandate.example",
        ...         "/var/run/secrets/tokens/mandate", dpop_key=Key.generate()) as me:
        ...     root = me.mint(scope="db:read:orders", audience="https://orders.example")
        """
        return cls(issuer, None, dpop_key=dpop_key, http=http, timeout=timeout, now=now,  # type: ignore[arg-type]
                   _workload=_WorkloadToken(token_file, token))

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def discover(self) -> Metadata:
        """Read the issuer's RFC 8414 metadata (its ``issuer`` must be this
        client's issuer exactly)."""
        try:
            r = self._http.get(metadata_url(self.issuer), follow_redirects=False, headers={"Accept": "application/json"})
        except httpx.HTTPError as e:
            raise DiscoveryError(f"discovery at {self.issuer}: {type(e).__name__}") from None
        return self._accept_metadata(r.status_code, r.content[:MAX_ANSWER])

    def _metadata(self) -> Metadata:
        return self._md or self.discover()

    def _send(self, req: dict[str, Any]) -> httpx.Response:
        try:
            return self._http.request(**req)
        except httpx.HTTPError as e:
            raise _unreachable(e) from None

    def _token(self, form: dict[str, Any], proof_key: Key | None, child_key: Key | None) -> Token:
        md = self._metadata()
        req = self._token_request(md, form, proof_key, None)
        resp = self._send(req)
        nonce = self._nonce_retry(resp) if proof_key is not None else None
        if nonce:
            req = self._token_request(md, form, proof_key, nonce)
            resp = self._send(req)
        return self._read_token(resp, child_key, req["data"])

    def mint(self, scope: ScopeArg = None, audience: AudienceArg = None) -> Token:
        """A root token for the client itself (``client_credentials``; for a
        workload client, the JWT bearer grant with its platform token, and
        the root never outlives that token); no scope or audience means
        everything it is registered for (a workload: its rule's ceiling).
        Bound to the client's ``dpop_key`` when it has one."""
        return self._token(*self._mint_args(scope, audience))

    def identity(self) -> Token:
        """The client's identity token (audience = the issuer): no scope, a few
        minutes, useless at every resource server. Hand it to whoever
        delegates to this client: it names the next holder."""
        return self._token(*self._identity_args())

    def redeem_id_jag(self, id_jag: str, *, scope: ScopeArg = None, audience: AudienceArg = None) -> Token:
        """A root on behalf of a user from the enterprise IdP's ID-JAG
        (``typ: oauth-id-jag+jwt``, draft-ietf-oauth-identity-assertion-authz-grant,
        MCP's enterprise-managed authorization), made for this client: the
        JWT bearer grant with this client's own authentication (the client
        lists ``jwt_bearer`` in its ``grants``). The root's ``sub`` is the
        user, ``sub_iss`` the IdP, its holder this client; its scope the
        requested ∩ the ID-JAG's ∩ the registration's (None: all of that),
        its audience within the ID-JAG's ``resource``. Delegate from it as
        from any root. An ID-JAG is single-use: a second redemption, like
        every refusal of the assertion, is
        :class:`~mandate_auth.errors.InvalidGrantError`."""
        return self._token(*self._id_jag_args(id_jag, scope, audience))

    def exchange(self, subject: Token | str, *, actor: Token | str | None = None, scope: ScopeArg = None,
                 audience: AudienceArg = None, requested_token_type: str | None = None) -> Token:
        """Trade ``subject`` for a narrower child (RFC 8693). ``actor`` names the
        new holder (a registered agent's identity token or bound token, or an
        ephemeral agent's ``agent+jwt``); without it the token stays with this
        client (down-scoping). A bound subject is exchanged with a proof of its key."""
        return self._token(*self._exchange_args(subject, actor, scope, audience, requested_token_type))

    def delegate(self, subject: Token | str, actor: Token | str, *, scope: ScopeArg = None, audience: AudienceArg = None) -> Token:
        """Delegate ``subject`` to the registered agent whose ``actor`` token
        (its :meth:`identity`, or a token bound to its key) names it."""
        return self.exchange(subject, actor=actor, scope=scope, audience=audience)

    def downscope(self, subject: Token | str, *, scope: ScopeArg = None, audience: AudienceArg = None) -> Token:
        """A narrower child of ``subject`` that this client keeps."""
        return self.exchange(subject, scope=scope, audience=audience)

    def delegate_to_agent(self, subject: Token | str, agent: Agent, *, scope: ScopeArg = None, audience: AudienceArg = None,
                          ttl: float = 120.0) -> Token:
        """Hand ``subject`` to an ephemeral agent: the child is held by the
        agent's name and bound to its key, which only the agent has."""
        actor = agent.actor_token(self.issuer, ttl, self.time())
        t = self.exchange(subject, actor=actor, scope=scope, audience=audience)
        t.key = agent.key
        return t

    def exchange_for_downstream(self, received: Token | str, audience: AudienceArg, scope: ScopeArg = None) -> Token:
        """The audience exchange (no token passthrough), for a resource server
        registered with ``serves`` — an MCP server, say: trade ``received``,
        a token a caller sent to an audience this client serves (verified on
        the way in), for this client's own token to the downstream API
        ``audience``, instead of forwarding the caller's. The new token keeps
        the caller's subject, adds this client to its actor chain and
        descends from ``received`` (revoking it revokes the new one);
        ``scope`` narrows it (None: all that ``received`` grants within this
        client's registration). No proof of ``received``'s key is sent; with
        a ``dpop_key`` this client proves its own and the new token is bound
        to it. Refusals are :class:`~mandate_auth.errors.OAuthError`
        subclasses (``invalid_request`` for an audience this client does not
        serve, ``invalid_scope``, ``invalid_target``)."""
        return self._token(*self._downstream_args(received, audience, scope))

    def revoke(self, token: Token | str) -> None:
        """Revoke a token this client holds, or one delegated from such a token,
        and with it everything delegated from it (RFC 7009)."""
        value = token.value if isinstance(token, Token) else token
        req = self._revoke_request(self._metadata(), value)
        resp = self._send(req)
        if resp.status_code != 200:
            raise self._error(resp, req["data"])


class AsyncClient(_Base):
    """The ``async`` twin of :class:`Client` (same operations, awaited)."""

    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str | None = None,
        *,
        client_key: Key | None = None,
        dpop_key: Key | None = None,
        http: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
        now: Callable[[], float] | None = None,
        _workload: _WorkloadToken | None = None,
    ) -> None:
        super().__init__(issuer, client_id, client_secret, client_key=client_key, dpop_key=dpop_key, now=now, workload=_workload)
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    @classmethod
    def from_workload_token(
        cls,
        issuer: str,
        token_file: TokenFile | None = None,
        *,
        token: Callable[[], str] | None = None,
        dpop_key: Key | None = None,
        http: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
        now: Callable[[], float] | None = None,
    ) -> AsyncClient:
        """:meth:`Client.from_workload_token`, for ``await``: the file is read
        at every request (a small local read, done in the loop's thread), and
        ``token`` is a plain callable."""
        return cls(issuer, None, dpop_key=dpop_key, http=http, timeout=timeout, now=now,  # type: ignore[arg-type]
                   _workload=_WorkloadToken(token_file, token))

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def discover(self) -> Metadata:
        try:
            r = await self._http.get(metadata_url(self.issuer), follow_redirects=False, headers={"Accept": "application/json"})
        except httpx.HTTPError as e:
            raise DiscoveryError(f"discovery at {self.issuer}: {type(e).__name__}") from None
        return self._accept_metadata(r.status_code, r.content[:MAX_ANSWER])

    async def _metadata(self) -> Metadata:
        return self._md or await self.discover()

    async def _send(self, req: dict[str, Any]) -> httpx.Response:
        try:
            return await self._http.request(**req)
        except httpx.HTTPError as e:
            raise _unreachable(e) from None

    async def _token(self, form: dict[str, Any], proof_key: Key | None, child_key: Key | None) -> Token:
        md = await self._metadata()
        req = self._token_request(md, form, proof_key, None)
        resp = await self._send(req)
        nonce = self._nonce_retry(resp) if proof_key is not None else None
        if nonce:
            req = self._token_request(md, form, proof_key, nonce)
            resp = await self._send(req)
        return self._read_token(resp, child_key, req["data"])

    async def mint(self, scope: ScopeArg = None, audience: AudienceArg = None) -> Token:
        return await self._token(*self._mint_args(scope, audience))

    async def identity(self) -> Token:
        return await self._token(*self._identity_args())

    async def redeem_id_jag(self, id_jag: str, *, scope: ScopeArg = None, audience: AudienceArg = None) -> Token:
        """:meth:`Client.redeem_id_jag`, awaited."""
        return await self._token(*self._id_jag_args(id_jag, scope, audience))

    async def exchange(self, subject: Token | str, *, actor: Token | str | None = None, scope: ScopeArg = None,
                       audience: AudienceArg = None, requested_token_type: str | None = None) -> Token:
        return await self._token(*self._exchange_args(subject, actor, scope, audience, requested_token_type))

    async def delegate(self, subject: Token | str, actor: Token | str, *, scope: ScopeArg = None, audience: AudienceArg = None) -> Token:
        return await self.exchange(subject, actor=actor, scope=scope, audience=audience)

    async def downscope(self, subject: Token | str, *, scope: ScopeArg = None, audience: AudienceArg = None) -> Token:
        return await self.exchange(subject, scope=scope, audience=audience)

    async def delegate_to_agent(self, subject: Token | str, agent: Agent, *, scope: ScopeArg = None, audience: AudienceArg = None,
                                ttl: float = 120.0) -> Token:
        actor = agent.actor_token(self.issuer, ttl, self.time())
        t = await self.exchange(subject, actor=actor, scope=scope, audience=audience)
        t.key = agent.key
        return t

    async def exchange_for_downstream(self, received: Token | str, audience: AudienceArg, scope: ScopeArg = None) -> Token:
        """:meth:`Client.exchange_for_downstream`, awaited."""
        return await self._token(*self._downstream_args(received, audience, scope))

    async def revoke(self, token: Token | str) -> None:
        value = token.value if isinstance(token, Token) else token
        req = self._revoke_request(await self._metadata(), value)
        resp = await self._send(req)
        if resp.status_code != 200:
            raise self._error(resp, req["data"])


