"""Differential tests: Python's verifier against Go's reference on tokens and
proofs generated here — signed with real keys, their headers and payloads
written as raw JSON text so that duplicates, case variants, odd numbers,
escapes and nesting reach both — through Go's own runner (`mandate vectors
verify`, built from this checkout). Every verdict must be the same."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from mandate_auth import Key
from mandate_auth._b64 import b64encode
from mandate_auth.conformance import run_verify

from .conftest import AUDIENCE, ISSUER, NOW, mandate_binary

ED = Key.generate("EdDSA")
ES = Key.generate("ES256")
HOLDER = Key.generate("EdDSA")
PUBLIC = "https://orders.example"

NAMES = ["iss", "sub", "sub_iss", "aud", "client_id", "scope", "iat", "nbf", "exp", "jti", "act", "lineage", "cnf",
         "EXP", "Sub", "\u017fub", r"\u0065xp", "x", "may_act"]
GOOD = {
    "iss": json.dumps(ISSUER), "sub": '"orchestrator"', "sub_iss": json.dumps(ISSUER), "aud": json.dumps([AUDIENCE]),
    "client_id": '"researcher"', "scope": '"db:read:*"', "iat": str(NOW - 10), "nbf": str(NOW - 10), "exp": str(NOW + 300),
    "jti": '"child"', "act": '{"sub":"researcher"}', "lineage": '["root"]',
}
VALUES = st.sampled_from([
    "null", "0", "1", "-1", "1.5", "1e3", "9007199254740992", "9007199254740993", "9007199254740992.5", "1e400", "-0",
    str(NOW + 300), str(NOW - 3), str(NOW + 4), str(NOW + 70), str(NOW - 70), "1.8e9", "18e8", "-9007199254740992",
    '"x"', '""', '"root"', '"researcher"', '"orchestrator"', json.dumps(ISSUER), json.dumps(ISSUER + "/"),
    json.dumps(AUDIENCE), json.dumps([AUDIENCE, "b"]), '["root","root"]', '["child"]', "[]", '[""]', "[null]", "{}",
    '{"sub":"researcher","act":{"sub":"x"}}', '{"sub":"researcher","SUB":"y"}', '{"sub":"researcher","sub":"y"}',
    '{"jkt":"' + HOLDER.jkt + '"}', '{"jkt":""}', '"db:read:* tools:x"', '"db:read:*\\tx"', '"db\ua789read:*"',
    '"\\ud800"', "true", "[[[[[[[[]]]]]]]]", '"revoked-root"', '["revoked-root"]', '["revoked-root","child2"]',
])
HEADERS = st.one_of(st.none(), st.none(), st.none(), st.sampled_from([
    '{"alg":"$a","kid":"$k","typ":"at+jwt","alg":"$a"}', '{"ALG":"$a","kid":"$k","typ":"at+jwt"}',
    '{"alg":"$a","kid":"$k","typ":"AT+JWT"}', '{"alg":"$a","kid":"$k","typ":"application/at+jwt"}',
    '{"alg":"$a","kid":"$k","typ":"jwt"}', '{"alg":"$a","kid":"$k"}', '{"alg":"$a","kid":"$k","typ":"at+jwt","crit":[]}',
    '{"alg":"$a","kid":"$k","typ":"at+jwt","crit":["x"]}', '{"alg":"$a","kid":"$k","typ":"at+jwt","b64":true}',
    '{"alg":"none","kid":"$k","typ":"at+jwt"}', '{"alg":"HS256","kid":"$k","typ":"at+jwt"}',
    '{"alg":"$a","kid":"$k","typ":"at+jwt","jwk":{"kty":"x","kty":"y"}}', '{"alg":"$a","kid":"nope","typ":"at+jwt"}',
    '{"alg":"$a","kid":"$k","typ":null}', "null", "[]", '{"alg":"$a","kid":"$k","typ":"at+jwt","x":{"Kid":1}}',
]))
MEMBERS = st.one_of(st.just([]), st.lists(st.tuples(st.sampled_from(NAMES), VALUES), min_size=1, max_size=2))


def payload(members: list[tuple[str, str]], drop: list[str], dup: bool) -> bytes:
    """GOOD's claims, each member replacing the claim of its name (or, with
    dup, added beside it), less those dropped."""
    d = {k: v for k, v in GOOD.items() if k not in drop}
    extra = []
    for k, v in members:
        if k in d and not dup:
            d[k] = v
        else:
            extra.append((k, v))
    parts = [f'"{k}":{v}' for k, v in d.items()] + [f'"{k}":{v}' for k, v in extra]
    return ("{" + ",".join(parts) + "}").encode("utf-8", "surrogatepass")


def token(key: Key, header: str | None, body: bytes) -> str:
    h = header.replace("$a", key.alg).replace("$k", key.kid) if header else json.dumps({"alg": key.alg, "kid": key.kid, "typ": "at+jwt"})
    si = b64encode(h.encode()) + "." + b64encode(body)
    return si + "." + b64encode(key.sign(si.encode()))


CASE = st.fixed_dictionaries({
    "es": st.booleans(),
    "header": HEADERS,
    "members": MEMBERS,
    "drop": st.one_of(st.just([]), st.lists(st.sampled_from(list(GOOD)), max_size=1)),
    "bound": st.booleans(),
    "dup": st.booleans(),
    "twist": st.sampled_from([None, ("exp", str(NOW - 10)), ("exp", str(NOW - 4)), ("exp", str(NOW - 5)), ("nbf", str(NOW + 6)),
                              ("nbf", str(NOW + 5)), ("iat", str(NOW + 60)), ("exp", f"{NOW - 5}.9"), ("lineage", '["revoked-root"]'),
                              ("jti", '"revoked-root"'), ("lineage", '["a","revoked-root"]'), ("exp", f"{NOW}e0"), ("exp", "-1e2")]),
    "proof": st.sampled_from([None, None, "good", "good", "dup-htm", "HTM", "typ", "old", "ath", "url"]),
})


def make_case(i: int, c: dict[str, Any]) -> dict[str, Any]:
    members = list(c["members"])
    if c["twist"] is not None:
        members.append(c["twist"])
    if c["bound"]:
        members.append(("cnf", '{"jkt":"' + HOLDER.jkt + '"}'))
    t = token(ES if c["es"] else ED, c["header"], payload(members, c["drop"], c["dup"]))
    case: dict[str, Any] = {"name": f"case {i}", "token": t, "expect": "?"}
    url = PUBLIC + "/orders"
    if c["proof"] == "good":
        case["dpop"] = {"proof": HOLDER.proof("GET", url, access_token=t, now=NOW), "method": "GET", "url": url}
    elif c["proof"] is not None:
        ath = b64encode(__import__("hashlib").sha256(t.encode()).digest())
        body = {"dup-htm": f'{{"jti":"j{i}","htm":"GET","htm":"GET","htu":"{url}","iat":{NOW},"ath":"{ath}"}}',
                "HTM": f'{{"jti":"j{i}","HTM":"GET","htu":"{url}","iat":{NOW},"ath":"{ath}"}}',
                "typ": f'{{"jti":"j{i}","htm":"GET","htu":"{url}","iat":{NOW},"ath":"{ath}"}}',
                "old": f'{{"jti":"j{i}","htm":"GET","htu":"{url}","iat":{NOW - 61},"ath":"{ath}"}}',
                "ath": f'{{"jti":"j{i}","htm":"GET","htu":"{url}","iat":{NOW}}}',
                "url": f'{{"jti":"j{i}","htm":"GET","htu":"{PUBLIC}/other","iat":{NOW},"ath":"{ath}"}}'}[c["proof"]]
        typ = "DPoP+JWT" if c["proof"] == "typ" else "dpop+jwt"
        hdr = json.dumps({"typ": typ, "alg": "EdDSA", "jwk": HOLDER.public_jwk(kid=False)})
        si = b64encode(hdr.encode()) + "." + b64encode(body.encode())
        case["dpop"] = {"proof": si + "." + b64encode(HOLDER.sign(si.encode())), "method": "GET", "url": url}
    return case


@settings(max_examples=25, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(CASE, min_size=20, max_size=40))
def test_python_and_go_reach_the_same_verdicts(tmp_path_factory: Any, cases: list[dict[str, Any]]) -> None:
    doc = {
        "now": NOW, "issuer": ISSUER, "audience": AUDIENCE, "leeway_seconds": 5,
        "jwks": {"keys": [ED.public_jwk(), ES.public_jwk()]}, "revoked": ["revoked-root"], "public_url": PUBLIC,
        "cases": [make_case(i, c) for i, c in enumerate(cases)],
    }
    path = Path(tmp_path_factory.mktemp("diff")) / "verify-generated.json"
    path.write_text(json.dumps(doc))
    r = subprocess.run([mandate_binary(), "vectors", "verify", str(path)], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    go = [json.loads(line)["verdict"] for line in r.stdout.decode().splitlines()]
    py = [x["verdict"] for x in run_verify(doc)]
    diff = [(c["name"], g, p) for c, g, p in zip(doc["cases"], go, py) if g != p]
    assert not diff, "\n".join(f"{n}: go {g}, python {p}" for n, g, p in diff)


def go_and_python(tmp: Path, cases: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    doc = {
        "now": NOW, "issuer": ISSUER, "audience": AUDIENCE, "leeway_seconds": 5,
        "jwks": {"keys": [ED.public_jwk(), ES.public_jwk()]}, "revoked": ["revoked-root"], "public_url": PUBLIC, "cases": cases,
    }
    path = tmp / "verify-generated.json"
    path.write_text(json.dumps(doc))
    r = subprocess.run([mandate_binary(), "vectors", "verify", str(path)], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    go = [json.loads(line)["verdict"] for line in r.stdout.decode().splitlines()]
    return [(c["name"], g, p["verdict"]) for c, g, p in zip(cases, go, run_verify(doc)) if g != p["verdict"]]


JSONISH = st.text(alphabet='{}[]",:0123456789.eE+-aeiklnprstuxbcdhjmy\\ u\u017f\u212a\xff', max_size=80)


@settings(max_examples=10, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.tuples(JSONISH, st.booleans()), min_size=30, max_size=60))
def test_raw_payloads_and_headers(tmp_path_factory: Any, docs: list[tuple[str, bool]]) -> None:
    cases = []
    for i, (text, as_header) in enumerate(docs):
        raw = text.encode("utf-8")
        if as_header:
            t = b64encode(raw) + "." + b64encode(payload([], [], False))
            t += "." + b64encode(ED.sign(t.encode()))
        else:
            si = b64encode(json.dumps({"alg": "EdDSA", "kid": ED.kid, "typ": "at+jwt"}).encode()) + "." + b64encode(raw)
            t = si + "." + b64encode(ED.sign(si.encode()))
        cases.append({"name": f"raw {i}", "token": t, "expect": "?"})
    diff = go_and_python(Path(tmp_path_factory.mktemp("raw")), cases)
    assert not diff, "\n".join(f"{n}: go {g}, python {p}" for n, g, p in diff)


def test_numeric_dates_of_any_length_are_read_as_go_reads_them(tmp_path: Path) -> None:
    # Beyond Python's 4,300-digit int conversion, and an exponent spelt with 20 zeros.
    exps = [f"{NOW + 300}." + "0" * 5000 + "1", "1" + "0" * 4400 + f"e-{4400 - 9}", f"{NOW + 300}" + "0" * 4300 + "e-4300",
            f"{NOW + 300}e" + "0" * 20, f"{NOW - 300}." + "9" * 4400, "9" * 4400 + "e-4384", "0." + "0" * 5000 + "1"]
    cases = [{"name": f"exp {i}", "token": token(ED, None, payload([("exp", e)], [], False)), "expect": "?"}
             for i, e in enumerate(exps)]
    diff = go_and_python(tmp_path, cases)
    assert not diff, "\n".join(f"{n}: go {g}, python {p}" for n, g, p in diff)


POLICIES = [
    {"name": "p/orders.cedar", "source": """
