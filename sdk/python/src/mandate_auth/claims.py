"""The claims of a Mandate token and the one reading of a date.

A NumericDate is a JSON number within ±2^53 seconds; a fraction is read as
its whole second (rounded down, exactly — never through a float); ``0`` or
``null`` means the claim is absent; anything else (a string, a boolean, a
number beyond ±2^53) is malformed. This is Go's ``tokens/jwt`` reading, so
every verifier agrees on what a date means.

:func:`decode_unverified` reads a token's claims WITHOUT checking anything,
for display and a holder's bookkeeping; never decide anything on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import _gojson as gj
from ._b64 import B64Error, b64decode

__all__ = [
    "MAX_NUMERIC_DATE",
    "NumericDateError",
    "numeric_date",
    "Actor",
    "Claims",
    "parse_claims",
    "decode_unverified",
    "TokenInfo",
]

MAX_NUMERIC_DATE = 1 << 53


class NumericDateError(gj.GoJSONError):
    """Not a NumericDate: not a number, or beyond ±2^53."""


def numeric_date(v: Any, old: int = 0) -> int:
    """Read a decoded JSON value (from :mod:`._gojson`) as a NumericDate;
    ``null`` keeps ``old``."""
    if v is None:
        return old
    if isinstance(v, bool) or not isinstance(v, (int, gj.Num)):
        raise NumericDateError("a NumericDate must be a number")
    if isinstance(v, int):
        if -MAX_NUMERIC_DATE <= v <= MAX_NUMERIC_DATE:
            return v
        raise NumericDateError("NumericDate is beyond ±2^53")
    return _floor_number(v.text)


def _floor_number(s: str) -> int:
    """The floor of a JSON number's text, exactly, or NumericDateError: Go's
    ``jwt.floorNumber``, its shortcuts included. The exponent is bounded
    before any arithmetic, so 1e999999999 costs nothing, and the exact part
    works on the digits (never ``int`` of more than 16 of them), so a number
    of any length is read as Go's big.Rat reads it."""
    mant, exp = s, 0
    i = max(s.find("e"), s.find("E"))
    if i >= 0:
        mant, es = s[:i], s[i + 1 :]
        digits = es.lstrip("+-").lstrip("0")
        if len(digits) > 18:  # beyond int64 (or near it): out of range either way, as in Go
            exp = -(1 << 62) if es.startswith("-") else 1 << 62
        else:
            exp = int(digits or "0") * (-1 if es.startswith("-") else 1)
    neg = mant.startswith("-")
    if mant.strip("-0.") == "":
        return 0
    if exp > 400:  # beyond 10^400: out of range whatever the mantissa (Go's shortcut)
        if len(mant) < exp:
            raise NumericDateError("NumericDate is beyond ±2^53")
    elif exp < -20000:  # strictly between -1 and 1 (Go's shortcut)
        return -1 if neg else 0
    # |value| = digits · 10^e, digits without leading or trailing zeros.
    whole, _, frac = mant.lstrip("-").partition(".")
    d = (whole + frac).lstrip("0")
    e = exp - len(frac)
    t = d.rstrip("0")
    e += len(d) - len(t)
    n = len(t)
    mag = n - 1 + e  # 10^mag <= |value| < 10^(mag+1)
    if mag >= 16:  # at least 10^16 > 2^53
        raise NumericDateError("NumericDate is beyond ±2^53")
    if mag < 0:  # strictly between -1 and 1
        return -1 if neg else 0
    if e >= 0:
        ip, fractional = int(t + "0" * e), False  # at most 16 digits
    else:
        ip, fractional = int(t[: n + e]), True  # the last digit is not 0: a fraction remains
    if ip > MAX_NUMERIC_DATE or (ip == MAX_NUMERIC_DATE and fractional):
        raise NumericDateError("NumericDate is beyond ±2^53")
    return -(ip + fractional) if neg else ip


@dataclass
class Actor:
    """One link of the RFC 8693 §4.1 actor chain: ``sub`` acts at this link,
    ``act`` is the link before it (older), or None."""

    sub: str = ""
    iss: str = ""
    act: "Actor | None" = None

    def path(self) -> list[str]:
        """The actor subjects, newest first."""
        out: list[str] = []
        a: Actor | None = self
        while a is not None:
            out.append(a.sub)
            a = a.act
        return out

    def depth(self) -> int:
        n = 0
        a: Actor | None = self
        while a is not None:
            n += 1
            a = a.act
        return n


