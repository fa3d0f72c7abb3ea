"""An MCP request's arguments as a Cedar record, by the one rule every
Mandate guard shares (testdata/vectors/README.md, "MCP files"; Go's
``policy.ParseArguments``).

The arguments' JSON text — never a value some JSON library already read:
number text and repeated members are gone by then — becomes a record:
objects records, arrays sets, strings and booleans themselves; a number
whose value, read exactly from its text, is an integer within ±2^53 a Long
(``99.0``, ``9.9e1`` and ``-0`` too); any other number with at most four
fractional digits within ±922337203685477.5807 a ``decimal``. Refused
(:class:`InvalidArgumentsError`): anything but an object at the top, ``null``
inside, any other number, a member given twice, two members of one object
equal once ASCII letters are lower-cased and ``ſ`` read as ``s`` and ``K``
(U+212A) as ``k``, text that is not UTF-8 or a ``\\u`` escape of a lone
surrogate, more than 8 levels (the arguments object is level 1), more than
65,536 bytes of JSON after trimming the white space JSON allows around a
value (space, tab, CR, LF — nothing else), anything after the object — and,
as in Go and TypeScript (the shared vectors hold it), an object whose only member
is ``__entity``, ``__extn`` or ``__expr``: Cedar's JSON format, which this SDK hands Cedar its context in,
reads such an object as an entity reference, an extension value or an error,
never as the record that was sent.

The text is read by the standard library's JSON scanner with hooks that see
each number's text and each object's members in order; nothing here raises
anything but :class:`InvalidArgumentsError`, whatever the input.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import MandateError, excerpt

__all__ = [
    "MAX_ARGUMENTS_BYTES",
    "MAX_ARGUMENTS_DEPTH",
    "InvalidArgumentsError",
    "parse_arguments",
    "decimal_value",
]

MAX_ARGUMENTS_BYTES = 64 << 10
"""The most bytes of JSON text arguments may have (after trimming white space)."""
MAX_ARGUMENTS_DEPTH = 8
"""The most levels of nesting: the arguments object is level 1, each object or array inside one more."""

_MAX_LONG = 1 << 53
_MAX_SCALED_DECIMAL = (1 << 63) - 1  # a Cedar decimal is an int64 of ten-thousandths
_RESERVED = frozenset({"__entity", "__extn", "__expr"})

# The white space RFC 8259 allows around a JSON value, nothing more (str.strip()
# with no argument would trim far more).
_JSON_SPACE = " \t\n\r"

# How Go's encoding/json matches a member to an ASCII field name: ASCII
# letters in any case, ſ (U+017F) as s and the Kelvin sign (U+212A) as k.
_FOLD = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
_FOLD.update({0x17F: ord("s"), 0x212A: ord("k")})

_NUMBER = re.compile(r"(-?)(0|[1-9][0-9]*)(?:\.([0-9]+))?(?:[eE]([+-]?)([0-9]+))?\Z")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


class InvalidArgumentsError(MandateError, ValueError):
    """An MCP request's arguments cannot become a Cedar record by the rule
    every language shares: the request is denied, never decided on part of
    them."""

    error = "invalid_arguments"


class _Refused(Exception):
    """Raised inside the JSON scanner's hooks; turned into InvalidArgumentsError."""


def decimal_value(scaled: int) -> dict[str, Any]:
    """The Cedar ``decimal`` of ``scaled`` ten-thousandths, in Cedar's JSON
    form (an extension escape)."""
    q, r = divmod(abs(scaled), 10000)
    return {"__extn": {"fn": "decimal", "arg": f"{'-' if scaled < 0 else ''}{q}.{r:04d}"}}


def _number(text: str) -> Any:
    """A JSON number's text as a Cedar value, exactly (never through a float)."""
    m = _NUMBER.match(text)
    if m is None:  # the scanner only hands over JSON numbers
        raise _Refused(f"number {excerpt(text)}")
    neg, whole, frac, exp_sign, exp_digits = m.groups()
    frac = frac or ""
    digits = (whole + frac).lstrip("0")
    if not digits:
        return 0  # any spelling of zero (-0, 0.0e9) is the Long 0
    e = -len(frac)
    if exp_digits is not None:
        ed = exp_digits.lstrip("0") or "0"
        if len(ed) > 9:  # |exponent| ≥ 10^9: far beyond both a Long and four fractional digits
            raise _Refused(f"number {excerpt(text)} is neither an integer within ±2^53 nor a decimal of at most four fractional digits")
        e += -int(ed) if exp_sign == "-" else int(ed)
    stripped = digits.rstrip("0")
    e += len(digits) - len(stripped)
    digits = stripped
    if e >= 0:
        if len(digits) + e <= 16:
            n = int(digits) * 10**e
            if n <= _MAX_LONG:
                return -n if neg else n
        # An integer beyond 2^53 is beyond every decimal too.
        raise _Refused(f"number {excerpt(text)} is neither an integer within ±2^53 nor a decimal of at most four fractional digits")
    if -e <= 4 and len(digits) <= 20:
        scaled = int(digits) * 10 ** (4 + e)
        if scaled <= _MAX_SCALED_DECIMAL:
            return decimal_value(-scaled if neg else scaled)
    raise _Refused(f"number {excerpt(text)} is neither an integer within ±2^53 nor a decimal of at most four fractional digits")


