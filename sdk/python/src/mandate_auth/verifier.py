"""The resource-server side: verify a presented token locally — signature
against Mandate's keys, then the chain rules (structure, scope grammar,
issuer, audience, time), then revocation of the token and every ancestor —
and answer with a :class:`~mandate_auth.chain.Chain` or a typed
:class:`~mandate_auth.errors.TokenError` saying why not.

Two ways to make one, as in Go: :meth:`Verifier.discover` follows a running
Mandate (RFC 8414 discovery, the JWKS refetched on an unknown ``kid`` at most
every 10 s, the revocation feed long-polled in the background, fail closed
when stale); the constructor is offline, over any key set and any revocation
source, so tests, tools and the conformance vectors need no server.

Invariants: no key ever comes from the token; a cached verification is
reused only while its key is still trusted, and revocation and expiry are
checked on every use; a bound token is never accepted as a bearer token;
revocation data older than its bound refuses everything.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from typing import Any, Callable, Mapping, Protocol, Sequence
from urllib.parse import urlsplit

from . import _gojson as gj
from ._b64 import b64encode
from .chain import MAX_DEPTH, MAX_LEEWAY, Chain, check_claims, check_expiry
from .claims import parse_claims
from .dpop import ReplayCache, verify_dpop
from .errors import (
    InvalidDPoPProofError,
    MalformedTokenError,
    RevokedTokenError,
    SenderConstrainedError,
    UseDPoPNonceError,
)
from .jose import KeyResolver, KeySet, UnknownKeyError, verify_compact

__all__ = [
    "DEFAULT_LEEWAY",
    "DEFAULT_MAX_STALENESS",
    "RevocationSource",
    "RevocationSet",
    "VerifiedCache",
    "Verifier",
]

DEFAULT_LEEWAY = 5.0
DEFAULT_MAX_STALENESS = 30.0
DEFAULT_CACHE_BYTES = 32 << 20


class RevocationSource(Protocol):
    """Where a verifier learns revocations: the feed, or a set the caller keeps."""

    def first_revoked(self, jtis: Sequence[str]) -> str | None:
        """The first of ``jtis`` known to be revoked, or None."""
        ...

    def check_current(self, now: float) -> None:
        """Raise :class:`~mandate_auth.errors.StaleRevocationsError` when the
        source cannot vouch for its data now."""
        ...


class RevocationSet:
    """A revocation source the caller fills: revoked jtis, always current
    (offline verification, tests, the conformance vectors)."""

    def __init__(self, jtis: Sequence[str] = ()) -> None:
        self._set = set(jtis)

    def add(self, *jtis: str) -> None:
        self._set.update(jtis)

    def first_revoked(self, jtis: Sequence[str]) -> str | None:
        s = self._set
        for j in jtis:
            if j in s:
                return j
        return None

    def check_current(self, now: float) -> None:
        return None

    def __contains__(self, jti: object) -> bool:
        return jti in self._set


class VerifiedCache:
    """What was verified about tokens, keyed by the token itself (only tokens
    that verified are stored), bounded in entries and in bytes; an entry is
    never returned after the expiry it was stored with."""

    ENTRY_OVERHEAD = 512

    def __init__(self, max_entries: int = 10000, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self._max = max(max_entries, 0)
        self._max_bytes = max_bytes if max_bytes > 0 else DEFAULT_CACHE_BYTES
        self._m: dict[str, tuple[Any, float, int]] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, token: str, now: float) -> Any:
        e = self._m.get(token)
        if e is None or not now < e[1]:
            return None
        return e[0]

    def put(self, token: str, value: Any, exp: float, now: float) -> None:
        if self._max <= 0 or not now < exp:
            return
        cost = 2 * len(token) + self.ENTRY_OVERHEAD
        if cost > self._max_bytes // 8:
            return
        with self._lock:
            m = self._m
            old = m.pop(token, None)
            if old is not None:
                self._bytes -= old[2]
            if len(m) >= self._max or self._bytes + cost > self._max_bytes:
                for k in [k for k, e in m.items() if not now < e[1]]:
                    self._bytes -= m.pop(k)[2]
                # Then the oldest entries, until an eighth of the room is free.
                while m and (len(m) >= self._max - self._max // 8 or self._bytes + cost > self._max_bytes - self._max_bytes // 8):
                    self._bytes -= m.pop(next(iter(m)))[2]
            m[token] = (value, exp, cost)
            self._bytes += cost

    def clear(self) -> None:
        with self._lock:
            self._m.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._m)

    @property
    def bytes(self) -> int:
        return self._bytes


class _Nonces:
    """Stateless server nonces: an HMAC of the minute under a key made at
    start; the current and the previous minute's are accepted."""

    def __init__(self) -> None:
        self._key = os.urandom(32)

    def _at(self, w: int) -> str:
        b = w.to_bytes(8, "big", signed=True)
        return b64encode(b + hmac.new(self._key, b, hashlib.sha256).digest()[:16])

    def valid(self, now: float) -> tuple[str, str]:
        w = int(now // 60)
        return self._at(w), self._at(w - 1)


def _public_url(u: str) -> str:
    p = urlsplit(u)
    if p.scheme not in ("http", "https") or not p.netloc or p.path.strip("/") or p.query or "@" in p.netloc:
        raise ValueError(f"public_url {u!r} must be a scheme and host, such as https://orders.example")
    return f"{p.scheme}://{p.netloc}"


class Verifier:
    """Checks Mandate tokens locally; safe to share between threads and tasks.

    Offline (Go's ``verifier.New``)::

        v = Verifier(issuer="https://mandate.example", audience="https://orders.example",
                     keys=jwks_dict, revocations=RevocationSet(["jti-1"]))

    Online: :meth:`discover`.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        keys: KeyResolver | Mapping[str, Any],
        revocations: RevocationSource,
        leeway: float = DEFAULT_LEEWAY,
        max_depth: int = MAX_DEPTH,
        cache_size: int = 10000,
        cache_max_bytes: int = DEFAULT_CACHE_BYTES,
        public_url: str | None = None,
        dpop_max_age: float = 60.0,
        replay_cache_size: int = 1 << 18,
        dpop_nonce: bool = False,
        realm: str = "",
        resource_metadata_url: str = "",
        now: Callable[[], float] | None = None,
    ) -> None:
        if not issuer or not audience:
            raise ValueError("a Verifier needs issuer and audience")
        if audience.rstrip("/") == issuer.rstrip("/"):
            raise ValueError(
                f"audience {audience!r} is Mandate's own issuer, the audience of identity tokens (which grant nothing): "
                "use this resource server's own identifier"
            )
        if leeway <= 0:
            leeway = DEFAULT_LEEWAY
        if leeway > MAX_LEEWAY:
            raise ValueError(f"leeway {leeway}s exceeds the maximum {MAX_LEEWAY}s")
        if max_depth <= 0 or max_depth > MAX_DEPTH:
            max_depth = MAX_DEPTH
        self.issuer = issuer
        self.audience = audience
        self._auds = (audience,)
        self._keys: KeyResolver = KeySet.from_jwks(keys) if isinstance(keys, Mapping) else keys
        self._revs = revocations
        self._leeway = float(leeway)
        self._max_depth = max_depth
        self._now = now or time.time
        self._cache = VerifiedCache(10000 if cache_size == 0 else cache_size, cache_max_bytes)
        self.public_url = _public_url(public_url) if public_url else ""
        self._dpop_max_age = dpop_max_age if dpop_max_age > 0 else 60.0
        self._replay = ReplayCache(replay_cache_size)
        self._nonces = _Nonces() if dpop_nonce else None
        self.realm = realm
        self.resource_metadata_url = resource_metadata_url
        self._started = self._now()
        self._refresher = getattr(self._keys, "refresh", None)
        self._wd: Any = self._keys if hasattr(self._keys, "withdrawals") else None
        self._closer: Callable[[], None] | None = None

    # -- online -------------------------------------------------------------

    @classmethod
    def discover(
        cls,
        issuer: str,
        *,
        audience: str,
        client_id: str,
        client_secret: str,
        max_staleness: float = DEFAULT_MAX_STALENESS,
        feed_wait: float = 15.0,
        jwks_refresh_interval: float = 10.0,
        jwks_max_age: float = 300.0,
        on_sync: Callable[[BaseException | None], None] | None = None,
        verify_tls: bool | str = True,
        **options: Any,
    ) -> "Verifier":
        """A verifier that follows a running Mandate: RFC 8414 metadata (its
        issuer must be ``issuer``), the JWKS, and the revocation feed,
        synced once and then long-polled in a background thread (``close``
        stops it). ``client_id``/``client_secret`` are a ``resource_server``
        client's. Raises :class:`~mandate_auth.errors.DiscoveryError`, or
        :class:`~mandate_auth.errors.FeedCredentialsError` when the feed
        refuses the credentials; any other failed first sync only makes
        verification fail closed until a sync succeeds."""
        from .remote import follow

        if not client_id or not client_secret:
            raise ValueError("discover needs a resource_server client_id and client_secret for the revocation feed")
        leeway = options.get("leeway", DEFAULT_LEEWAY)
        if not audience or audience.rstrip("/") == issuer.rstrip("/"):
            raise ValueError("audience must be this resource server's own identifier, not Mandate's issuer")
        keys, feed, close = follow(
            issuer,
            client_id=client_id,
            client_secret=client_secret,
            leeway=leeway if leeway and leeway > 0 else DEFAULT_LEEWAY,
            max_staleness=max_staleness,
            feed_wait=feed_wait,
            jwks_refresh_interval=jwks_refresh_interval,
            jwks_max_age=jwks_max_age,
            on_sync=on_sync,
            verify_tls=verify_tls,
            now=options.get("now"),
        )
        try:
            v = cls(issuer=issuer, audience=audience, keys=keys, revocations=feed, **options)
        except BaseException:
            close()
            raise
        v._closer = close
        return v

    def close(self) -> None:
        """Stop following the feed (a verifier made by :meth:`discover`); it
        soon refuses everything as stale."""
        if self._closer is not None:
            self._closer()
            self._closer = None

    def __enter__(self) -> "Verifier":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def revocations(self) -> RevocationSource:
        return self._revs

    # -- verification ---------------------------------------------------------

    def verify(self, token: str) -> Chain:
        """Verify a bearer token and return its chain. A token bound to a key
        (DPoP) is refused here (:class:`SenderConstrainedError`): it is only
        accepted by :meth:`verify_dpop` with a proof of that key."""
        c = self._verify_token(token, True)
        if c.jkt:
            raise SenderConstrainedError("token is sender-constrained: it can only be used with a proof of its key (DPoP)")
        return c

    def verify_dpop(self, token: str, proof: str, method: str, url: str) -> Chain:
        """Verify a DPoP-bound token presented with ``proof`` for the request
        (``method``, ``url`` — built from configuration, never from the
        request's Host header: see :meth:`request_url`)."""
        c = self._verify_token(token, True)
        return self._check_proof(c, token, proof, method, url)

    async def averify(self, token: str) -> Chain:
        """:meth:`verify` for async code: a JWKS refetch after an unknown kid
        runs in a worker thread instead of blocking the event loop."""
        c = await self._averify_token(token)
        if c.jkt:
            raise SenderConstrainedError("token is sender-constrained: it can only be used with a proof of its key (DPoP)")
        return c

    async def averify_dpop(self, token: str, proof: str, method: str, url: str) -> Chain:
        """:meth:`verify_dpop` for async code."""
        c = await self._averify_token(token)
        return self._check_proof(c, token, proof, method, url)

    async def _averify_token(self, token: str) -> Chain:
        try:
            return self._verify_token(token, False)
        except UnknownKeyError:
            if self._refresher is None:
                raise
            import anyio.to_thread

            if not await anyio.to_thread.run_sync(self._refresher):
                raise
            return self._verify_token(token, False)

    def _check_proof(self, c: Chain, token: str, proof: str, method: str, url: str) -> Chain:
        if not c.jkt:
            raise InvalidDPoPProofError("invalid DPoP proof: the token is not bound to a key; send it as a Bearer token")
        now = self._now()
        kw = dict(method=method, url=url, now=now, access_token=token, jkt=c.jkt, max_age=self._dpop_max_age,
                  not_before=self._started, replay=self._replay)
        if self._nonces is None:
            verify_dpop(proof, **kw)  # type: ignore[arg-type]
            return c
        for n in self._nonces.valid(now):
            try:
                verify_dpop(proof, nonce=n, **kw)  # type: ignore[arg-type]
                return c
            except UseDPoPNonceError:
                continue
        raise UseDPoPNonceError(self._nonces.valid(now)[0])

    def _verify_token(self, token: str, refresh: bool) -> Chain:
        now = self._now()
        self._revs.check_current(now)
        e = self._cache.get(token, now)
        if e is not None and self._still_trusted(e):
            c: Chain = e[0]
            check_expiry(c.expires_at, now, self._leeway)
            jti = self._revs.first_revoked(e[3])
            if jti is not None:
                raise RevokedTokenError(jti, jti != c.jti)
            return c
        wd: int = self._wd.withdrawals if self._wd is not None else 0
        if not isinstance(token, str):
            raise MalformedTokenError("malformed token: not a string")
        try:
            payload, hdr = verify_compact(token, self._keys, "at+jwt")
        except UnknownKeyError:
            if not (refresh and self._refresher is not None and self._refresher()):
                raise
            payload, hdr = verify_compact(token, self._keys, "at+jwt")
        try:
            claims = parse_claims(payload)
        except gj.GoJSONError as err:
            raise MalformedTokenError(f"malformed token: claims: {err}") from None
        c = check_claims(claims, issuer=self.issuer, audiences=self._auds, now=now, leeway=self._leeway, max_depth=self._max_depth)
        ancestry = c.ancestry()
        jti = self._revs.first_revoked(ancestry)
        if jti is not None:
            raise RevokedTokenError(jti, jti != c.jti)
        self._cache.put(token, (c, hdr.kid, wd, ancestry), c.expires_at + self._leeway + 1, now)
        return c

    def _still_trusted(self, e: tuple[Chain, str, int, tuple[str, ...]]) -> bool:
        if self._wd is not None:
            return bool(self._wd.withdrawals == e[2])
        return self._keys.resolve(e[1]) is not None

    # -- helpers for middleware ----------------------------------------------------

    def request_url(self, path: str) -> str:
        """The URL a client addressed: the configured public URL's scheme and
        host and the path as the client sent it. Raises
        :class:`InvalidDPoPProofError` when no public URL is configured (such
        a verifier accepts no DPoP-bound token)."""
        if not self.public_url:
            raise InvalidDPoPProofError(
                "invalid DPoP proof: this resource server does not accept DPoP-bound tokens "
                "(no public_url is configured to check the proof's htu against)"
            )
        return self.public_url + path

    def dpop_nonce(self) -> str:
        """The nonce clients must currently put in their proofs ("" when none is required)."""
        return self._nonces.valid(self._now())[0] if self._nonces is not None else ""

    def revoked(self, jti: str) -> bool:
        """Whether the verifier currently knows ``jti`` to be revoked."""
        return self._revs.first_revoked((jti,)) is not None

    def cache_stats(self) -> tuple[int, int]:
        """The verified-token cache's size in entries and (about) bytes."""
        return len(self._cache), self._cache.bytes