def _actor(v: Any, depth: int = 0) -> Actor | None:
    if v is None:
        return None
    if type(v) is not dict:
        raise gj.GoJSONError("act must be an object")
    g = v.get
    return Actor(gj.string(g("sub")), gj.string(g("iss")), _actor(g("act"), depth + 1))


@dataclass
class Claims:
    """The payload of a Mandate token, as Go's ``jwt.Claims`` reads it."""

    iss: str = ""
    sub: str = ""
    sub_iss: str = ""
    aud: list[str] | None = None
    client_id: str = ""
    scope: str = ""
    iat: int = 0
    nbf: int = 0
    exp: int = 0
    jti: str = ""
    act: Actor | None = None
    lineage: list[str] | None = None
    cnf: dict[str, str] | None = field(default=None)
    may_act: Actor | None = None

    @property
    def jkt(self) -> str:
        """The thumbprint of the key the token is bound to, or ""."""
        return self.cnf.get("jkt", "") if self.cnf is not None else ""

    @property
    def root(self) -> str:
        return self.lineage[0] if self.lineage else self.jti


def _audience(v: Any) -> list[str] | None:
    if type(v) is str:
        return [v]
    if v is None:
        return None
    if type(v) is not list:
        raise gj.GoJSONError('"aud" must be a string or an array of strings')
    return gj.string_list(v)


def _cnf(v: Any) -> dict[str, str] | None:
    if v is None:
        return None
    if type(v) is not dict:
        raise gj.GoJSONError("cnf must be an object")
    return {"jkt": gj.string(v.get("jkt"))}


def _date(v: Any) -> int:
    if type(v) is int and -MAX_NUMERIC_DATE <= v <= MAX_NUMERIC_DATE:
        return v
    return numeric_date(v)


def claims_from_json(doc: Any) -> Claims:
    """Claims from a payload parsed by :func:`._gojson.loads` (which has
    refused ambiguous members, so every claim is read by its exact name)."""
    if type(doc) is not dict:
        if doc is None:  # Go reads null into an empty struct
            return Claims()
        raise gj.GoJSONError("claims are not a JSON object")
    g, s = doc.get, gj.string
    return Claims(
        iss=s(g("iss")), sub=s(g("sub")), sub_iss=s(g("sub_iss")), aud=_audience(g("aud")), client_id=s(g("client_id")),
        scope=s(g("scope")), iat=_date(g("iat")), nbf=_date(g("nbf")), exp=_date(g("exp")), jti=s(g("jti")),
        act=_actor(g("act")), lineage=gj.string_list(g("lineage")), cnf=_cnf(g("cnf")), may_act=_actor(g("may_act")),
    )


def parse_claims(payload: bytes) -> Claims:
    """Decode a payload into Claims; raises :class:`._gojson.GoJSONError`."""
    return claims_from_json(gj.loads(payload))


@dataclass(frozen=True)
class TokenInfo:
    """A decoded view of a token, NOT verified: what a holder may show or keep
    books by (who it is for, who holds it, through whom it came, what it
    grants, until when). Never authorize anything on it."""

    jti: str
    subject: str
    subject_issuer: str
    holder: str
    actors: tuple[str, ...]
    lineage: tuple[str, ...]
    root: str
    depth: int
    scopes: tuple[str, ...]
    audiences: tuple[str, ...]
    issued_at: int
    expires_at: int
    jkt: str
    issuer: str
    act: Actor | None = field(default=None, compare=False)

    @property
    def bound(self) -> bool:
        """Whether the token is sender-constrained (``cnf.jkt``)."""
        return self.jkt != ""


def decode_unverified(token: str) -> TokenInfo:
    """Read a compact token's claims without verifying anything. Raises
    :class:`ValueError` when it cannot even be read."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a compact JWS")
    try:
        c = parse_claims(b64decode(parts[1]))
    except (B64Error, gj.GoJSONError) as e:
        raise ValueError("unreadable claims") from e
    lineage = tuple(c.lineage or ())
    return TokenInfo(
        jti=c.jti,
        subject=c.sub,
        subject_issuer=c.sub_iss,
        holder=c.client_id,
        actors=tuple(c.act.path()) if c.act else (),
        lineage=lineage,
        root=c.root,
        depth=len(lineage),
        scopes=tuple(c.scope.split()) if c.scope else (),
        audiences=tuple(c.aud or ()),
        issued_at=c.iat,
        expires_at=c.exp,
        jkt=c.jkt,
        issuer=c.iss,
        act=c.act,
    )
