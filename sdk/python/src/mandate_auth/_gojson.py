"""JSON read the way every Mandate verifier reads a JWT's header and payload.

Go's ``encoding/json`` and other languages' decoders disagree on a member
given twice (Go keeps the last) and on member names that differ from a
claim's only in case or by Unicode folding (Go fills the claim from
``"EXP"`` or ``"ſub"``). Mandate refuses both, everywhere it reads a JWT
(Go's ``jwt.CheckMembers``), and so does this module: in any object, a
member twice, a member named like one Mandate reads but spelt otherwise, or
containers nested deeper than 64 levels make the document malformed. Once
that holds, every member name is either exact or unrelated, so objects are
plain dicts.

The rest is Go's reading: a number is kept as its text where a date needs it
read exactly (a float would round 2^53 + 0.5 into range); ``NaN`` and
``Infinity`` are not JSON; invalid UTF-8 inside a string and a lone
surrogate escape become U+FFFD. Nothing here raises anything but
:class:`GoJSONError`, whatever the input.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any, Callable

__all__ = ["GoJSONError", "Num", "loads", "loads_document", "check_members", "MEMBER_NAMES", "MAX_NESTING", "GO_MAX_DEPTH"]


class GoJSONError(ValueError):
    """The document is not JSON, has an ambiguous member, or does not fit
    what it is read into."""


class Num:
    """A JSON number too long or too fractional to be read as a Python int: its text."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Num({self.text!r})"


MEMBER_NAMES = (
    "act", "alg", "ath", "aud", "b64", "client_id", "cnf", "crit", "exp", "htm", "htu", "iat", "iss", "jkt",
    "jti", "jwk", "kid", "lineage", "may_act", "nbf", "nonce", "scope", "sub", "sub_iss", "typ",
)
"""The member names Mandate reads from a JWT's header or payload."""
_MEMBERS = frozenset(MEMBER_NAMES)
_MEMBER_BYTES = frozenset(n.encode() for n in MEMBER_NAMES)
MAX_NESTING = 64


def _fold(s: str) -> str:
    # Simple case folding as far as it can reach an ASCII name: ASCII letters,
    # the long s (ſ ~ s) and the Kelvin sign (K ~ k); any other character
    # folds onto no ASCII letter, so it is kept as it is.
    if s.isascii():
        return s.lower()
    return "".join("s" if c == "\u017f" else "k" if c == "\u212a" else c.lower() if c.isascii() else c for c in s)


_FOLDED = {_fold(n): n for n in MEMBER_NAMES}


def _spelt_otherwise(key: str) -> bool:
    """Whether key is a member name spelt otherwise (case, Unicode folding)."""
    return key not in _MEMBERS and _fold(key) in _FOLDED


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        raise GoJSONError("ambiguous JSON member: a member twice")
    if not d.keys() <= _MEMBERS:
        for k in d.keys() - _MEMBERS:
            if _spelt_otherwise(k):
                raise GoJSONError(f"ambiguous JSON member: {k!r} is not {_FOLDED[_fold(k)]!r}")
    return d


def _int(s: str) -> Any:
    # Python refuses to convert more than 4300 digits; Go reads any length.
    return int(s) if len(s) <= 18 else Num(s)


def _no_constant(s: str) -> Any:
    raise GoJSONError(f"{s} is not JSON")


_CHECKED = json.JSONDecoder(object_pairs_hook=_object, parse_float=Num, parse_int=_int, parse_constant=_no_constant)
_PLAIN = json.JSONDecoder(object_pairs_hook=dict, parse_float=Num, parse_int=_int, parse_constant=_no_constant)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abAB]")


def loads(raw: bytes | str) -> Any:
    """Parse a JWT header or payload: objects as dicts, arrays as lists,
    numbers as int or :class:`Num`. Raises :class:`GoJSONError`."""
    data = raw if isinstance(raw, (bytes, bytearray)) else raw.encode("utf-8", "surrogatepass")
    try:
        text = data.decode("utf-8", "replace")
        surrogates = "\\u" in text and _SURROGATE_ESCAPE.search(text) is not None
        if data.isascii() and not surrogates and data.count(b"{") + data.count(b"[") <= MAX_NESTING:
            # The common case: the decoder's own keys are Go's, and nothing
            # can nest deeper than the bound; members are checked as objects close.
            return _CHECKED.decode(text)
        check_members(bytes(data))
        v = _PLAIN.decode(text)
    except GoJSONError:
        raise
    except RecursionError as e:  # pragma: no cover - check_members bounds the nesting first
        raise GoJSONError("JSON nested too deeply") from e
    except (ValueError, TypeError) as e:
        raise GoJSONError("not JSON") from e
    return _fix_surrogates(v) if surrogates else v


