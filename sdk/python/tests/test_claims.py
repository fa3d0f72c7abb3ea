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


def test_claim_names_match_case_insensitively_as_in_go() -> None:
    c = parse_claims(b'{"SUB": "a", "Client_ID": "b", "EXP": 5, "\xe2\x84\xaaid": 1}')
    assert (c.sub, c.client_id, c.exp) == ("a", "b", 5)
    # The Kelvin sign folds onto k; an exact match is preferred, later members win.
    c = parse_claims('{"sub_iss": "x", "SUB_ISS": "y"}'.encode())
    assert c.sub_iss == "y"


def test_null_keeps_a_string_but_clears_a_list() -> None:
    c = parse_claims(b'{"sub": "a", "sub": null, "lineage": ["x"], "lineage": null, "aud": "u", "aud": null}')
    assert c.sub == "a" and c.lineage is None and c.aud is None


def test_audience_and_lineage_forms() -> None:
    assert parse_claims(b'{"aud": "one"}').aud == ["one"]
    assert parse_claims(b'{"aud": ["a", null]}').aud == ["a", ""]
    assert parse_claims(b'{"lineage": ["a", null]}').lineage == ["a", ""]
    for bad in (b'{"aud": 1}', b'{"aud": {}}', b'{"lineage": "a"}', b'{"lineage": [1]}', b'{"act": "x"}', b'{"cnf": []}',
                b'{"sub": 1}', b'{"exp": "1"}', b'[]', b'"x"'):
        with pytest.raises(gj.GoJSONError):
            parse_claims(bad)


def test_duplicate_objects_merge_as_in_go() -> None:
    c = parse_claims(b'{"act": {"sub": "a"}, "act": {"iss": "i"}, "cnf": {"jkt": "k"}, "cnf": {}}')
    assert c.act is not None and (c.act.sub, c.act.iss) == ("a", "i")
    assert c.jkt == "k"


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
