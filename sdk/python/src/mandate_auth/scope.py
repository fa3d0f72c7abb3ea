"""The scope grammar and coverage, exactly as Mandate's ``chain`` package
reads them (``chain/scope.go``).

A scope string is RFC 6749 §3.3 tokens separated by single spaces. Parent
scope ``p`` covers child scope ``c`` iff ``p == c``, or ``p == "*"``, or ``p``
ends in ``:*`` and ``c`` starts with ``p`` minus the ``*``: ``db:read:*``
covers ``db:read:orders`` and ``db:read:*``, never ``db:write:orders`` nor
``db:read``. Scopes compare byte for byte: case, whitespace and look-alike
characters never widen anything.
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

from .errors import MalformedTokenError, excerpt

__all__ = [
    "MAX_SCOPES",
    "MAX_SCOPE_LENGTH",
    "MAX_SCOPE_STRING",
    "MalformedScopeError",
    "parse_scope",
    "format_scope",
    "covers",
    "wildcard",
    "covered_by",
    "uncovered",
    "intersect",
]

MAX_SCOPES = 64
"""The most scope tokens (or audiences) one request or token may carry."""
MAX_SCOPE_LENGTH = 256
"""The longest scope token, in bytes."""
MAX_SCOPE_STRING = 4 << 10
"""The longest scope string, in bytes."""

# RFC 6749 §3.3: %x21 / %x23-5B / %x5D-7E.
_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+\Z")
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+(?: [\x21\x23-\x5b\x5d-\x7e]+)*\Z")


class MalformedScopeError(MalformedTokenError):
    """A scope string outside the grammar (a token with it is malformed)."""


def parse_scope(s: str) -> list[str]:
    """Split a scope string into its tokens, keeping the first of duplicates.
    Refuses empty tokens (two spaces in a row, a leading or trailing space),
    characters outside RFC 6749 §3.3, more than 64 tokens, a token over 256
    bytes and a string over 4 KiB (:class:`MalformedScopeError`). The empty
    string is no scopes."""
    if s == "":
        return []
    if len(s) > MAX_SCOPE_STRING:  # a non-ASCII string fails below anyway; len counts characters
        raise MalformedScopeError(f"malformed scope: longer than {MAX_SCOPE_STRING} bytes")
    parts = s.split(" ")
    if _SCOPE.match(s) and len(parts) <= MAX_SCOPES and max(map(len, parts)) <= MAX_SCOPE_LENGTH:
        return list(dict.fromkeys(parts))  # well-formed: the common case, checked at once
    if len(parts) > MAX_SCOPES:
        raise MalformedScopeError(f"malformed scope: more than {MAX_SCOPES} scopes")
    out: list[str] = []
    for p in parts:
        if p == "":
            raise MalformedScopeError("malformed scope: empty scope token (scopes are separated by single spaces)")
        if len(p) > MAX_SCOPE_LENGTH and len(p.encode("utf-8", "surrogatepass")) > MAX_SCOPE_LENGTH:
            raise MalformedScopeError(f"malformed scope: scope {excerpt(p)!r} is longer than {MAX_SCOPE_LENGTH} bytes")
        if not _TOKEN.match(p):
            raise MalformedScopeError(f"malformed scope: scope {excerpt(p)!r} has a character outside RFC 6749 §3.3")
        if p not in out:
            out.append(p)
    return out


def format_scope(scopes: Iterable[str]) -> str:
    """Join scope tokens with single spaces (the wire form)."""
    return " ".join(scopes)


def wildcard(scope: str) -> tuple[str, bool]:
    """The one reading of a wildcard: ``"*"`` grants every scope (prefix
    ``""``), ``"a:b:*"`` every scope starting ``"a:b:"``; any other scope, an
    inner ``*`` included, is a literal (``(“”, False)``)."""
    if scope == "*":
        return "", True
    if scope.endswith(":*"):
        return scope[:-1], True
    return "", False


def covers(p: str, c: str) -> bool:
    """Whether holding scope ``p`` grants scope ``c``."""
    if p == c:
        return True
    if p == "*":
        return True
    return p.endswith(":*") and c.startswith(p[:-1])


def covered_by(have: Iterable[str], c: str) -> bool:
    """Whether some scope of ``have`` covers ``c``."""
    return any(covers(p, c) for p in have)


def uncovered(have: Sequence[str], want: Iterable[str]) -> str | None:
    """The first scope of ``want`` no scope of ``have`` covers, or None."""
    for c in want:
        if not covered_by(have, c):
            return c
    return None


def intersect(a: Sequence[str], b: Sequence[str]) -> list[str]:
    """The scopes granted by both, wildcard-aware (the narrower of each
    covering pair), minimal and ordered by first appearance in ``a``."""
    out: list[str] = []
    for x in a:
        for y in b:
            if covers(x, y):
                n = y
            elif covers(y, x):
                n = x
            else:
                continue
            if n not in out:
                out.append(n)
    return [c for i, c in enumerate(out) if not any(j != i and p != c and covers(p, c) for j, p in enumerate(out))]
