"""Strict base64url (RFC 7515 §2): no padding, only the URL-safe alphabet, and
canonical (the unused bits of the last character are zero), so one signature
has exactly one string form, as Go's ``base64.RawURLEncoding.Strict()`` reads
it. Like Go's decoder, carriage returns and line feeds are skipped."""

from __future__ import annotations

import base64
import binascii
import re
import sys

_ALPHABET = re.compile(r"[A-Za-z0-9_-]*\Z")
_INDEX = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")}
_PAD = ("", None, "==", "=")


class B64Error(ValueError):
    """Not strict base64url."""


_TO_STD = bytes.maketrans(b"-_", b"+/")
_BPAD = (b"", b"", b"==", b"=")
_STRICT = sys.version_info >= (3, 11)


def b64decode(s: str) -> bytes:
    """Decode strict, unpadded base64url; raise B64Error otherwise."""
    if _STRICT and s.isascii() and "+" not in s and "/" not in s and "=" not in s and "\n" not in s and "\r" not in s:
        # The fast path: binascii's strict mode refuses every character
        # outside the alphabet; the alphabet's '+', '/' and '=' are ruled out above.
        n = len(s) & 3
        if n == 1:
            raise B64Error("not base64url")
        if n:
            last = _INDEX.get(s[-1], 0)
            if (n == 2 and last & 0x0F) or (n == 3 and last & 0x03):
                raise B64Error("non-canonical base64url")
        try:
            return binascii.a2b_base64(s.encode("ascii").translate(_TO_STD) + _BPAD[n], strict_mode=True)  # type: ignore[call-arg]
        except binascii.Error:
            raise B64Error("not base64url") from None
    if "\n" in s or "\r" in s:
        s = s.replace("\n", "").replace("\r", "")
    n = len(s) & 3
    if n == 1 or not _ALPHABET.match(s):
        raise B64Error("not base64url")
    if n:
        # The bits past the last whole byte must be zero (canonical form).
        last = _INDEX[s[-1]]
        if (n == 2 and last & 0x0F) or (n == 3 and last & 0x03):
            raise B64Error("non-canonical base64url")
    try:
        return base64.urlsafe_b64decode(s + _PAD[n])  # type: ignore[operator]
    except (binascii.Error, ValueError) as e:  # pragma: no cover - the checks above rule it out
        raise B64Error("not base64url") from e


_TO_URL = bytes.maketrans(b"+/", b"-_")


def b64encode(b: bytes) -> str:
    """Encode as unpadded base64url."""
    return binascii.b2a_base64(b, newline=False).rstrip(b"=").translate(_TO_URL).decode("ascii")


def b64decode_lenient(s: str) -> bytes:
    """Decode base64url or base64, padded or not (what JOSE libraries accept in
    a JWK's members); raise B64Error otherwise."""
    if not isinstance(s, str):
        raise B64Error("not a string")
    t = s.replace("-", "+").replace("_", "/").rstrip("=")
    if len(t) & 3 == 1 or not re.fullmatch(r"[A-Za-z0-9+/]*", t):
        raise B64Error("not base64")
    try:
        return base64.b64decode(t + "=" * (-len(t) & 3), validate=True)
    except (binascii.Error, ValueError) as e:
        raise B64Error("not base64") from e
