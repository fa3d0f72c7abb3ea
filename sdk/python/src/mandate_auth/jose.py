"""A small, strict JOSE layer over ``cryptography``: JWKs and key sets, the
compact-JWS verification every Mandate token goes through, and the keys an
agent signs with.

Why hand-written rather than a JOSE library: the verifier must accept and
refuse exactly what Mandate's Go verifier does, in the same order, and each
refusal must map to one verdict. Every check is here, in Go's order
(``tokens/jws.go``):

1. at most 16 KiB; three dot-separated parts;
2. the protected header is strict base64url of a JSON object;
3. ``alg`` is an asymmetric algorithm (never ``none``, never HMAC), a ``kid``
   names a key of the set, the key's own ``alg`` (when published) is the
   header's, and the algorithm fits the key's type and curve;
4. the signature verifies;
5. no ``crit``, no ``b64``; ``typ`` is the one expected;
6. the payload is strict base64url of a JSON object.

Keys never come from the token (``jku``, ``x5u``, ``x5c`` and ``jwk`` select
nothing).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _json_str
from typing import Any, Callable, Iterable, Mapping, Protocol
from urllib.parse import urlsplit, urlunsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from . import _gojson as gj
from ._b64 import B64Error, b64decode, b64decode_lenient, b64encode
from .errors import InvalidSignatureError, MalformedTokenError, excerpt

__all__ = [
    "ALGORITHMS",
    "MAX_TOKEN_SIZE",
    "PublicKey",
    "KeyResolver",
    "KeySet",
    "Key",
    "DPoPKey",
    "JWKError",
    "parse_jwk",
    "thumbprint",
    "verify_compact",
    "Header",
    "UnknownKeyError",
    "WrongTypeError",
]

MAX_TOKEN_SIZE = 16 << 10
"""The largest token a verifier parses; a longer one is malformed."""

ALGORITHMS = ("EdDSA", "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
"""The only JWS algorithms anything here verifies: asymmetric ones."""

_EC_CURVES: dict[str, tuple[ec.EllipticCurve, str, int, Any]] = {
    "P-256": (ec.SECP256R1(), "ES256", 32, hashes.SHA256),
    "P-384": (ec.SECP384R1(), "ES384", 48, hashes.SHA384),
    "P-521": (ec.SECP521R1(), "ES512", 66, hashes.SHA512),
}
_CURVE_BY_NAME = {v[0].name: k for k, v in _EC_CURVES.items()}
_RSA_HASH: dict[str, Callable[[], hashes.HashAlgorithm]] = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


class UnknownKeyError(InvalidSignatureError):
    """No key of the set has the token's ``kid`` (a verifier may refetch its
    keys once, rate-limited, and try again)."""


class JWKError(ValueError):
    """A JWK that is not a usable public signature key."""


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A verification key: its ``kid``, the one algorithm it may be used with
    (``alg``, None when the publisher did not say: then the algorithm must fit
    the key's type), and the ``cryptography`` key."""

    kid: str
    alg: str | None
    key: Any
    kind: str  # "OKP", "P-256", "P-384", "P-521" or "RSA"

    def fits(self, alg: str) -> bool:
        """Whether ``alg`` can be used with this key (Go's algFitsKey)."""
        k = self.kind
        if k == "OKP":
            return alg == "EdDSA"
        if k == "RSA":
            return alg[:2] in ("RS", "PS") and alg in ALGORITHMS and 2048 <= self.key.key_size <= 8192
        c = _EC_CURVES.get(k)
        return c is not None and c[1] == alg

    def verify(self, alg: str, data: bytes, sig: bytes) -> bool:
        """Whether ``sig`` is a valid ``alg`` signature of ``data`` (``alg`` must fit)."""
        try:
            if self.kind == "OKP":
                self.key.verify(sig, data)
            elif self.kind == "RSA":
                h = _RSA_HASH[alg[2:]]()
                pad = padding.PKCS1v15() if alg[:2] == "RS" else padding.PSS(padding.MGF1(h), padding.PSS.AUTO)
                self.key.verify(sig, data, pad, h)
            else:
                _, _, size, h = _EC_CURVES[self.kind]
                if len(sig) != 2 * size:
                    return False
                r, s = int.from_bytes(sig[:size], "big"), int.from_bytes(sig[size:], "big")
                self.key.verify(encode_dss_signature(r, s), data, ec.ECDSA(h()))
            return True
        except (InvalidSignature, ValueError, TypeError, OverflowError):
            return False


