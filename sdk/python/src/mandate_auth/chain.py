"""The rules of a token chain every verifier shares (Go's ``chain`` package):
the structure of ``act`` and ``lineage``, the scope grammar, and the claim
checks, in the order every verifier reports faults. No I/O, no clock: the
caller passes ``now``."""

from __future__ import annotations

from typing import NamedTuple, Sequence

from .claims import Actor, Claims
from .errors import (
    ExpiredTokenError,
    MalformedTokenError,
    NotYetValidError,
    WrongAudienceError,
    WrongIssuerError,
    excerpt,
)
from .scope import covered_by, parse_scope, uncovered

__all__ = ["MAX_DEPTH", "MAX_LEEWAY", "REVOCATION_GRACE", "Chain", "check_structure", "check_claims", "check_expiry"]

MAX_DEPTH = 32
"""The most ancestors a token may have."""
MAX_LEEWAY = 60.0
"""The most clock-skew leeway (seconds) a verifier may allow past exp: no more
than the feed keeps a revocation after its token expired."""
REVOCATION_GRACE = 60.0


class Chain(NamedTuple):
    """A verified Mandate token as a resource server sees it (immutable: one
    may be shared between requests). Compare the pair (``subject``,
    ``subject_issuer``), never ``subject`` alone."""

    jti: str
    subject: str
    subject_issuer: str
    holder: str
    actors: tuple[str, ...]
    """The RFC 8693 actor path, current holder first; empty for a
    client_credentials root (where the holder is the subject)."""
    lineage: tuple[str, ...]
    """The ancestors' jtis, root first; empty for a root."""
    root: str
    depth: int
    scopes: tuple[str, ...]
    audiences: tuple[str, ...]
    issued_at: int
    expires_at: int
    jkt: str
    """The thumbprint of the key the token is bound to (DPoP), or ""."""

    @property
    def bound(self) -> bool:
        return self.jkt != ""

    def ancestry(self) -> tuple[str, ...]:
        """The lineage and the token's own jti: every jti whose revocation cuts it off."""
        return self.lineage + (self.jti,)

    def has_scope(self, scope: str) -> bool:
        """Whether the token grants ``scope`` (wildcard-aware)."""
        return covered_by(self.scopes, scope)

    def covers(self, *scopes: str) -> bool:
        """Whether the token grants every one of ``scopes``."""
        return uncovered(self.scopes, scopes) is None


def check_structure(c: Claims, max_depth: int = MAX_DEPTH) -> None:
    """The invariants of every Mandate token's chain (Go's CheckStructure);
    raises :class:`MalformedTokenError`."""

    def bad(msg: str) -> MalformedTokenError:
        return MalformedTokenError("malformed token: malformed delegation chain: " + msg)

    if c.jti == "" or c.sub == "" or c.client_id == "":
        raise bad("jti, sub and client_id are required")
    if c.sub_iss == "":
        raise bad("sub_iss is required (the issuer of sub)")
    if c.cnf is not None and c.cnf.get("jkt", "") == "":
        raise bad("cnf without jkt")
    lineage = c.lineage or []
    if max_depth > 0 and len(lineage) > max_depth:
        raise bad(f"lineage of {len(lineage)} exceeds max depth {max_depth}")
    seen = {c.jti}
    for j in lineage:
        if j == "":
            raise bad("empty jti in lineage")
        if j in seen:
            raise bad("jti repeated in lineage")
        seen.add(j)
    if c.act is None:
        if c.client_id != c.sub:
            raise bad(f"no act claim but holder {excerpt(c.client_id)!r} is not the subject")
        return
    if c.act.sub != c.client_id:
        raise bad(f"current actor {excerpt(c.act.sub)!r} is not the holder {excerpt(c.client_id)!r}")
    if c.act.depth() > len(lineage) + 1:
        raise bad(f"{c.act.depth()} actors for {len(lineage)} ancestors")
    a: Actor | None = c.act
    while a is not None:
        if a.sub == "":
            raise bad("actor without sub")
        a = a.act


def check_expiry(exp: int, now: float, leeway: float) -> None:
    """The one check that changes with time: refused once ``now`` reaches
    ``exp`` plus the leeway (at most :data:`MAX_LEEWAY`)."""
    if not now < exp + min(leeway, MAX_LEEWAY):
        raise ExpiredTokenError("token has expired")


def check_claims(
    c: Claims,
    *,
    issuer: str,
    audiences: Sequence[str],
    now: float,
    leeway: float,
    max_depth: int = MAX_DEPTH,
) -> Chain:
    """Every rule of a Mandate token that needs neither a key nor revocation
    data, in Go's order: structure, scope grammar, then exp present, issuer,
    audience, not yet valid, expired. Returns the :class:`Chain`."""
    if max_depth <= 0 or max_depth > MAX_DEPTH:
        max_depth = MAX_DEPTH
    check_structure(c, max_depth)
    scopes = parse_scope(c.scope)
    if c.exp == 0:
        raise MalformedTokenError("malformed token: exp is required")
    if issuer and c.iss != issuer:
        raise WrongIssuerError(f"token from another issuer: iss {excerpt(c.iss)!r}")
    aud = c.aud or []
    if audiences and not any(a in aud for a in audiences):
        raise WrongAudienceError("token not meant for this audience: aud does not include " + " nor ".join(repr(a) for a in audiences))
    latest = now + leeway
    if c.nbf > latest or c.iat > latest:
        raise NotYetValidError("token is not valid yet")
    check_expiry(c.exp, now, leeway)
    lineage = tuple(c.lineage or ())
    return Chain(
        jti=c.jti,
        subject=c.sub,
        subject_issuer=c.sub_iss,
        holder=c.client_id,
        actors=tuple(c.act.path()) if c.act is not None else (),
        lineage=lineage,
        root=lineage[0] if lineage else c.jti,
        depth=len(lineage),
        scopes=tuple(scopes),
        audiences=tuple(aud),
        issued_at=c.iat,
        expires_at=c.exp,
        jkt=c.jkt,
    )

