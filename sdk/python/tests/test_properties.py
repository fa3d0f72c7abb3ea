"""Property tests of every parser that sees untrusted input: whatever comes
in, the answer is a value or a typed refusal, never another exception."""

from __future__ import annotations


import os
from fractions import Fraction
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mandate_auth import InvalidDPoPProofError, Key, RevocationSet, TokenError, Verifier, decode_unverified
from mandate_auth import _gojson as gj
from mandate_auth._b64 import B64Error, b64decode, b64encode
from mandate_auth.chain import Chain
from mandate_auth.claims import NumericDateError, numeric_date
from mandate_auth.dpop import ReplayCache, same_htu, verify_dpop
from mandate_auth.scope import MalformedScopeError, format_scope, parse_scope

from .conftest import AUDIENCE, ISSUER, NOW, claims, sign

settings.register_profile("mandate", max_examples=250, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("deep", parent=settings.get_profile("mandate"), max_examples=5000)
settings.load_profile(os.environ.get("MANDATE_HYPOTHESIS_PROFILE", "mandate"))

KEY = Key.generate("EdDSA")
HOLDER = Key.generate("ES256")


def verifier() -> Verifier:
    return Verifier(issuer=ISSUER, audience=AUDIENCE, keys=KEY.public_jwks(), revocations=RevocationSet(["revoked"]),
                    now=lambda: float(NOW), public_url="https://orders.example", cache_size=-1)


V = verifier()

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
)
json_values = st.recursive(json_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                                  st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=12)
CLAIM_NAMES = ["iss", "sub", "sub_iss", "aud", "client_id", "scope", "iat", "nbf", "exp", "jti", "act", "lineage", "cnf",
               "SUB", "Exp", "may_act"]


def check_chain(c: Chain) -> None:
    assert c.jti and c.subject and c.subject_issuer and c.holder
    assert len(set(c.ancestry())) == len(c.ancestry()) <= 33
    assert (c.actors[0] == c.holder) if c.actors else c.holder == c.subject


@given(st.text(max_size=300))
def test_verify_arbitrary_text(t: str) -> None:
    try:
        V.verify(t)
    except TokenError:
        pass


