"""DPoP (RFC 9449): checking proofs of possession at a resource server, and
the replay cache. Making proofs is :meth:`mandate_auth.jose.Key.proof`.

The checks and their order are Go's (``tokens/dpop.go``): exactly one compact
JWS of at most 8 KiB; ``typ`` ``dpop+jwt``; no ``crit``; an allowed
asymmetric ``alg``; a public, asymmetric, usable ``jwk`` in the header whose
RFC 7638 thumbprint is the token's ``cnf.jkt`` — compared *before* the
signature is checked or the ``jti`` recorded, so proofs by other keys cost a
hash and cannot fill the replay cache; the signature; ``jti``, ``htm``,
``htu`` (query and fragment ignored, scheme and host case-insensitive,
default ports implied), ``iat`` within the max age and at most 5 s ahead, not
before the verifier started, ``ath`` the token's hash, the server nonce when
one is required, and the ``jti`` never seen before for that key.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from . import _gojson as gj
from ._b64 import B64Error, b64decode, b64encode
from .claims import NumericDateError, numeric_date
from .errors import InvalidDPoPProofError, UseDPoPNonceError, excerpt
from .jose import ALGORITHMS, JWKError, PublicKey, _public_from_jwk, htu, thumbprint

__all__ = ["MAX_PROOF_SIZE", "ReplayCache", "DPoPProof", "verify_dpop", "access_token_hash", "same_htu", "htu"]

MAX_PROOF_SIZE = 8 << 10


def access_token_hash(token: str) -> str:
    """The ``ath`` of a proof for ``token``: base64url(SHA-256(token))."""
    return b64encode(hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest())


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PATH_OK = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~!$&'()*+,;=:@[]%/")
_ESCAPE_KEEP = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~$&+,/:;=@")
_CTL = re.compile(r"[\x00-\x1f\x7f]")


def _escaped_path(path: str) -> str:
    # Go's URL.EscapedPath: the path as sent when it is validly encoded, else
    # the canonical escaping of what it decodes to.
    if all(c in _PATH_OK for c in path):
        return path
    raw = unquote_to_bytes(path)
    return "".join(chr(b) if b in _ESCAPE_KEEP else f"%{b:02X}" for b in raw)


def _norm(u: str) -> str | None:
    if _CTL.search(u):
        return None
    try:
        p = urlsplit(u)
    except ValueError:
        return None
    if _BAD_ESCAPE.search(p.path) or _BAD_ESCAPE.search(p.query):
        return None
    host = p.netloc.rpartition("@")[2].lower()
    if host == "":
        return None
    scheme = p.scheme.lower()
    port = host.rpartition("]")[2].partition(":")[2] if host.startswith("[") else host.partition(":")[2]
    if port and not port.isdigit():
        return None
    if (scheme == "https" and host.endswith(":443")) or (scheme == "http" and host.endswith(":80")):
        host = host[: host.rfind(":")]
    return scheme + "://" + host + (_escaped_path(p.path) or "/")


def same_htu(proof_htu: str, target: str) -> bool:
    """Whether a proof's ``htu`` names the request URL ``target``."""
    a, b = _norm(proof_htu), _norm(target)
    return a is not None and a == b


class ReplayCache:
    """Proof ``jti``s remembered until their proofs would be too old anyway.
    Bounded: full of live entries, it refuses new ones (fails closed) rather
    than forget one it must remember."""

    def __init__(self, max_entries: int = 1 << 18) -> None:
        self._max = max_entries if max_entries > 0 else 1 << 18
        self._m: dict[str, float] = {}
        self._last_purge = float("-inf")
        self._lock = threading.Lock()

    def seen(self, key: str, expires: float, now: float) -> bool:
        """Record ``key`` until ``expires``; True when it was there already
        (or the cache is full of live entries)."""
        with self._lock:
            exp = self._m.get(key)
            if exp is not None and now < exp:
                return True
            m = self._m
            if len(m) >= self._max and now - self._last_purge >= 1:
                for k in [k for k, e in m.items() if not now < e]:
                    del m[k]
                self._last_purge = now
            if len(m) >= self._max:
                return True
            m[key] = expires
            return False

    def __len__(self) -> int:
        return len(self._m)


@dataclass(frozen=True, slots=True)
class DPoPProof:
    """A verified proof: the thumbprint of the key that made it, and its jti."""

    jkt: str
    jti: str


_JWK_CACHE: dict[tuple[tuple[str, Any], ...], tuple[PublicKey, str] | None] = {}


def _bad(msg: str) -> InvalidDPoPProofError:
    return InvalidDPoPProofError("invalid DPoP proof: " + msg)