def _public_from_jwk(jwk: Mapping[str, Any]) -> tuple[Any, str]:
    """The ``cryptography`` public key of a JWK and its kind; private members
    are ignored. Raises :class:`JWKError`."""
    kty = jwk.get("kty")
    try:
        if kty == "OKP":
            if jwk.get("crv") != "Ed25519":
                raise JWKError("only Ed25519 OKP keys sign")
            x = b64decode_lenient(jwk.get("x"))  # type: ignore[arg-type]
            if len(x) != 32:
                raise JWKError("an Ed25519 key is 32 bytes")
            return ed25519.Ed25519PublicKey.from_public_bytes(x), "OKP"
        if kty == "EC":
            crv = jwk.get("crv")
            if crv not in _EC_CURVES:
                raise JWKError("unsupported curve")
            px = int.from_bytes(b64decode_lenient(jwk.get("x")), "big")  # type: ignore[arg-type]
            py = int.from_bytes(b64decode_lenient(jwk.get("y")), "big")  # type: ignore[arg-type]
            return ec.EllipticCurvePublicNumbers(px, py, _EC_CURVES[str(crv)][0]).public_key(), str(crv)
        if kty == "RSA":
            n = int.from_bytes(b64decode_lenient(jwk.get("n")), "big")  # type: ignore[arg-type]
            e = int.from_bytes(b64decode_lenient(jwk.get("e")), "big")  # type: ignore[arg-type]
            return rsa.RSAPublicNumbers(e, n).public_key(), "RSA"
    except B64Error as err:
        raise JWKError("a key member is not base64") from err
    except (ValueError, TypeError, OverflowError) as err:
        raise JWKError("not a valid public key") from err
    raise JWKError("unsupported key type")


def parse_jwk(jwk: Mapping[str, Any], *, kid: str | None = None) -> PublicKey:
    """A public signature key from a JWK. Its ``alg``, when present, must be an
    allowed algorithm that fits the key; without one, some allowed algorithm
    must fit (an RSA key of 2048 to 8192 bits, say). Raises :class:`JWKError`."""
    key, kind = _public_from_jwk(jwk)
    alg = jwk.get("alg")
    pk = PublicKey(kid=kid if kid is not None else str(jwk.get("kid", "")), alg=alg or None, key=key, kind=kind)
    if alg:
        if alg not in ALGORITHMS or not pk.fits(alg):
            raise JWKError("its alg does not fit the key")
    elif not any(pk.fits(a) for a in ALGORITHMS):
        raise JWKError("no allowed algorithm fits the key")
    return pk


def _coord(n: int, size: int) -> str:
    return b64encode(n.to_bytes(size, "big"))


def public_jwk_members(key: Any) -> dict[str, str]:
    """The RFC 7638 required members of a ``cryptography`` public key, canonical."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"crv": "Ed25519", "kty": "OKP", "x": b64encode(raw)}
    if isinstance(key, ec.EllipticCurvePublicKey):
        crv = _CURVE_BY_NAME[key.curve.name]
        size = _EC_CURVES[crv][2]
        point = key.public_numbers()
        return {"crv": crv, "kty": "EC", "x": _coord(point.x, size), "y": _coord(point.y, size)}
    if isinstance(key, rsa.RSAPublicKey):
        nums = key.public_numbers()
        e = nums.e.to_bytes((nums.e.bit_length() + 7) // 8, "big")
        n = nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")
        return {"e": b64encode(e), "kty": "RSA", "n": b64encode(n)}
    raise JWKError("unsupported key type")


def thumbprint(key: Any) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public key, base64url: a key's
    ``kid`` at Mandate and the ``cnf.jkt`` of tokens bound to it."""
    members = public_jwk_members(key)
    canon = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return b64encode(hashlib.sha256(canon).digest())


