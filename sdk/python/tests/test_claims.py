"""The one reading of a date, and claims read the way Go reads them."""

from __future__ import annotations

import pytest

from mandate_auth import _gojson as gj
from mandate_auth.claims import NumericDateError, decode_unverified, numeric_date, parse_claims


def nd(text: str) -> int:
    return numeric_date(gj.loads(text))


@pytest.mark.parametrize(
    "text,want",
    [
        ("0", 0),
        ("1795770000", 1795770000),
        ("-1", -1),
        ("1.5", 1),
        ("1.999999999999999999999", 1),
        ("-1.5", -2),
        ("-0.5", -1),
        ("1e3", 1000),
        ("1E+3", 1000),
        ("15e-1", 1),
        ("9007199254740992", 1 << 53),
        ("-9007199254740992", -(1 << 53)),
        ("9007199254740992.0", 1 << 53),
        ("0e999999999", 0),
        ("-0.0e-5", 0),
        ("1e-999999", 0),
        ("-1e-999999", -1),
        ("1e-99999999999999999999999", 0),
        ("null", 0),
    ],
)
def test_numeric_date_reads(text: str, want: int) -> None:
    assert nd(text) == want


@pytest.mark.parametrize(
    "text",
    ["9007199254740993", "-9007199254740993", "9007199254740992.5", "1e16", "1e999999999", "1e99999999999999999999999",
     "123456789012345678901234567890", '"5"', "true", "[]", "{}"],
)
def test_numeric_date_refuses(text: str) -> None:
    with pytest.raises(NumericDateError):
        nd(text)


def test_nan_and_infinity_are_not_json() -> None:
    for t in ("NaN", "Infinity", "-Infinity"):
        with pytest.raises(gj.GoJSONError):
            gj.loads(t)


@pytest.mark.parametrize(
    "doc,ok",
    [
        ('{"exp":1,"sub":"a"}', True),
        ('{"x-Custom":1,"Other":{"Nested":[1,{"a":2}]}}', True),
        ('{"act":{"sub":"a","act":{"sub":"b"}},"sub":"c"}', True),
        ('{"lineage":["a","a"]}', True),
        ('[1,2,{"a":1}]', True),
        ("{}", True),
        ('{"kıd":1}', True),  # a dotless i folds onto no ASCII letter
        ('{"exp":1,"exp":2}', False),
        ('{"EXP":1}', False),
        ('{"Exp":1,"exp":2}', False),
        (r'{"\u017fub":"a"}', False),
        ('{"\u017fub":"a"}', False),  # ſ folds to s
        ('{"Kid":"k"}', False),  # the Kelvin sign folds to k
        ('{"act":{"sub":"a","SUB":"b"}}', False),
        ('{"cnf":{"jkt":"a","jkt":"b"}}', False),
        ('{"a":[{"x":1,"x":2}]}', False),
        (r'{"a":1,"\u0061":2}', False),
        (r'{"\ud800":1,"\udbff":2}', False),  # both U+FFFD
        ('{"exp":1', False),
        ("[" * 64 + "]" * 64, True),
        ("[" * 65 + "]" * 65, False),
    ],
)
def test_ambiguous_members_are_malformed_as_in_go(doc: str, ok: bool) -> None:
    """Go's jwt.CheckMembers table, through both readers (the fast one for
    plain ASCII documents and the byte-for-byte port)."""
    raw = doc.encode("utf-8")
    try:
        gj.loads(raw)
        fast = True
    except gj.GoJSONError:
        fast = False
    try:
        gj.check_members(raw)
        gj._PLAIN.decode(raw.decode())
        slow = True
    except (gj.GoJSONError, ValueError):
        slow = False
    assert (fast, slow) == (ok, ok)


def test_duplicate_raw_bytes_are_compared_as_bytes() -> None:
    # Two names of different invalid UTF-8 bytes are different names to Go (unescaped names compare raw).
    gj.check_members(b'{"\xfe":1,"\xff":2}')
    assert gj.loads(b'{"\xfe":1,"\xff":2}') == {"\ufffd": 2}


def test_lone_surrogates_become_replacement_characters() -> None:
    c = parse_claims(b'{"sub": "a\\ud800b", "jti": "\\ud83d\\ude00"}')
    assert c.sub == "a\ufffdb" and c.jti == "\U0001F600"
    c = parse_claims(b'{"sub": "\xff"}')
    assert c.sub == "\ufffd"


def test_deep_nesting_is_a_refusal_not_a_crash() -> None:
    with pytest.raises(gj.GoJSONError):
        gj.loads("[" * 100000 + "]" * 100000)


def test_decode_unverified() -> None:
    from mandate_auth import Key

    from .conftest import token

    t = token(Key.generate(), act={"sub": "researcher", "act": {"sub": "orchestrator"}}, lineage=["r", "p"], cnf={"jkt": "J"})
    info = decode_unverified(t)
    assert info.actors == ("researcher", "orchestrator")
    assert info.lineage == ("r", "p") and info.root == "r" and info.depth == 2
    assert info.bound and info.jkt == "J" and info.scopes == ("db:read:*",)
    with pytest.raises(ValueError):
        decode_unverified("not.a-token")