def _int(text: str) -> Any:
    if len(text) <= 16:  # at most 16 characters: compared with 2^53 exactly
        n = int(text)
        if -_MAX_LONG <= n <= _MAX_LONG:
            return n
    return _number(text)


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not JSON")


def _members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise _Refused(f"member {excerpt(k)!r} given twice")
            seen.add(k)
    if len({k.translate(_FOLD) for k in d}) != len(d):
        raise _Refused("two members differ only in case (or by ſ or the Kelvin sign)")
    if len(d) == 1 and not _RESERVED.isdisjoint(d):
        raise _Refused(f"a record whose only member is {next(iter(d))!r} (Cedar's JSON would read it as an escape, not a record)")
    return d


_DECODER = json.JSONDecoder(object_pairs_hook=_members, parse_float=_number, parse_int=_int, parse_constant=_constant, strict=True)


def _check_tree(v: Any) -> None:
    """The checks the hooks cannot make: nesting depth, and lone surrogates
    in strings and member names. (A dict whose only member is ``__extn`` is
    a decimal this module made: records like that were refused.)"""
    stack: list[tuple[Any, int]] = [(v, 1)]
    while stack:
        x, level = stack.pop()
        if level > MAX_ARGUMENTS_DEPTH:
            raise _Refused(f"nested deeper than {MAX_ARGUMENTS_DEPTH} levels")
        if type(x) is dict:
            for k in x:
                if _has_surrogate(k):
                    raise _Refused("a lone surrogate escape in a member name")
            items = x.values()
        else:
            items = x
        for y in items:
            if type(y) is list or (type(y) is dict and not (len(y) == 1 and "__extn" in y)):
                stack.append((y, level + 1))
            elif type(y) is str and _has_surrogate(y):
                raise _Refused("a lone surrogate escape in a string")


def _has_surrogate(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _has_null(v: Any) -> bool:
    stack = [v]
    while stack:
        x = stack.pop()
        for y in x.values() if type(x) is dict else x:
            if y is None:
                return True
            if type(y) is dict or type(y) is list:
                stack.append(y)
    return False


def parse_arguments(raw: str | bytes | bytearray | None) -> dict[str, Any]:
    """The Cedar record (in Cedar's JSON form: dicts, lists, strings, bools,
    ints, decimal escapes) of an MCP request's arguments given as their JSON
    text; ``None``, empty or ``null`` is the empty record. Raises
    :class:`InvalidArgumentsError`."""
    if raw is None:
        return {}
    if isinstance(raw, (bytes, bytearray)):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidArgumentsError("MCP arguments cannot be decided: not UTF-8") from None
    elif isinstance(raw, str):
        if _has_surrogate(raw):
            raise InvalidArgumentsError("MCP arguments cannot be decided: not UTF-8")
        text = raw
    else:
        raise InvalidArgumentsError("MCP arguments cannot be decided: the arguments are not JSON text")
    text = text.strip(_JSON_SPACE)
    if text == "" or text == "null":
        return {}
    if len(text) > MAX_ARGUMENTS_BYTES // 4 and len(text.encode("utf-8")) > MAX_ARGUMENTS_BYTES:
        raise InvalidArgumentsError(
            f"MCP arguments cannot be decided: {len(text.encode('utf-8'))} bytes of JSON (at most {MAX_ARGUMENTS_BYTES})"
        )
    if text[0] != "{":
        raise InvalidArgumentsError("MCP arguments cannot be decided: arguments must be a JSON object")
    try:
        v, end = _DECODER.raw_decode(text, 0)
        if end != len(text):  # the text is trimmed: anything left is data
            raise _Refused("data after the arguments object")
        if type(v) is not dict:  # pragma: no cover - the text starts with {
            raise _Refused("arguments must be a JSON object")
        if text.count("{") + text.count("[") > MAX_ARGUMENTS_DEPTH or (
            "\\u" in text and _SURROGATE_ESCAPE.search(text) is not None
        ):
            _check_tree(v)
        if "null" in text and _has_null(v):
            raise _Refused("null has no Cedar value")
    except _Refused as e:
        raise InvalidArgumentsError(f"MCP arguments cannot be decided: {e}") from None
    except json.JSONDecodeError as e:
        raise InvalidArgumentsError(f"MCP arguments cannot be decided: {e.msg} at character {e.pos}") from None
    except RecursionError:
        raise InvalidArgumentsError(f"MCP arguments cannot be decided: nested deeper than {MAX_ARGUMENTS_DEPTH} levels") from None
    except (ValueError, TypeError, OverflowError, MemoryError) as e:  # never an untyped failure
        raise InvalidArgumentsError(f"MCP arguments cannot be decided: {type(e).__name__}") from None
    return v
