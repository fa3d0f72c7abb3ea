"""The offline verifier: verdicts, the cache, revocation, DPoP, nonces."""

from __future__ import annotations

from typing import Any

import pytest

from mandate_auth import (
    ExpiredTokenError,
    InvalidDPoPProofError,
    InvalidSignatureError,
    Key,
    KeySet,
    MalformedTokenError,
    NotYetValidError,
    RevocationSet,
    RevokedTokenError,
    SenderConstrainedError,
    StaleRevocationsError,
    UseDPoPNonceError,
    Verifier,
    WrongAudienceError,
    WrongIssuerError,
)
from mandate_auth.dpop import ReplayCache, same_htu, verify_dpop
from mandate_auth.jose import PublicKey
from mandate_auth.verifier import VerifiedCache

from .conftest import AUDIENCE, ISSUER, NOW, token


class Clock:
    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def key() -> Key:
    return Key.generate("EdDSA")


@pytest.fixture
def clock() -> Clock:
    return Clock()


def verifier(key: Key, clock: Clock, revoked: RevocationSet | None = None, **kw: Any) -> Verifier:
    return Verifier(issuer=ISSUER, audience=AUDIENCE, keys=key.public_jwks(), revocations=revoked or RevocationSet(),
                    now=clock, public_url="https://orders.example", **kw)


def test_a_good_token_gives_its_chain(key: Key, clock: Clock) -> None:
    v = verifier(key, clock)
    c = v.verify(token(key, act={"sub": "researcher", "act": {"sub": "x"}}, lineage=["root-jti"]))
    assert (c.subject, c.subject_issuer, c.holder) == ("orchestrator", ISSUER, "researcher")
    assert c.actors == ("researcher", "x") and c.lineage == ("root-jti",) and c.root == "root-jti" and c.depth == 1
    assert c.has_scope("db:read:orders") and not c.has_scope("db:write:x") and c.covers("db:read:a", "db:read:b")
    assert c.ancestry() == ("root-jti", "child-jti") and not c.bound


@pytest.mark.parametrize(
    "over,err",
    [
        ({"iss": "https://evil.example"}, WrongIssuerError),
        ({"aud": ["https://other.example"]}, WrongAudienceError),
        ({"aud": None}, WrongAudienceError),
        ({"nbf": NOW + 60}, NotYetValidError),
        ({"iat": NOW + 6}, NotYetValidError),
        ({"exp": NOW - 5}, ExpiredTokenError),
        ({"exp": ...}, MalformedTokenError),
        ({"sub_iss": ...}, MalformedTokenError),
        ({"scope": "db:read:* "}, MalformedTokenError),
        ({"lineage": ["a", "a"]}, MalformedTokenError),
        ({"lineage": ["child-jti"]}, MalformedTokenError),
        ({"act": ..., "lineage": []}, MalformedTokenError),
        ({"act": {"sub": "researcher", "act": {"sub": "a", "act": {"sub": "b"}}}}, MalformedTokenError),
        ({"act": {"sub": "researcher", "act": {"sub": ""}}}, MalformedTokenError),
        ({"cnf": {}}, MalformedTokenError),
        ({"exp": 2**53 + 1}, MalformedTokenError),
    ],
)
def test_each_fault_has_its_verdict(key: Key, clock: Clock, over: dict[str, Any], err: type) -> None:
    with pytest.raises(err):
        verifier(key, clock).verify(token(key, **over))


def test_leeway_is_bounded(key: Key, clock: Clock) -> None:
    v = verifier(key, clock)
    assert v.verify(token(key, exp=NOW - 4))  # within the default 5 s
    assert v.verify(token(key, nbf=NOW + 5, jti="j2"))
    with pytest.raises(ValueError):
        verifier(key, clock, leeway=61)
    with pytest.raises(ValueError):
        Verifier(issuer=ISSUER, audience=ISSUER + "/", keys=key.public_jwks(), revocations=RevocationSet())