def _proof_key(raw: Any) -> tuple[PublicKey, str]:
    """The public key in a proof's ``jwk`` header and its thumbprint."""
    if raw is None:
        raise _bad("no jwk header")
    if type(raw) is not dict:
        raise _bad("jwk header is not a JWK")
    members = raw
    ident = tuple(sorted((k, v) for k, v in members.items() if isinstance(v, str)))
    if len(ident) == len(members) and ident in _JWK_CACHE:
        hit = _JWK_CACHE[ident]
        if hit is None:
            raise _bad("jwk header is not a usable public key")
        return hit
    try:
        if "d" in members or not isinstance(members.get("kty"), str):
            raise JWKError("private or not a JWK")
        key, kind = _public_from_jwk(members)
        pk = PublicKey(kid="", alg=None, key=key, kind=kind)
        if not any(pk.fits(a) for a in ALGORITHMS):
            raise JWKError("unusable")
        out: tuple[PublicKey, str] | None = (pk, thumbprint(key))
    except (JWKError, KeyError, TypeError, ValueError):
        out = None
    if len(ident) == len(members):
        if len(_JWK_CACHE) >= 1024:
            _JWK_CACHE.clear()
        _JWK_CACHE[ident] = out
    if out is None:
        raise _bad("jwk header must be a public asymmetric key of a usable type")
    return out


def verify_dpop(
    proof: str,
    *,
    method: str,
    url: str,
    now: float,
    access_token: str = "",
    nonce: str = "",
    jkt: str = "",
    max_age: float = 60.0,
    not_before: float | None = None,
    replay: ReplayCache | None = None,
) -> DPoPProof:
    """Check a DPoP proof for a request (``method``, ``url``) and record its
    ``jti`` in ``replay``. ``jkt``, when set, is the only key the proof may be
    made with; ``not_before`` is when the replay cache started remembering.
    Raises :class:`InvalidDPoPProofError` (:class:`UseDPoPNonceError` when the
    nonce is missing or stale)."""
    if not isinstance(proof, str) or len(proof) > MAX_PROOF_SIZE or proof.count(".") != 2:
        raise _bad("not a compact JWS")
    dot1, dot2 = proof.index("."), proof.rindex(".")
    try:
        hdoc = gj.loads(b64decode(proof[:dot1]))
        if hdoc is None:
            hdoc = {}
        if type(hdoc) is not dict:
            raise gj.GoJSONError("not an object")
        h: dict[str, Any] = {"typ": gj.string(hdoc.get("typ")), "alg": gj.string(hdoc.get("alg")), "jwk": hdoc.get("jwk"),
             "crit": gj.string_list(hdoc.get("crit"))}
    except (B64Error, gj.GoJSONError):
        raise _bad("header is not a base64url JSON object without ambiguous members") from None
    if h["typ"] != "dpop+jwt":
        raise _bad("typ must be dpop+jwt")
    if h["crit"] is not None:
        raise _bad("crit names extensions this verifier does not understand")
    alg = h["alg"]
    if alg not in ALGORITHMS:
        raise _bad(f"algorithm {excerpt(alg)!r} not allowed")
    key, proof_jkt = _proof_key(h["jwk"])
    if jkt and proof_jkt != jkt:
        raise _bad("the proof is not made with the key the token is bound to")
    if not key.fits(alg):
        raise _bad(f"{alg} does not fit the proof's key")
    try:
        sig = b64decode(proof[dot2 + 1 :])
    except B64Error:
        raise _bad("signature does not verify") from None
    if not key.verify(alg, proof[:dot2].encode("utf-8", "surrogatepass"), sig):
        raise _bad("signature does not verify")
    try:
        cdoc = gj.loads(b64decode(proof[dot1 + 1 : dot2]))
        if cdoc is None:
            cdoc = {}
        if type(cdoc) is not dict:
            raise gj.GoJSONError("not an object")
        g = cdoc.get
        c: dict[str, Any] = {"jti": gj.string(g("jti")), "htm": gj.string(g("htm")), "htu": gj.string(g("htu")), "iat": numeric_date(g("iat")),
             "ath": gj.string(g("ath")), "nonce": gj.string(g("nonce"))}
    except (B64Error, NumericDateError, gj.GoJSONError):
        raise _bad("claims are malformed or have ambiguous members") from None
    if c["jti"] == "" or len(c["jti"].encode("utf-8", "surrogatepass")) > 256 or c["iat"] == 0:
        raise _bad("claims must be a JSON object with jti, htm, htu and iat")
    if c["htm"] != method:
        raise _bad(f"htm {excerpt(c['htm'])!r} is not the request's method {excerpt(method)}")
    if not same_htu(c["htu"], url):
        raise _bad(f"htu {excerpt(c['htu'])!r} is not the request's URL")
    iat = c["iat"]
    if iat < now - max_age or iat > now + 5:
        raise _bad("proof too old or from the future")
    if not_before is not None and iat < not_before - 5:
        raise _bad("proof made before this server started, so it could be a replay its cache never saw: make a new one")
    if access_token and c["ath"] != access_token_hash(access_token):
        raise _bad("ath does not match the access token")
    if nonce and c["nonce"] != nonce:
        raise UseDPoPNonceError(nonce)
    if replay is not None and replay.seen(proof_jkt + "/" + c["jti"], iat + max_age + 5, now):
        raise _bad("proof replayed")
    return DPoPProof(jkt=proof_jkt, jti=c["jti"])