class KeyResolver(Protocol):
    """Finds a verification key by kid; never a key the token names."""

    def resolve(self, kid: str) -> PublicKey | None: ...


class KeySet:
    """Keys from a JWKS document. Keys without a kid, for encryption
    (``use: enc``), symmetric, malformed, too weak, or whose ``alg`` does not
    fit them are skipped (Go's SetResolver); a set with none left is an error."""

    def __init__(self, keys: Iterable[PublicKey] = ()) -> None:
        self._keys: dict[str, PublicKey] = {k.kid: k for k in keys}

    @classmethod
    def from_jwks(cls, jwks: Mapping[str, Any] | str | bytes, *, allow_empty: bool = False) -> "KeySet":
        doc = json.loads(jwks) if isinstance(jwks, (str, bytes)) else jwks
        if not isinstance(doc, Mapping):
            raise JWKError("a JWKS is a JSON object")
        entries = doc.get("keys") if "keys" in doc else [doc]
        if not isinstance(entries, list):
            raise JWKError('a JWKS has a "keys" array')
        keys = []
        for jwk in entries:
            if not isinstance(jwk, Mapping):
                continue
            kid = jwk.get("kid")
            if not isinstance(kid, str) or not kid or jwk.get("use") == "enc" or jwk.get("kty") == "oct":
                continue
            try:
                keys.append(parse_jwk(jwk, kid=kid))
            except JWKError:
                continue
        if not keys and not allow_empty:
            raise JWKError("JWKS has no usable signature key")
        return cls(keys)

    def resolve(self, kid: str) -> PublicKey | None:
        return self._keys.get(kid)

    def kids(self) -> set[str]:
        return set(self._keys)

    def without(self, kids: Iterable[str]) -> "KeySet":
        drop = set(kids)
        return KeySet(k for kid, k in self._keys.items() if kid not in drop)

    def withdrawn(self, nxt: "KeySet") -> bool:
        """Whether some key of this set is absent from ``nxt``."""
        return any(kid not in nxt._keys for kid in self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, kid: object) -> bool:
        return kid in self._keys


# ---------------------------------------------------------------------------
# Compact JWS verification


@dataclass(frozen=True, slots=True)
class Header:
    alg: str
    kid: str
    typ: str
    crit: list[str] | None
    b64: bool | None


_HEADER_CACHE: dict[str, Header | None] = {}
_HEADER_CACHE_MAX = 256


def _parse_header(seg: str) -> Header | None:
    """The protected header of a segment, or None when it is not strict
    base64url of a JSON object without ambiguous members. Headers repeat (one
    per signing key), so the last few are remembered."""
    h = _HEADER_CACHE.get(seg)
    if h is not None or seg in _HEADER_CACHE:
        return h
    try:
        doc = gj.loads(b64decode(seg))
        if doc is None:
            doc = {}  # Go reads null into an empty header
        if type(doc) is not dict:
            raise gj.GoJSONError("not an object")
        g = doc.get
        h = Header(alg=gj.string(g("alg")), kid=gj.string(g("kid")), typ=gj.string(g("typ")), crit=gj.string_list(g("crit")),
                   b64=gj.boolean_ptr(g("b64")))
    except (B64Error, gj.GoJSONError):
        h = None
    if len(seg) <= 1024:
        if len(_HEADER_CACHE) >= _HEADER_CACHE_MAX:
            _HEADER_CACHE.clear()
        _HEADER_CACHE[seg] = h
    return h


def same_type(got: str, want: str) -> bool:
    """``typ`` values compare case-insensitively, ``application/`` implied."""
    got, want = got.lower(), want.lower()
    if got.startswith("application/"):
        got = got[12:]
    if want.startswith("application/"):
        want = want[12:]
    return got == want


class WrongTypeError(MalformedTokenError):
    """A wrong ``typ``, or a ``crit``/``b64`` header (a malformed Mandate token)."""


