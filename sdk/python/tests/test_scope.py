"""The scope grammar and coverage (Go's chain/scope.go)."""

from __future__ import annotations

import pytest

from mandate_auth.scope import MalformedScopeError, covers, intersect, parse_scope, uncovered, wildcard


@pytest.mark.parametrize(
    "p,c,want",
    [
        ("db:read:*", "db:read:orders", True),
        ("db:read:*", "db:read:*", True),
        ("db:read:*", "db:read", False),
        ("db:read:*", "db:write:orders", False),
        ("*", "anything:at:all", True),
        ("db:*", "db:read:orders", True),
        ("db*", "db:read", False),
        ("db:r*", "db:read", False),
        ("db:read:orders", "db:read:orders", True),
        ("db:read:orders", "db:read:*", False),
        ("DB:read:*", "db:read:x", False),
        ("db\ua789read:*", "db:read:x", False),
    ],
)
def test_covers(p: str, c: str, want: bool) -> None:
    assert covers(p, c) is want


def test_wildcard() -> None:
    assert wildcard("*") == ("", True)
    assert wildcard("a:b:*") == ("a:b:", True)
    assert wildcard("a*") == ("", False)
    assert wildcard("a:*:b") == ("", False)


def test_parse_scope() -> None:
    assert parse_scope("") == []
    assert parse_scope("a b a") == ["a", "b"]
    for bad in (" a", "a ", "a  b", "a\tb", 'a"b', "a\\b", "é", "a\ua789b", "x" * 257, " ".join(["s"] * 65), "a " * 2049):
        with pytest.raises(MalformedScopeError):
            parse_scope(bad)
    assert parse_scope("x" * 256) == ["x" * 256]
    assert len(parse_scope(" ".join(f"s{i}" for i in range(64)))) == 64


def test_intersect_and_uncovered() -> None:
    assert intersect(["db:*"], ["db:read:*"]) == ["db:read:*"]
    assert intersect(["db:read:*", "tools:*"], ["db:read:orders", "db:read:*", "x"]) == ["db:read:*"]
    assert intersect(["a"], ["b"]) == []
    assert uncovered(["db:read:*"], ["db:read:x", "db:write:y"]) == "db:write:y"
    assert uncovered(["*"], ["q"]) is None
