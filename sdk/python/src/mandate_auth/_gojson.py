"""JSON read the way Go's encoding/json reads it into a struct, so this SDK
accepts and refuses exactly the tokens the Go reference does.

What differs from a plain ``json.loads`` and matters for a verifier:

- object members match struct fields case-insensitively (an exact match is
  preferred), and every member is applied in order: a later duplicate wins,
  except that ``null`` leaves a string or a date as it was;
- a number is kept as its text where a date needs it read exactly (a float
  would round 2^53 + 0.5 into range);
- ``NaN``/``Infinity`` are not JSON; invalid UTF-8 inside a string and a lone
  surrogate escape become U+FFFD;
- any type mismatch makes the whole document malformed.

Nothing here raises anything but :class:`GoJSONError` on any input.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

__all__ = ["GoJSONError", "Num", "Obj", "loads", "fold"]


class GoJSONError(ValueError):
    """The document is not JSON, or does not fit the struct it is read into."""


class Num:
    """A JSON number too long or too fractional to be read as a Python int: its text."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Num({self.text!r})"


class Obj(list):  # type: ignore[type-arg]
    """A JSON object as its (name, value) members, in document order."""

    __slots__ = ()


def _int(s: str) -> Any:
    # Python refuses to convert more than 4300 digits; Go reads any length.
    return int(s) if len(s) <= 18 else Num(s)


def _no_constant(s: str) -> Any:
    raise GoJSONError(f"{s} is not JSON")


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abAB]")


_DECODER = json.JSONDecoder(object_pairs_hook=Obj, parse_float=Num, parse_int=_int, parse_constant=_no_constant)


def loads(raw: bytes | str) -> Any:
    """Parse a JSON document: objects as :class:`Obj`, arrays as lists,
    numbers as int or :class:`Num`."""
    try:
        text = raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else raw
        v = _DECODER.decode(text)
    except GoJSONError:
        raise
    except RecursionError as e:
        raise GoJSONError("JSON nested too deeply") from e
    except (ValueError, TypeError) as e:
        raise GoJSONError("not JSON") from e
    if _SURROGATE_ESCAPE.search(text):
        v = _fix_surrogates(v)
    return v


def _fix_str(s: str) -> str:
    if any("\ud800" <= c <= "\udfff" for c in s):
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in s)
    return s


def _fix_surrogates(v: Any) -> Any:
    if isinstance(v, str):
        return _fix_str(v)
    if type(v) is Obj:
        return Obj((_fix_str(k), _fix_surrogates(x)) for k, x in v)
    if isinstance(v, list):
        return [_fix_surrogates(x) for x in v]
    return v


def fold(name: str) -> str:
    """Go's case folding of a member name for field matching (ASCII letters,
    plus the Kelvin sign and the long s, which fold onto k and s)."""
    if name.isascii():
        return name.upper()
    return name.replace("\u212a", "K").replace("\u017f", "S").upper()


def fields(obj: Any, names: dict[str, str], apply: Callable[[str, Any], None]) -> None:
    """Apply each member of obj to the struct field it matches (names maps
    the exact field name to itself; matching is Go's), in document order.
    obj must be an :class:`Obj`; ``null`` as the whole value is no object at
    all and applies nothing."""
    if obj is None:
        return
    if type(obj) is not Obj:
        raise GoJSONError("not a JSON object")
    folded: dict[str, str] | None = None
    for k, v in obj:
        f = names.get(k)
        if f is None:
            if folded is None:
                folded = {fold(n): n for n in names}
            f = folded.get(fold(k))
            if f is None:
                continue
        apply(f, v)


def string(v: Any, old: str) -> str:
    """A Go string field: null keeps the old value."""
    if v is None:
        return old
    if isinstance(v, str):
        return v
    raise GoJSONError("want a string")


def string_list(v: Any) -> list[str] | None:
    """A Go []string field: null is nil, a null element is ""."""
    if v is None:
        return None
    if type(v) is not list:
        raise GoJSONError("want an array of strings")
    out = []
    for x in v:
        if x is None:
            out.append("")
        elif isinstance(x, str):
            out.append(x)
        else:
            raise GoJSONError("want an array of strings")
    return out


def boolean_ptr(v: Any) -> bool | None:
    """A Go *bool field: null is nil."""
    if v is None or isinstance(v, bool):
        return v
    raise GoJSONError("want a boolean")
