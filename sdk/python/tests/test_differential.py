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

from hypothesis import HealthCheck, given, settings
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