def verify_compact(token: str, keys: KeyResolver, want_type: str = "") -> tuple[bytes, Header]:
    """Check a compact JWS against ``keys`` and return its payload and header.
    Raises :class:`MalformedTokenError` or :class:`InvalidSignatureError`
    (with the reason), in Go's order."""
    if len(token) > MAX_TOKEN_SIZE:
        raise MalformedTokenError(f"malformed token: longer than {MAX_TOKEN_SIZE} bytes")
    dot1 = token.find(".")
    dot2 = token.rfind(".")
    if dot1 <= 0 or dot2 == dot1 or token.find(".", dot1 + 1, dot2) >= 0:
        raise MalformedTokenError("malformed token: not a JWS compact serialization")
    h = _parse_header(token[:dot1])
    if h is None:
        raise MalformedTokenError("malformed token: header is not a base64url JSON object")
    if h.alg not in ALGORITHMS:
        raise InvalidSignatureError(f"invalid token signature: signature algorithm not allowed: {excerpt(h.alg)!r}")
    if h.kid == "":
        raise UnknownKeyError("invalid token signature: unknown signing key: no kid in header")
    k = keys.resolve(h.kid)
    if k is None:
        raise UnknownKeyError(f"invalid token signature: unknown signing key: kid {excerpt(h.kid)!r}")
    if k.alg is not None and k.alg != h.alg:
        raise InvalidSignatureError(f"invalid token signature: key {excerpt(k.kid)!r} is for {k.alg}, token says {h.alg}")
    if not k.fits(h.alg):
        raise InvalidSignatureError(f"invalid token signature: {h.alg} does not fit key {excerpt(k.kid)!r}")
    try:
        sig = b64decode(token[dot2 + 1 :])
    except B64Error:
        raise MalformedTokenError("malformed token: signature is not base64url") from None
    if not k.verify(h.alg, token[:dot2].encode("utf-8", "surrogatepass"), sig):
        raise InvalidSignatureError("invalid token signature")
    if h.crit or h.b64 is not None:
        raise WrongTypeError("malformed token: wrong token type: unsupported critical header or b64 option")
    if want_type and not same_type(h.typ, want_type):
        raise WrongTypeError(f"malformed token: wrong token type: typ {excerpt(h.typ)!r}, want {want_type!r}")
    try:
        payload = b64decode(token[dot1 + 1 : dot2])
    except B64Error:
        raise MalformedTokenError("malformed token: payload is not base64url") from None
    if not payload or payload[0] != 0x7B:  # '{'
        raise MalformedTokenError("malformed token: payload is not a JSON object")
    return payload, h


# ---------------------------------------------------------------------------
# Private keys: what an agent signs with


_HTU_CACHE: dict[str, str] = {}


def htu(url: str) -> str:
    """The ``htu`` of a proof for a request to ``url``: without query,
    fragment or user information."""
    h = _HTU_CACHE.get(url)
    if h is None:
        p = urlsplit(url)
        h = urlunsplit((p.scheme, p.netloc.rpartition("@")[2], p.path, "", ""))
        if len(_HTU_CACHE) >= 256:
            _HTU_CACHE.clear()
        _HTU_CACHE[url] = h
    return h