def _fix_str(s: str) -> str:
    if any("\ud800" <= c <= "\udfff" for c in s):
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in s)
    return s


def _fix_surrogates(v: Any) -> Any:
    if isinstance(v, str):
        return _fix_str(v)
    if isinstance(v, dict):
        return {_fix_str(k): _fix_surrogates(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_fix_surrogates(x) for x in v]
    return v


def _equal_fold(key: bytes, name: bytes) -> bool:
    """Go's bytes.EqualFold of a raw member name and an ASCII one."""
    s = key.decode("utf-8", "replace")
    return len(s) == len(name) and _fold(s) == name.decode()


def check_members(data: bytes) -> None:
    """Go's ``jwt.CheckMembers``, byte for byte: in any object, no member
    twice and none named like a member Mandate reads but spelt otherwise;
    containers nested at most 64 deep. It only scans (the document's
    validity is the decoder's business)."""
    stack: list[list[Any]] = []  # [object, want_key, first key's index]
    keys: list[bytes] = []
    i, n = 0, len(data)
    while i < n:
        c = data[i]
        if c == 0x7B or c == 0x5B:  # { [
            if len(stack) == MAX_NESTING:
                raise GoJSONError(f"nested deeper than {MAX_NESTING}")
            stack.append([c == 0x7B, c == 0x7B, len(keys)])
        elif c == 0x7D or c == 0x5D:  # } ]
            if not stack:
                raise GoJSONError("unbalanced JSON")
            del keys[stack[-1][2] :]
            stack.pop()
        elif c == 0x2C:  # ,
            if stack and stack[-1][0]:
                stack[-1][1] = True
        elif c == 0x22:  # "
            start, escaped = i + 1, False
            i += 1
            while i < n and data[i] != 0x22:
                if data[i] == 0x5C:
                    escaped = True
                    i += 1
                i += 1
            if i >= n:
                raise GoJSONError("unterminated string")
            if stack and stack[-1][0] and stack[-1][1]:
                top = stack[-1]
                top[1] = False
                key = data[start:i]
                if escaped:
                    try:
                        s = json.loads(data[start - 1 : i + 1].decode("utf-8", "replace"))
                    except ValueError as e:
                        raise GoJSONError("a member name is not a JSON string") from e
                    key = _fix_str(s).encode("utf-8")
                seen = keys[top[2] :]
                if key in seen:
                    raise GoJSONError("ambiguous JSON member: a member twice")
                if key not in _MEMBER_BYTES and any(_equal_fold(key, m) for m in _MEMBER_BYTES):
                    raise GoJSONError("ambiguous JSON member: a member name spelt otherwise")
                keys.append(key)
        i += 1
    if stack:
        raise GoJSONError("unexpected end of JSON")


def string(v: Any) -> str:
    """A string member: null is absent ("")."""
    if type(v) is str:
        return v
    if v is None:
        return ""
    raise GoJSONError("want a string")


def string_list(v: Any) -> list[str] | None:
    """A []string member: null is nil, a null element is ""."""
    if v is None:
        return None
    if type(v) is not list:
        raise GoJSONError("want an array of strings")
    out = []
    for x in v:
        if x is None:
            out.append("")
        elif type(x) is str:
            out.append(x)
        else:
            raise GoJSONError("want an array of strings")
    return out


def boolean_ptr(v: Any) -> bool | None:
    """A *bool member: null is nil."""
    if v is None or isinstance(v, bool):
        return v
    raise GoJSONError("want a boolean")


# -- a whole document as encoding/json reads it ---------------------------------

GO_MAX_DEPTH = 10000
"""How deep encoding/json lets containers nest (its scanner's maxNestingDepth)."""


def _go_replace(e: UnicodeError) -> tuple[str, int]:
    # Go replaces each byte of invalid UTF-8 with U+FFFD (utf8.DecodeRune's
    # RuneError of width 1); Python's "replace" takes a maximal subpart at once.
    if isinstance(e, UnicodeDecodeError):
        return "\ufffd", e.start + 1
    raise e  # pragma: no cover - only decoding uses it


codecs.register_error("mandate_auth.go_replace", _go_replace)

_ESCAPE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[dD][89a-fA-F][0-9a-fA-F]{2}|\\.", re.S)
_LONE_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def _surrogate(m: "re.Match[str]") -> str:
    # A pair stays, any other escape stays, a lone surrogate escape is U+FFFD
    # (Go's unquote). Escapes are matched left to right, so "\\\\" is one.
    t = m.group()
    return "\\ufffd" if len(t) == 6 and t[1] == "u" else t


def loads_document(raw: bytes | str) -> Any:
    """A whole JSON document as Go's ``encoding/json`` accepts it (into a
    ``map[string]json.RawMessage``, say), without the JWT member checks of
    :func:`loads`: a member given twice counts by its last value, containers
    nest at most 10,000 deep, whitespace may surround the value and nothing
    else may follow it. Values as :func:`loads` reads them: numbers as int or
    :class:`Num` (never a float), invalid UTF-8 (byte by byte) and lone
    surrogate escapes as U+FFFD. Raises :class:`GoJSONError`, whatever the input."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    text = bytes(raw).decode("utf-8", "mandate_auth.go_replace")
    if "\\u" in text and _LONE_SURROGATE.search(text) is not None:
        text = _ESCAPE.sub(_surrogate, text)
    try:
        return _PLAIN.decode(text)
    except GoJSONError:
        raise
    except RecursionError:
        pass  # deeper than Python's recursion allows: read it without recursing
    except (ValueError, TypeError) as e:
        raise GoJSONError("not JSON") from e
    try:
        return _decode_deep(text)
    except GoJSONError:
        raise
    except (ValueError, TypeError, IndexError) as e:
        raise GoJSONError("not JSON") from e


_scanstring: Callable[[str, int, bool], tuple[str, int]] = getattr(json.decoder, "scanstring")  # C, where built
_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_LITERALS = (("true", True), ("false", False), ("null", None))


def _skip(s: str, i: int) -> int:
    """The index of the first non-whitespace character from i."""
    m = _WS.match(s, i)
    return m.end() if m is not None else i


class _Obj:
    __slots__ = ("pairs", "key")

    def __init__(self, key: str) -> None:
        self.pairs: list[tuple[str, Any]] = []
        self.key = key


def _decode_deep(s: str) -> Any:
    """What ``_PLAIN.decode`` returns, read with a stack instead of recursion
    (for documents nested deeper than Python recurses), at most
    GO_MAX_DEPTH deep."""
    stack: list[Any] = []  # open containers: a list (array) or an _Obj

    def key_at(i: int) -> tuple[str, int]:
        if s[i : i + 1] != '"':
            raise GoJSONError("want a member name")
        k, i = _scanstring(s, i + 1, True)
        i = _skip(s, i)
        if s[i : i + 1] != ":":
            raise GoJSONError("want a colon")
        return k, _skip(s, i + 1)

    i = _skip(s, 0)
    while True:
        c = s[i : i + 1]
        value: Any
        if c == "{" or c == "[":
            if len(stack) >= GO_MAX_DEPTH:
                raise GoJSONError(f"nested deeper than {GO_MAX_DEPTH}")
            j = _skip(s, i + 1)
            if s[j : j + 1] == ("}" if c == "{" else "]"):
                value, i = ({} if c == "{" else []), j + 1
            elif c == "{":
                k, i = key_at(j)
                stack.append(_Obj(k))
                continue
            else:
                stack.append([])
                i = j
                continue
        elif c == '"':
            value, i = _scanstring(s, i + 1, True)
        elif c == "-" or "0" <= c <= "9":
            m = _NUMBER.match(s, i)
            if m is None:
                raise GoJSONError("not a number")
            t = m.group()
            value, i = (Num(t) if m.group(1) or m.group(2) else _int(t)), m.end()
        else:
            for word, v in _LITERALS:
                if s.startswith(word, i):
                    value, i = v, i + len(word)
                    break
            else:
                raise GoJSONError("not a JSON value")
        # Hand the value to the containers it completes.
        while True:
            i = _skip(s, i)
            if not stack:
                if i != len(s):
                    raise GoJSONError("data after the JSON value")
                return value
            top = stack[-1]
            c = s[i : i + 1]
            if type(top) is list:
                top.append(value)
                if c == ",":
                    i = _skip(s, i + 1)
                    break
                if c != "]":
                    raise GoJSONError("want a comma or a closing bracket")
            else:
                top.pairs.append((top.key, value))
                if c == ",":
                    top.key, i = key_at(_skip(s, i + 1))
                    break
                if c != "}":
                    raise GoJSONError("want a comma or a closing brace")
                top = dict(top.pairs)
            stack.pop()
            value, i = top, i + 1