@given(st.lists(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/.", max_size=60), min_size=1, max_size=5))
def test_verify_dot_separated_base64ish(parts: list[str]) -> None:
    try:
        V.verify(".".join(parts))
    except TokenError:
        pass


@given(st.dictionaries(st.sampled_from(CLAIM_NAMES), json_values, max_size=8),
       st.dictionaries(st.sampled_from(["alg", "kid", "typ", "crit", "b64", "jku", "jwk"]), json_values, max_size=4))
def test_verify_signed_garbage_claims(over: dict[str, Any], hover: dict[str, Any]) -> None:
    header = {"alg": "EdDSA", "kid": KEY.kid, "typ": "at+jwt", **hover}
    t = sign(KEY, header, claims(**over))
    try:
        check_chain(V.verify(t))
    except TokenError:
        pass


@given(st.dictionaries(st.sampled_from(CLAIM_NAMES), json_values, max_size=6))
def test_claims_with_garbage_values_are_a_chain_or_a_verdict(over: dict[str, Any]) -> None:
    t = sign(KEY, {"alg": "EdDSA", "kid": KEY.kid, "typ": "at+jwt"}, claims(**over))
    try:
        check_chain(V.verify(t))
    except TokenError:
        pass


@given(st.binary(max_size=200))
def test_verify_signed_arbitrary_payload(payload: bytes) -> None:
    t = sign(KEY, {"alg": "EdDSA", "kid": KEY.kid, "typ": "at+jwt"}, payload)
    try:
        V.verify(t)
    except TokenError:
        pass


GOOD = sign(KEY, {"alg": "EdDSA", "kid": KEY.kid, "typ": "at+jwt"}, claims())


@given(st.integers(min_value=0, max_value=len(GOOD) - 1), st.characters(codec="utf-8"))
def test_one_changed_character_is_refused(i: int, ch: str) -> None:
    t = GOOD[:i] + ch + GOOD[i + 1 :]
    assume(t != GOOD)
    try:
        V.verify(t)
    except TokenError:
        return
    # Strict base64url leaves no slack: every other string is another token.
    raise AssertionError("a changed token verified")


NUMBER = st.from_regex(r"\A-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,25})?([eE][+-]?[0-9]{1,4})?\Z")


@given(NUMBER)
def test_numeric_date_is_exact_or_refused(text: str) -> None:
    try:
        v = numeric_date(gj.loads(text))
    except NumericDateError:
        r = Fraction(text)
        assert abs(r) > 2**53
        return
    r = Fraction(text)
    assert abs(r) <= 2**53 and v == r.numerator // r.denominator


@given(st.text(max_size=100))
def test_parse_scope(s: str) -> None:
    try:
        out = parse_scope(s)
    except MalformedScopeError:
        return
    assert all(0x21 <= ord(c) <= 0x7E and c not in '"\\' for tok in out for c in tok)
    if len(set(s.split(" "))) == len(s.split(" ")):
        assert format_scope(out) == s


@given(st.binary(max_size=200))
def test_gojson_loads(raw: bytes) -> None:
    try:
        gj.loads(raw)
    except gj.GoJSONError:
        pass


@given(st.text(max_size=80))
def test_b64decode(s: str) -> None:
    try:
        b = b64decode(s)
    except B64Error:
        return
    assert b64encode(b) == s.replace("\n", "").replace("\r", "")


@given(st.binary(max_size=64))
def test_b64_roundtrip(b: bytes) -> None:
    assert b64decode(b64encode(b)) == b


@given(st.text(max_size=60), st.text(max_size=60))
def test_same_htu_never_raises(a: str, b: str) -> None:
    assert same_htu(a, b) in (True, False)


@given(st.text(max_size=300))
def test_decode_unverified(t: str) -> None:
    try:
        decode_unverified(t)
    except ValueError:
        pass


URL = "https://orders.example/orders"


@given(st.text(max_size=300))
def test_dpop_arbitrary_text(p: str) -> None:
    try:
        verify_dpop(p, method="GET", url=URL, now=NOW, replay=ReplayCache())
    except InvalidDPoPProofError:
        pass


@given(st.dictionaries(st.sampled_from(["typ", "alg", "jwk", "crit", "kid"]), json_values, max_size=4),
       st.dictionaries(st.sampled_from(["jti", "htm", "htu", "iat", "ath", "nonce", "JTI"]), json_values, max_size=6))
def test_dpop_signed_garbage(hover: dict[str, Any], cover: dict[str, Any]) -> None:
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": HOLDER.public_jwk(kid=False), **hover}
    body = {"jti": "j", "htm": "GET", "htu": URL, "iat": NOW, **cover}
    p = sign(HOLDER, header, body)
    try:
        verify_dpop(p, method="GET", url=URL, now=NOW, replay=ReplayCache())
    except InvalidDPoPProofError:
        pass


@given(json_values)
def test_dpop_jwk_garbage(jwk: Any) -> None:
    p = sign(HOLDER, {"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}, {"jti": "j", "htm": "GET", "htu": URL, "iat": NOW})
    try:
        verify_dpop(p, method="GET", url=URL, now=NOW)
    except InvalidDPoPProofError:
        pass


def test_dpop_good_proof_passes_once() -> None:
    rc = ReplayCache()
    p = HOLDER.proof("GET", URL, now=NOW)
    assert verify_dpop(p, method="GET", url=URL, now=NOW, replay=rc).jkt == HOLDER.jkt
    try:
        verify_dpop(p, method="GET", url=URL, now=NOW, replay=rc)
    except InvalidDPoPProofError:
        return
    raise AssertionError("a replayed proof passed")




KEYS = st.sampled_from(["exp", "EXP", "Exp", "sub", "sub_iss", "SUB_ISS", "kid", "Kid", "a", "A", "x-y", r"\u0065xp",
                        r"\u017fub", "\u017fub", "\u212aid", "k\u0131d", r"\ud800", r"\udbff", "jkt", "JKT", ""])


JSON_LEAVES = st.sampled_from(["1", "-2.5e3", '"s"', "null", "true", "[]", "{}"])


def json_doc(names: st.SearchStrategy[str], leaves: st.SearchStrategy[str], depth: int = 0) -> st.SearchStrategy[str]:
    """JSON text nested at most three deep, its members named from ``names``."""
    if depth >= 3:
        return leaves
    member = st.tuples(names, st.deferred(lambda: json_doc(names, leaves, depth + 1))).map(lambda kv: f'"{kv[0]}":{kv[1]}')
    obj = st.lists(member, max_size=4).map(lambda ms: "{" + ",".join(ms) + "}")
    arr = st.lists(st.deferred(lambda: json_doc(names, leaves, depth + 1)), max_size=3).map(lambda xs: "[" + ",".join(xs) + "]")
    return st.one_of(leaves, obj, arr)


@given(json_doc(KEYS, JSON_LEAVES))
def test_both_readers_of_members_agree(doc: str) -> None:
    raw = doc.encode("utf-8")
    try:
        gj._CHECKED.decode(raw.decode()) if raw.isascii() else gj.check_members(raw)
        fast = True
    except (gj.GoJSONError, ValueError):
        fast = False
    try:
        gj.check_members(raw)
        slow = True
    except gj.GoJSONError:
        slow = False
    if r"\ud" not in doc:  # surrogate escapes always take the byte-for-byte reader
        assert fast == slow, doc
    try:
        gj.loads(raw)
        got = True
    except gj.GoJSONError:
        got = False
    assert got == slow, doc


# -- the revocation feed's pages ------------------------------------------------

FEED_NAMES = st.sampled_from(["cursor", "CURSOR", r"\u0063ursor", "revocations", "more", "reset", "revoked_keys", "jti",
                              "exp", "JTI", "x", r"\ud800", ""])
FEED_LEAVES = st.sampled_from(["1", "0", "-0.5", "1795773600.75", "9007199254740993", "1e400", '"c"', '""', '"\\ud800"',
                               '"\\ud83d\\ude00"', '"\\\\ud800"', "null", "true", "false", "[]", "{}"])


def feed_page_check(raw: bytes) -> None:
    from mandate_auth import FeedAnswerError
    from mandate_auth.remote import FeedPage, read_page

    try:
        p = read_page(raw)
    except FeedAnswerError:
        return
    assert isinstance(p, FeedPage) and type(p.cursor) is str and p.cursor
    assert all(type(j) is str and j and type(e) is int and e != 0 and abs(e) <= 2**53 for j, e in p.revocations)
    assert p.revoked_keys is None or all(type(k) is str for k in p.revoked_keys)


@given(st.binary(max_size=200))
def test_read_page_arbitrary_bytes(raw: bytes) -> None:
    feed_page_check(raw)


@given(json_doc(FEED_NAMES, FEED_LEAVES), st.sampled_from(["", " ", "x", "}", "]", ",", "\n{}"]), st.integers(min_value=0, max_value=3))
def test_read_page_jsonish(doc: str, tail: str, cut: int) -> None:
    feed_page_check(doc.encode("utf-8") + tail.encode())
    feed_page_check(doc.encode("utf-8")[: max(0, len(doc) - cut)])


def plain(v: Any) -> Any:
    """A decoded document with Num as its text, to compare two readings."""
    if isinstance(v, gj.Num):
        return ("num", v.text)
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v


@given(st.one_of(json_doc(FEED_NAMES, FEED_LEAVES), st.text(alphabet='{}[]",:0123456789.eE+-nulltrfas \\\t\n', max_size=60)))
def test_the_deep_reader_reads_as_the_decoder(doc: str) -> None:
    # loads_document reads documents nested deeper than Python recurses with
    # _decode_deep: both must read every document alike.
    try:
        want = ("ok", plain(gj._PLAIN.decode(doc)))
    except (gj.GoJSONError, ValueError):
        want = ("refused", None)
    try:
        got = ("ok", plain(gj._decode_deep(doc)))
    except (gj.GoJSONError, ValueError):
        got = ("refused", None)
    assert got == want, doc
