"""The strict JWS layer: base64url, keys and key sets, alg confusion."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mandate_auth import Key, KeySet
from mandate_auth._b64 import B64Error, b64decode, b64encode
from mandate_auth.errors import InvalidSignatureError, MalformedTokenError
from mandate_auth.jose import JWKError, UnknownKeyError, parse_jwk, public_jwk_members, thumbprint, verify_compact

from .conftest import sign


def test_strict_base64url() -> None:
    assert b64decode("AQAB") == b"\x01\x00\x01"
    assert b64decode("AQ") == b"\x01"
    assert b64decode("AQ\nAB\r") == b"\x01\x00\x01"  # Go skips line breaks too
    for bad in ("AQ==", "AR", "AQB", "A", "AQ+B", "AQ/B", "A B", "é"):
        with pytest.raises(B64Error):
            b64decode(bad)
    assert b64encode(b"\xff\xfe") == "__4"


def test_rfc7638_thumbprint() -> None:
    # RFC 7638 §3.1's example key and thumbprint.
    n = ("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMs"
         "tn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5"
         "hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
    pk = parse_jwk({"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"})
    assert thumbprint(pk.key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_keyset_skips_what_go_skips() -> None:
    ed, ec = Key.generate("EdDSA"), Key.generate("ES256")
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    doc = {"keys": [
        ed.public_jwk(),
        ec.public_jwk(),
        dict(ed.public_jwk(kid=False)),  # no kid
        {**ed.public_jwk(), "kid": "enc", "use": "enc"},
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
        {**public_jwk_members(weak), "kid": "weak"},
        {**ec.public_jwk(), "kid": "misfit", "alg": "EdDSA"},
        {"kty": "EC", "crv": "P-256", "x": ec.public_jwk()["x"], "y": ec.public_jwk()["x"], "kid": "off-curve"},
    ]}
    ks = KeySet.from_jwks(doc)
    assert ks.kids() == {ed.kid, ec.kid}
    with pytest.raises(JWKError):
        KeySet.from_jwks({"keys": [{"kty": "oct", "k": "eA", "kid": "x"}]})


def _verify(token: str, ks: KeySet) -> bytes:
    return verify_compact(token, ks, "at+jwt")[0]


def test_alg_is_fixed_by_the_key() -> None:
    ed = Key.generate("EdDSA")
    ks = KeySet.from_jwks(ed.public_jwks())
    ok = sign(ed, {"alg": "EdDSA", "kid": ed.kid, "typ": "at+jwt"}, {"a": 1})
    assert json.loads(_verify(ok, ks)) == {"a": 1}
    signing_input = ok.rsplit(".", 1)[0]
    # none, HMAC keyed with the public key, an alg the key does not fix: all invalid_signature.
    for alg in ("none", "HS256", "ES256", "RS256", "", "eddsa"):
        bad = sign(ed, {"alg": alg, "kid": ed.kid, "typ": "at+jwt"}, {"a": 1})
        with pytest.raises(InvalidSignatureError):
            _verify(bad, ks)
    with pytest.raises(InvalidSignatureError):
        _verify(signing_input + ".", ks)
    with pytest.raises(UnknownKeyError):
        _verify(sign(ed, {"alg": "EdDSA", "kid": "other", "typ": "at+jwt"}, {}), ks)
    with pytest.raises(UnknownKeyError):
        _verify(sign(ed, {"alg": "EdDSA", "typ": "at+jwt"}, {}), ks)
    # A key from the token itself selects nothing.
    attacker = Key.generate("EdDSA")
    forged = sign(attacker, {"alg": "EdDSA", "kid": ed.kid, "typ": "at+jwt", "jwk": attacker.public_jwk()}, {})
    with pytest.raises(InvalidSignatureError):
        _verify(forged, ks)


def test_header_faults_after_the_signature_are_malformed() -> None:
    ed = Key.generate("EdDSA")
    ks = KeySet.from_jwks(ed.public_jwks())
    base = {"alg": "EdDSA", "kid": ed.kid, "typ": "at+jwt"}
    for extra in ({"crit": ["x"]}, {"b64": False}, {"typ": "JWT"}, {"typ": None}):
        with pytest.raises(MalformedTokenError):
            _verify(sign(ed, {**base, **extra}, {}), ks)
    assert _verify(sign(ed, {**base, "typ": "Application/AT+JWT"}, {}), ks) == b"{}"
    for payload in (b"[]", b"", b"null"):
        with pytest.raises(MalformedTokenError):
            _verify(sign(ed, base, payload), ks)
    for t in ("", "a", "a.b", ".b.c", "a.b.c.d", "x" * (16 << 10 + 1)):
        with pytest.raises(MalformedTokenError):
            _verify(t, ks)


def test_rsa_and_ecdsa_families() -> None:
    priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**public_jwk_members(priv.public_key()), "kid": "rsa"}
    ks = KeySet.from_jwks({"keys": [jwk]})
    for alg, pad in (("RS256", padding.PKCS1v15()), ("PS256", padding.PSS(padding.MGF1(hashes.SHA256()), 32))):
        si = b64encode(json.dumps({"alg": alg, "kid": "rsa", "typ": "at+jwt"}).encode()) + "." + b64encode(b"{}")
        t = si + "." + b64encode(priv.sign(si.encode(), pad, hashes.SHA256()))
        assert _verify(t, ks) == b"{}"
    es = Key.generate("ES256")
    ks = KeySet.from_jwks(es.public_jwks())
    t = sign(es, {"alg": "ES256", "kid": es.kid, "typ": "at+jwt"}, {})
    assert _verify(t, ks) == b"{}"
    head, _, sig = t.rpartition(".")
    with pytest.raises(InvalidSignatureError):  # a DER signature is not a JWS one
        _verify(head + "." + b64encode(b64decode(sig) + b"\x00"), ks)


def test_key_export_is_explicit() -> None:
    k = Key.generate("ES256")
    assert "d" not in k.public_jwk()
    assert "PRIVATE" not in repr(k) and k.jkt in repr(k)
    again = Key.from_pem(k.export_private_pem(b"pw"), b"pw")
    assert again.jkt == k.jkt
    with pytest.raises(ValueError):
        Key.generate("RS256")