@id("orders-read")
permit (principal, action == Action::"call", resource == Table::"orders")
when { context.scope_patterns.contains("db:read:orders") };

@id("research-reads")
permit (principal in Group::"research-agents", action == Action::"read", resource)
when { context.scope_patterns_all.contains("*:read:*") && context.holder like "orchestrator/*" };

permit (principal == Agent::"db-agent", action, resource == Agent::"db-agent")
when { context.bound && context.sub_iss == "https://mandate.example" && context.actors.contains("researcher") };

@id("depth-limit")
forbid (principal, action, resource)
when { context.depth > 3 || context.lineage.contains("revoked-task") };

@id("no-writes")
forbid (principal in Group::"research-agents", action, resource)
when { context.scope_patterns.contains("*:write:*") };
"""},
    {"name": "p/guard.cedar", "source": """
@id("tools")
permit (principal, action == Action::"tools/call", resource)
when { context.scopes.contains("tools:search") || context.scope_patterns.contains("tools:*") };

@id("erroring")
forbid (principal, action == Action::"audit", resource)
when { context.clearance > 2 };
"""},
]

CALL_CASE = st.fixed_dictionaries({
    "holder": st.sampled_from(["db-agent", "researcher", "orchestrator/summarizer-1", "orchestrator/x", "o"]),
    "groups": st.lists(st.sampled_from(["research-agents", "orchestrators", "x"]), max_size=2, unique=True),
    "action": st.sampled_from(["call", "read", "tools/call", "audit", "write"]),
    "resource": st.sampled_from([("Table", "orders"), ("Table", "customers"), ("Agent", "db-agent"), ("Tool", "search")]),
    "scopes": st.lists(st.sampled_from(["db:read:orders", "db:read:*", "db:*", "*", "db:write:orders", "tools:search",
                                        "tools:*", "x:read:y:z", "db\ua789read:orders"]), max_size=3, unique=True),
    "depth": st.integers(0, 5),
    "actors": st.lists(st.sampled_from(["researcher", "db-agent", "orchestrator"]), max_size=3),
    "lineage": st.lists(st.sampled_from(["root", "revoked-task", "p"]), max_size=2, unique=True),
    "bound": st.booleans(),
    "sub_iss": st.sampled_from(["https://mandate.example", "https://idp.example"]),
})


@settings(max_examples=10, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(CALL_CASE, min_size=30, max_size=60))
def test_cedar_decisions_match_go(tmp_path_factory: Any, cases: list[dict[str, Any]]) -> None:
    from mandate_auth.conformance import run_call

    doc = {"policies": POLICIES, "cases": [
        {"name": f"call {i}", "groups": c["groups"], "action": c["action"],
         "resource": {"type": c["resource"][0], "id": c["resource"][1]},
         "chain": {"subject": "orchestrator", "sub_iss": c["sub_iss"], "holder": c["holder"], "actors": c["actors"],
                   "depth": c["depth"], "scopes": c["scopes"], "audiences": ["https://orders.example"], "root": "root",
                   "lineage": c["lineage"], "bound": c["bound"]},
         "expect": "?", "policies": []}
        for i, c in enumerate(cases)]}
    path = Path(tmp_path_factory.mktemp("call")) / "call-generated.json"
    path.write_text(json.dumps(doc))
    r = subprocess.run([mandate_binary(), "vectors", "verify", str(path)], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    go = [json.loads(line)["verdict"] for line in r.stdout.decode().splitlines()]
    py = [x["verdict"] for x in run_call(doc)]
    diff = [(c["name"], c["action"], c["chain"]["holder"], g, p) for c, g, p in zip(doc["cases"], go, py) if g != p]
    assert not diff, "\n".join(map(str, diff))


# -- the revocation feed's pages: one grammar in Python and Go ------------------

AT = 1795770000
GOOD_JTIS = ['"a"', '"b"', r'"\u0062"', r'"\ud800"']
BAD_JTIS = ['""', "null", "7", '["a"]', "true"]
GOOD_EXPS = [str(AT + 3600), f"{AT + 3600}.75", "17957772e2", "1.7957772e9", "-0.5", "-1", "1", "9007199254740992",
             "-9007199254740992", "1" + "0" * 30 + "e-21", f"{AT + 3600}." + "0" * 5000 + "1", "1" + "0" * 5000 + "e-4991",
             "2e0000000000000000000009", "1E+3", "-1e2"]
BAD_EXPS = ["0", "-0", "0.5", "null", f'"{AT + 3600}"', "true", "9007199254740993", "9007199254740992.5",
            "-9007199254740992.5", "1e400", "1e-400", f"[{AT + 3600}]", "{}"]


def members(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f'"{k}":{v}' for k, v in pairs) + "}"


def mostly(good: list[str], bad: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(good), st.sampled_from(good), st.sampled_from(good), st.sampled_from(bad))


ENTRY = st.one_of(
    st.tuples(mostly(GOOD_JTIS, BAD_JTIS), mostly(GOOD_EXPS, BAD_EXPS), st.booleans()).map(
        lambda t: members([("jti", t[0]), ("exp", t[1])] if t[2] else [("exp", t[1]), ("reason", '"x"'), ("jti", t[0])])),
    st.lists(st.tuples(st.sampled_from(["jti", "exp", "JTI", "Exp", "reason"]),
                       st.sampled_from(GOOD_JTIS + BAD_JTIS + GOOD_EXPS + BAD_EXPS)), max_size=4).map(members),
    st.sampled_from(["null", '"a"', "[]", "1"]),
)
REVOCATIONS = st.tuples(st.just("revocations"), st.one_of(
    st.lists(ENTRY, min_size=1, max_size=3).map(lambda es: "[" + ",".join(es) + "]"),
    st.lists(ENTRY, min_size=1, max_size=3).map(lambda es: "[" + ",".join(es) + "]"),
    st.sampled_from(["null", "[]", "{}", '"a"'])))
ANY = st.sampled_from(['"c2"', '""', "5", "null", "true", "false", '"true"', "0", "[]", "{}", '["k1"]', '["k1",9]',
                       '{"cursor":"c3"}', '{"jti":"a","exp":0}', "1e400", "[" * 9998 + "]" * 9998, "[" * 10000 + "]" * 10000,
                       "[" * 1500 + "]" * 1500])
BOOL = mostly(["true", "false", "null"], ['"true"', "0", "1", "[]"])
MEMBER = st.one_of(
    st.tuples(st.sampled_from(["cursor", r"\u0063ursor"]),
              mostly(['"c2"', r'"\ud800"', '"\u00e9 +&=#%"'], ['""', "5", "null", '["c"]'])),
    REVOCATIONS,
    REVOCATIONS,
    st.tuples(st.sampled_from(["more", "reset"]), BOOL),
    st.tuples(st.just("revoked_keys"), mostly(['["k1"]', '["k1","k2"]', "[]", "null", '["k1",""]'],
                                              ['["k1",9]', '["k1",null]', '"k9"', "[[]]", '{"k":"k"}'])),
    st.tuples(st.sampled_from(["CURSOR", "Cursor", "Revocations", "MORE", "Revoked_Keys", "x", r"\ud800"]),
              st.one_of(ANY, BOOL)),
)
UNKNOWN_NAMES = st.sampled_from(["CURSOR", "Cursor", "Revocations", "MORE", "Revoked_Keys", "x", r"\ud800"])
GOOD_ENTRY = st.tuples(
    st.sampled_from(GOOD_JTIS), st.sampled_from(GOOD_EXPS),
    st.lists(st.tuples(st.sampled_from(["JTI", "Exp", "reason", "jti", "exp"]), ANY), max_size=2),
    st.booleans(),
).map(lambda t: members(t[2] + [("jti", t[0]), ("exp", t[1])] if t[3] else t[2] + [("exp", t[1]), ("jti", t[0])]))
GOOD_MEMBER = st.one_of(
    st.tuples(st.sampled_from(["cursor", r"\u0063ursor"]), st.sampled_from(['"c2"', r'"\ud800"', '"\u00e9 +&=#%"'])),
    st.tuples(st.just("revocations"), st.lists(GOOD_ENTRY, min_size=1, max_size=3).map(lambda es: "[" + ",".join(es) + "]")),
    st.tuples(st.just("revocations"), st.lists(GOOD_ENTRY, min_size=1, max_size=3).map(lambda es: "[" + ",".join(es) + "]")),
    st.tuples(st.sampled_from(["more", "reset"]), st.sampled_from(["true", "false", "null"])),
    st.tuples(st.just("revoked_keys"), st.sampled_from(['["k1"]', '["k1","k2"]', "[]", "null", '["k1",""]'])),
    st.tuples(UNKNOWN_NAMES, st.one_of(ANY, BOOL).filter(lambda v: not v.startswith("[" * 10000))),
)
BAD_ENTRY = st.one_of(
    st.tuples(st.sampled_from(GOOD_JTIS), st.sampled_from(BAD_EXPS)).map(lambda je: members([("jti", je[0]), ("exp", je[1])])),
    st.tuples(st.sampled_from(GOOD_JTIS), st.sampled_from(BAD_EXPS)).map(lambda je: members([("exp", je[1]), ("jti", je[0])])),
    st.tuples(st.sampled_from(BAD_JTIS), st.sampled_from(GOOD_EXPS)).map(lambda je: members([("jti", je[0]), ("exp", je[1])])),
    st.sampled_from(['{"jti":"a"}', f'{{"exp":{AT + 3600}}}', f'{{"JTI":"a","exp":{AT + 3600}}}',
                     '{"jti":"a","EXP":1795773600}', "null", '"a"', "[]", "1"]),
)
FAULT = st.one_of(
    st.tuples(st.just("cursor"), st.sampled_from(['""', "5", "null", '["c"]', "true", "{}"])),
    st.tuples(st.just("revocations"), st.tuples(st.lists(GOOD_ENTRY, max_size=2), BAD_ENTRY, st.integers(0, 2)).map(
        lambda t: "[" + ",".join(t[0][: t[2]] + [t[1]] + t[0][t[2] :]) + "]")),
    st.tuples(st.just("revocations"), st.sampled_from(["{}", '"a"', "1", "true", '{"jti":"a","exp":1795773600}'])),
    st.tuples(st.sampled_from(["more", "reset"]), st.sampled_from(['"true"', '"false"', "0", "1", "[]", "{}", '""'])),
    st.tuples(st.just("revoked_keys"), st.sampled_from(['["k1",9]', '["k1",null]', "[null]", '"k9"', "[[]]", '{"k":"k"}',
                                                        "[true]", "1"])),
)
FAULT_PAGE = st.tuples(st.lists(GOOD_MEMBER, max_size=3), FAULT).map(lambda t: page_text(True, t[0] + [t[1]], ""))
PAGE = st.one_of(
    st.lists(GOOD_MEMBER, min_size=1, max_size=4).map(lambda ms: page_text(True, ms, "")),
    FAULT_PAGE,
    FAULT_PAGE,
    st.tuples(st.lists(GOOD_MEMBER, min_size=1, max_size=3),
              st.sampled_from([" \n", " {}", "x", "}", "]", ",", "trunc", "bom", "array", "null", "nocursor"])).map(
        lambda t: page_text(t[1] != "nocursor", t[0], t[1])),
    st.tuples(
        st.sampled_from([True, True, True, False]),  # a good cursor first
        st.lists(MEMBER, max_size=4),
        st.sampled_from([""] * 12 + [" \n", " {}", "x", "}", "trunc", "bom", "array", "null"]),
    ).map(lambda t: page_text(*t)),
)
RAW = st.text(alphabet='{}[]",:0123456789.eE+-nulltrfas cursorjtixp\\ u\ufeff', max_size=60)


def page_text(cursor_first: bool, pairs: list[tuple[str, str]], envelope: str) -> str:
    body = members(([("cursor", '"c1"')] if cursor_first else []) + pairs)
    return {"trunc": body[:-1], "bom": "\ufeff" + body, "array": f"[{body}]", "null": "null", "nocursor": body}.get(
        envelope, body + envelope)


def feed_case(i: int, body: str, status: int) -> dict[str, Any]:
    """A first sync served the page; a second, from no cursor, a good one (so
    wrong_since tells whether the first page moved the cursor, and the checks
    what it revoked even when it said more)."""
    return {"name": f"page {i}", "expect": "?", "steps": [
        {"at": AT, "sync": [{"since": "", "status": status, "body": body}]},
        {"at": AT, "sync": [{"since": "", "status": 200, "body": '{"cursor":"z"}'}]},
        {"at": AT + 1, "check": ["a"]}, {"at": AT + 1, "check": ["b"]}, {"at": AT + 1, "check": ["\ufffd", "x"]},
    ]}


def go_and_python_feed(tmp: Path, pages: list[tuple[str, int]]) -> list[tuple[str, str, str]]:
    """The pages whose cases Go and Python read differently: (body, Go's verdict, Python's)."""
    from mandate_auth.conformance import run_feed

    doc = {"leeway_seconds": 5, "max_staleness_seconds": 30, "cases": [feed_case(i, b, s) for i, (b, s) in enumerate(pages)]}
    path = tmp / "feed-generated.json"
    path.write_text(json.dumps(doc))
    r = subprocess.run([mandate_binary(), "vectors", "verify", str(path)], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    go = [json.loads(line)["verdict"] for line in r.stdout.decode().splitlines()]
    py = [x["verdict"] for x in run_feed(json.loads(path.read_text()))]
    assert len(go) == len(py) == len(pages)
    return [(b[:200], g, p) for (b, _), g, p in zip(pages, go, py) if g != p]


def test_every_single_fault_is_read_as_go_reads_it(tmp_path: Path) -> None:
    # Each bad value of the vocabulary alone in an otherwise good page, and each good one.
    good = [members([("cursor", c)]) for c in ['"c2"', r'"\ud800"', '"\u00e9 +&=#%"']]
    good += [members([("cursor", '"c2"'), ("revocations", f'[{{"jti":{j},"exp":{e}}}]')]) for j in GOOD_JTIS for e in GOOD_EXPS]
    bad = [members([("cursor", '"c2"'), ("revocations", f'[{{"jti":"a","exp":{AT + 3600}}},{{"jti":"b","exp":{e}}}]')])
           for e in BAD_EXPS]
    bad += [members([("cursor", '"c2"'), ("revocations", f'[{{"jti":{j},"exp":{AT + 3600}}}]')]) for j in BAD_JTIS]
    bad += [members([("cursor", '"c2"'), ("revocations", f"[{e}]")])
            for e in ['{"jti":"a"}', f'{{"exp":{AT + 3600}}}', f'{{"JTI":"a","exp":{AT + 3600}}}', "null", '"a"', "[]", "1"]]
    bad += [members([("cursor", '"c2"'), ("revoked_keys", '["k1"]'), (k, v)])
            for k, vs in [("cursor", ['""', "5", "null", '["c"]', "true", "{}"]),
                          ("revocations", ["{}", '"a"', "1", "true"]),
                          ("more", ['"true"', "0", "1", "[]", "{}", '""']), ("reset", ['"true"', "0", "1", "[]", "{}", '""']),
                          ("revoked_keys", ['["k1",9]', '["k1",null]', "[null]", '"k9"', "[[]]", '{"k":"k"}', "[true]",
                                            "1"])]
            for v in vs]
    diff = go_and_python_feed(tmp_path, [(b, 200) for b in good + bad])
    assert not diff, "\n".join(f"{b!r}: go {g}, python {p}" for b, g, p in diff)


@settings(max_examples=10, deadline=None, database=None, derandomize=True,
          phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no shrinking: the message names every page read apart
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.tuples(st.one_of(PAGE, PAGE, PAGE, RAW), st.sampled_from([200] * 20 + [204, 401, 500])),
                min_size=15, max_size=30))
def test_feed_pages_are_read_as_go_reads_them(tmp_path_factory: Any, pages: list[tuple[str, int]]) -> None:
    # The differential oracle of the page grammar: every generated page, in a
    # case of its own, through Go's runner and Python's.
    diff = go_and_python_feed(Path(tmp_path_factory.mktemp("feed")), pages)
    assert not diff, "\n".join(f"{b!r}: go {g}, python {p}" for b, g, p in diff)