def test_the_cache_still_checks_expiry_and_revocation(key: Key, clock: Clock) -> None:
    revs = RevocationSet()
    v = verifier(key, clock, revs)
    t = token(key)
    v.verify(t)
    assert v.cache_stats()[0] == 1
    v.verify(t)
    revs.add("root-jti")
    with pytest.raises(RevokedTokenError) as e:
        v.verify(t)
    assert e.value.jti == "root-jti" and e.value.ancestor and e.value.verdict == "revoked"
    t2 = token(key, jti="other", lineage=["r2"])
    v.verify(t2)
    clock.t = NOW + 305
    with pytest.raises(ExpiredTokenError):
        v.verify(t2)


def test_a_cached_token_is_checked_again_once_its_key_is_gone(key: Key, clock: Clock) -> None:
    class Keys:
        def __init__(self) -> None:
            self.keys = {key.kid: PublicKey(key.kid, "EdDSA", Key.from_pem(key.export_private_pem())._priv.public_key(), "OKP")}  # noqa: SLF001

        def resolve(self, kid: str) -> PublicKey | None:
            return self.keys.get(kid)

    ks = Keys()
    v = Verifier(issuer=ISSUER, audience=AUDIENCE, keys=ks, revocations=RevocationSet(), now=clock)
    t = token(key)
    v.verify(t)
    ks.keys.clear()
    with pytest.raises(InvalidSignatureError):
        v.verify(t)


def test_stale_revocations_fail_closed(key: Key, clock: Clock) -> None:
    class Stale(RevocationSet):
        def check_current(self, now: float) -> None:
            raise StaleRevocationsError("revocation data is stale")

    v = verifier(key, clock, Stale())
    with pytest.raises(StaleRevocationsError) as e:
        v.verify(token(key))
    assert e.value.error == "temporarily_unavailable"


def bound(key: Key, holder: Key) -> str:
    return token(key, cnf={"jkt": holder.jkt})


def test_dpop(key: Key, clock: Clock) -> None:
    holder = Key.generate("ES256")
    v = verifier(key, clock)
    t = bound(key, holder)
    url = "https://orders.example/orders"
    with pytest.raises(SenderConstrainedError):
        v.verify(t)
    p = holder.proof("GET", url + "?page=2", access_token=t, now=NOW)
    assert v.verify_dpop(t, p, "GET", v.request_url("/orders")).jkt == holder.jkt
    with pytest.raises(InvalidDPoPProofError):  # replayed
        v.verify_dpop(t, p, "GET", url)
    for proof, method, u in [
        (holder.proof("POST", url, access_token=t, now=NOW), "GET", url),
        (holder.proof("GET", "https://api.example/orders", access_token=t, now=NOW), "GET", url),
        (holder.proof("GET", url, now=NOW), "GET", url),
        (holder.proof("GET", url, access_token=t + "x", now=NOW), "GET", url),
        (holder.proof("GET", url, access_token=t, now=NOW - 61), "GET", url),
        (holder.proof("GET", url, access_token=t, now=NOW + 6), "GET", url),
        (Key.generate().proof("GET", url, access_token=t, now=NOW), "GET", url),
        ("not-a-proof", "GET", url),
    ]:
        with pytest.raises(InvalidDPoPProofError):
            v.verify_dpop(t, proof, method, u)
    unbound = token(key, jti="u")
    with pytest.raises(InvalidDPoPProofError):
        v.verify_dpop(unbound, holder.proof("GET", url, access_token=unbound, now=NOW), "GET", url)


def test_proofs_made_before_the_verifier_started_are_refused(key: Key, clock: Clock) -> None:
    holder = Key.generate()
    v = verifier(key, clock)
    clock.t = NOW + 30
    t = bound(key, holder)
    url = "https://orders.example/x"
    with pytest.raises(InvalidDPoPProofError):
        v.verify_dpop(t, holder.proof("GET", url, access_token=t, now=NOW - 6), "GET", url)
    assert v.verify_dpop(t, holder.proof("GET", url, access_token=t, now=NOW - 4), "GET", url)