class Key:
    """A private signing key (Ed25519 or ECDSA P-256) held in this process: the
    key a DPoP-bound token is bound to, an ephemeral agent's identity, or a
    client's ``private_key_jwt`` key. Its public half and thumbprint can be
    shared; the private half leaves the process only through
    :meth:`export_private_pem`."""

    __slots__ = ("_priv", "alg", "jkt", "kid", "_jwk", "_headers")

    def __init__(self, private_key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey, *, kid: str | None = None) -> None:
        if isinstance(private_key, ed25519.Ed25519PrivateKey):
            self.alg = "EdDSA"
        elif isinstance(private_key, ec.EllipticCurvePrivateKey) and isinstance(private_key.curve, ec.SECP256R1):
            self.alg = "ES256"
        else:
            raise TypeError("a Key is an Ed25519 or an ECDSA P-256 private key")
        self._priv = private_key
        pub = private_key.public_key()
        self._jwk = public_jwk_members(pub)
        self.jkt = thumbprint(pub)
        self.kid = kid or self.jkt
        self._headers: dict[str, str] = {}

    @classmethod
    def generate(cls, alg: str = "EdDSA") -> "Key":
        """A fresh key for ``alg`` (``EdDSA`` or ``ES256``)."""
        if alg in ("EdDSA", ""):
            return cls(ed25519.Ed25519PrivateKey.generate())
        if alg == "ES256":
            return cls(ec.generate_private_key(ec.SECP256R1()))
        raise ValueError(f"key algorithm {alg!r} is not supported (use EdDSA or ES256)")

    @classmethod
    def from_pem(cls, pem: bytes, password: bytes | None = None, *, kid: str | None = None) -> "Key":
        """A key loaded from PKCS#8 PEM."""
        k = serialization.load_pem_private_key(pem, password)
        return cls(k, kid=kid)  # type: ignore[arg-type]

    def export_private_pem(self, password: bytes | None = None) -> bytes:
        """The private key as PKCS#8 PEM: the one way it leaves the process."""
        enc: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        )
        return self._priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)

    def public_jwk(self, *, kid: bool = True) -> dict[str, str]:
        """The public JWK (with ``kid``, ``alg`` and ``use: sig`` unless kid=False)."""
        d = dict(self._jwk)
        if kid:
            d.update(kid=self.kid, alg=self.alg, use="sig")
        return d

    def public_jwks(self) -> dict[str, list[dict[str, str]]]:
        """A JWKS of this key alone, e.g. to register a ``private_key_jwt`` client."""
        return {"keys": [self.public_jwk()]}

    def sign(self, data: bytes) -> bytes:
        """A raw JWS signature of ``data``."""
        if self.alg == "EdDSA":
            return self._priv.sign(data)  # type: ignore[call-arg]
        der = self._priv.sign(data, ec.ECDSA(hashes.SHA256()))  # type: ignore[call-arg]
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def _header(self, typ: str, embed_jwk: bool) -> str:
        cache_key = typ + ("|jwk" if embed_jwk else "|kid")
        h = self._headers.get(cache_key)
        if h is None:
            hd: dict[str, Any] = {"alg": self.alg, "typ": typ}
            if embed_jwk:
                hd["jwk"] = self._jwk
            else:
                hd["kid"] = self.kid
            h = b64encode(json.dumps(hd, separators=(",", ":")).encode())
            self._headers[cache_key] = h
        return h

    def sign_jwt(self, typ: str, claims: Mapping[str, Any], *, embed_jwk: bool = True) -> str:
        """A compact JWS of ``claims`` with ``typ`` and the public ``jwk`` (or,
        with embed_jwk=False, the ``kid``) in its protected header."""
        signing_input = self._header(typ, embed_jwk) + "." + b64encode(json.dumps(claims, separators=(",", ":")).encode())
        return signing_input + "." + b64encode(self.sign(signing_input.encode()))

    def proof(self, method: str, url: str, *, access_token: str | None = None, nonce: str | None = None, now: float | None = None) -> str:
        """A DPoP proof (RFC 9449) for a request: ``htm`` the method, ``htu`` the
        URL without query and fragment, ``iat``, a fresh ``jti``, and ``ath``
        when made for an access token (at a resource server)."""
        # The claims are written directly (the hot path of every DPoP call);
        # jti and ath are base64url, iat an integer, the rest JSON-escaped.
        body = '{"jti":"%s","htm":%s,"htu":%s,"iat":%d' % (
            b64encode(os.urandom(16)), _json_str(method), _json_str(htu(url)), int(time.time() if now is None else now))
        if access_token:
            body += ',"ath":"%s"' % b64encode(hashlib.sha256(access_token.encode("utf-8", "surrogatepass")).digest())
        if nonce:
            body += ',"nonce":' + _json_str(nonce)
        signing_input = self._header("dpop+jwt", True) + "." + b64encode((body + "}").encode())
        return signing_input + "." + b64encode(self.sign(signing_input.encode()))

    def __repr__(self) -> str:
        return f"Key(alg={self.alg!r}, jkt={self.jkt!r})"


DPoPKey = Key
"""The key a DPoP-bound token is bound to (an alias of :class:`Key`)."""
