"""The guard's reading of one JSON-RPC message from an MCP client's HTTP
body: its method, the tool or prompt name, the resource URI, and the
arguments' raw JSON text (their exact span in the body), so the arguments
reach the shared conversion as they were sent — number text and member
order intact.

The guard decides on this reading and the SDK then parses the same body
itself, so nothing two JSON readers could read apart gets through: a body
that is not UTF-8, a batch (a JSON array), a member given twice in any
object, ``NaN``/``Infinity``, a lone surrogate escape in the method, name or
URI, or anything after the message is refused (:class:`BadMessageError`)
before the SDK sees it. Nothing here raises anything else, whatever the body.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from json.decoder import scanstring
from typing import Any

from ..errors import MandateError, excerpt

__all__ = ["BadMessageError", "Message", "read_message"]


class BadMessageError(MandateError, ValueError):
    """The body is not one JSON-RPC message the guard reads exactly as the
    MCP SDK would: answered 400, nothing runs."""

    error = "invalid_request"


class _Refused(Exception):
    pass


def _members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        raise _Refused("a member is given twice")
    return d


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not JSON")


_DECODER = json.JSONDecoder(object_pairs_hook=_members, parse_constant=_constant, strict=True)

_NO_ID = object()


class _Spans(dict):  # type: ignore[type-arg]
    """An object read member by member: member name → (start, end, value)."""


@dataclass(frozen=True)
class Message:
    """One JSON-RPC message as the guard read it. ``method`` is None for a
    response (the client answering a server's request); ``id`` is
    :data:`NO_ID` for a notification."""

    method: str | None
    id: Any
    name: str = ""
    uri: str = ""
    arguments: str | None = None
    """The arguments' JSON text, verbatim (None: absent)."""

    @property
    def is_request(self) -> bool:
        return self.method is not None and self.id is not _NO_ID


NO_ID = _NO_ID


_WS_RUN = re.compile(r"[ \t\n\r]*")
_SCAN = _DECODER.scan_once  # the C scanner: (value, end), StopIteration where no value starts


def _skip(s: str, i: int) -> int:
    if i < len(s) and s[i] in " \t\n\r":
        return _WS_RUN.match(s, i).end()  # type: ignore[union-attr]  # always matches
    return i


def _object(s: str, i: int, spans: str = "") -> tuple[dict[str, tuple[int, int, Any]], int]:
    """Read the object at s[i] ('{'): each member's (start, end, value), and
    the index after it. Member values are read by the JSON scanner, which
    refuses a repeated member in any object inside them; the member named
    ``spans``, when an object, is read by this function instead (its value
    then the dict of its members' spans)."""
    members: dict[str, tuple[int, int, Any]] = {}
    n = len(s)
    i = _skip(s, i + 1)
    if i < n and s[i] == "}":
        return members, i + 1
    while True:
        if i >= n or s[i] != '"':
            raise _Refused("expected a member name")
        key, i = scanstring(s, i + 1, True)
        if key in members:
            raise _Refused(f"member {excerpt(key)!r} given twice")
        i = _skip(s, i)
        if i >= n or s[i] != ":":
            raise _Refused("expected ':'")
        i = _skip(s, i + 1)
        if key == spans and i < n and s[i] == "{":
            value, end = _object(s, i)
            members[key] = (i, end, _Spans(value))
        else:
            try:
                value, end = _SCAN(s, i)
            except StopIteration:
                raise _Refused(f"expected a value at character {i}") from None
            members[key] = (i, end, value)
        i = _skip(s, end)
        if i < n:
            c = s[i]
            if c == ",":
                i = _skip(s, i + 1)
                continue
            if c == "}":
                return members, i + 1
        raise _Refused("expected ',' or '}'")


def _string(members: dict[str, tuple[int, int, Any]], key: str, what: str) -> str:
    m = members.get(key)
    if m is None:
        return ""
    v = m[2]
    if not isinstance(v, str):
        raise _Refused(f"{what} is not a string")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise _Refused(f"a lone surrogate escape in {what}") from None
    return v


def read_message(body: bytes | str) -> Message:
    """Read one JSON-RPC message; raises :class:`BadMessageError`."""
    try:
        s = body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else body
    except UnicodeDecodeError:
        raise BadMessageError("the JSON-RPC message is not UTF-8") from None
    i = _skip(s, 0)
    if i < len(s) and s[i] == "[":
        raise BadMessageError("a JSON-RPC batch is not accepted: send one message per request")
    if i >= len(s) or s[i] != "{":
        raise BadMessageError("the body is not a JSON-RPC message (a JSON object)")
    try:
        top, end = _object(s, i, "params")
        if _skip(s, end) != len(s):
            raise _Refused("data after the message")
        method = top.get("method")
        if method is None:
            return Message(method=None, id=top["id"][2] if "id" in top else _NO_ID)
        m = _string(top, "method", "method")
        if not isinstance(method[2], str):  # pragma: no cover - _string refused it
            raise _Refused("method is not a string")
        mid = top["id"][2] if "id" in top else _NO_ID
        p = top.get("params")
        if p is None or p[2] is None:
            return Message(method=m, id=mid)
        params = p[2]
        if type(params) is not _Spans:
            raise _Refused("params is not an object")
        a = params.get("arguments")
        args = None if a is None else s[a[0] : a[1]]
        return Message(method=m, id=mid, name=_string(params, "name", "params.name"), uri=_string(params, "uri", "params.uri"),
                       arguments=args)
    except _Refused as e:
        raise BadMessageError(f"the JSON-RPC message cannot be read exactly: {e}") from None
    except json.JSONDecodeError as e:
        raise BadMessageError(f"the JSON-RPC message cannot be read exactly: {e.msg} at character {e.pos}") from None
    except RecursionError:
        raise BadMessageError("the JSON-RPC message is nested too deeply") from None
    except (ValueError, TypeError, IndexError, OverflowError, MemoryError) as e:  # never an untyped failure
        raise BadMessageError(f"the JSON-RPC message cannot be read exactly ({type(e).__name__})") from None