def test_nonces(key: Key, clock: Clock) -> None:
    holder = Key.generate()
    v = verifier(key, clock, dpop_nonce=True)
    t = bound(key, holder)
    url = "https://orders.example/x"
    with pytest.raises(UseDPoPNonceError) as e:
        v.verify_dpop(t, holder.proof("GET", url, access_token=t, now=NOW), "GET", url)
    assert e.value.nonce == v.dpop_nonce() and e.value.error == "use_dpop_nonce" and e.value.verdict == "invalid_dpop_proof"
    assert v.verify_dpop(t, holder.proof("GET", url, access_token=t, nonce=e.value.nonce, now=NOW), "GET", url)
    clock.t = NOW + 61  # the previous minute's nonce is still good
    assert v.verify_dpop(t, holder.proof("GET", url, access_token=t, nonce=e.value.nonce, now=NOW + 61), "GET", url)
    clock.t = NOW + 185
    with pytest.raises(UseDPoPNonceError):
        v.verify_dpop(t, holder.proof("GET", url, access_token=t, nonce=e.value.nonce, now=NOW + 185), "GET", url)


def test_no_public_url_accepts_no_bound_token(key: Key, clock: Clock) -> None:
    v = Verifier(issuer=ISSUER, audience=AUDIENCE, keys=key.public_jwks(), revocations=RevocationSet(), now=clock)
    with pytest.raises(InvalidDPoPProofError):
        v.request_url("/x")
    for bad in ("orders.example", "https://orders.example/api", "https://u@orders.example", "ftp://orders.example"):
        with pytest.raises(ValueError):
            Verifier(issuer=ISSUER, audience=AUDIENCE, keys=key.public_jwks(), revocations=RevocationSet(), public_url=bad)


@pytest.mark.parametrize(
    "htu,target,want",
    [
        ("https://Orders.Example/orders", "https://orders.example/orders", True),
        ("HTTPS://orders.example:443/orders", "https://orders.example/orders", True),
        ("http://orders.example:80/", "http://orders.example", True),
        ("https://orders.example/orders?x=1#f", "https://orders.example/orders", True),
        ("https://orders.example/Orders", "https://orders.example/orders", False),
        ("https://orders.example:8443/orders", "https://orders.example/orders", False),
        ("http://orders.example/orders", "https://orders.example/orders", False),
        ("/orders", "https://orders.example/orders", False),
        ("https://orders.example/a%zz", "https://orders.example/a%zz", False),
        ("https://orders.example/a b", "https://orders.example/a%20b", True),
        ("https://orders.example/a%41", "https://orders.example/aA", False),
        ("https://orders.example:x/", "https://orders.example/", False),
        ("https://orders.example/\x00", "https://orders.example/\x00", False),
    ],
)
def test_same_htu(htu: str, target: str, want: bool) -> None:
    assert same_htu(htu, target) is want


def test_replay_cache_fails_closed_when_full() -> None:
    rc = ReplayCache(2)
    assert not rc.seen("a", 10, 0) and not rc.seen("b", 10, 0)
    assert rc.seen("a", 10, 1)
    assert rc.seen("c", 10, 1)  # full of live entries: refused
    assert not rc.seen("c", 20, 11)  # the old ones have expired and are purged


def test_verified_cache_is_bounded() -> None:
    c = VerifiedCache(8, 1 << 20)
    for i in range(100):
        c.put(f"t{i}", i, 100, 0)
    assert len(c) <= 8 and c.get("t99", 0) == 99
    assert c.get("t99", 100) is None
    small = VerifiedCache(100, 8 * 1024)
    small.put("x" * 4096, 1, 100, 0)  # over an eighth of the room: not cached
    assert len(small) == 0
    off = VerifiedCache(-1)
    off.put("t", 1, 100, 0)
    assert len(off) == 0


def test_verify_dpop_directly_reports_the_key() -> None:
    k = Key.generate("ES256")
    p = k.proof("GET", "https://a.example/x", now=NOW)
    got = verify_dpop(p, method="GET", url="https://a.example/x", now=NOW, replay=ReplayCache())
    assert got.jkt == k.jkt


def test_keyset_from_verifier_mapping(key: Key) -> None:
    assert isinstance(KeySet.from_jwks(key.public_jwks()), KeySet)
