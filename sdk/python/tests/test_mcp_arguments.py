"""The MCP arguments rule and the guard's JSON-RPC reader: cases at every
bound, Hypothesis properties (never an untyped exception, whatever the
input), and a differential test against Go's runner (`mandate vectors
verify` on a generated MCP file) in which each case's policy holds the Cedar
record Python made as a literal, so Go allows it only if it made the very
same record."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mandate_auth.cedar import PolicySet, context_attributes
from mandate_auth.conformance import run, run_mcp
from mandate_auth.mcp import InvalidArgumentsError, MCPPolicy, parse_arguments
from mandate_auth.mcp.arguments import decimal_value
from mandate_auth.mcp.jsonrpc import NO_ID, BadMessageError, read_message

from .conftest import VECTORS, mandate_binary

SERVER = "https://mcp.example/mcp"


def dec(s: str) -> dict[str, Any]:
    return {"__extn": {"fn": "decimal", "arg": s}}


@pytest.mark.parametrize(("text", "want"), [
    ("", {}), ("null", {}), ("  null \n", {}), (None, {}), (b"{}", {}), (" \t\r\n{}\n ", {}),
    ('{"a":99}', {"a": 99}), ('{"a":99.0}', {"a": 99}), ('{"a":9.9e1}', {"a": 99}), ('{"a":990E-1}', {"a": 99}),
    ('{"a":-0}', {"a": 0}), ('{"a":-0.0e7}', {"a": 0}), ('{"a":0e99999999999999999999}', {"a": 0}),
    ('{"a":9007199254740992}', {"a": 9007199254740992}), ('{"a":-9007199254740992}', {"a": -9007199254740992}),
    ('{"a":90071992547409.92e2}', {"a": 9007199254740992}),
    ('{"a":10.5}', {"a": dec("10.5000")}), ('{"a":1.25e1}', {"a": dec("12.5000")}), ('{"a":-0.5}', {"a": dec("-0.5000")}),
    ('{"a":1e-4}', {"a": dec("0.0001")}), ('{"a":922337203685477.5807}', {"a": dec("922337203685477.5807")}),
    ('{"a":-922337203685477.5807}', {"a": dec("-922337203685477.5807")}), ('{"a":10.50000000}', {"a": dec("10.5000")}),
    ('{"a":[1,"x",true,[]],"b":{"c":{}}}', {"a": [1, "x", True, []], "b": {"c": {}}}),
    ('{"a":"caf\\u00e9 \\ud83d\\ude00","\\u00e9":1,"\\u00c9":2}', {"a": "café 😀", "é": 1, "É": 2}),
    ('{"a":"\\\\ud83d"}', {"a": "\\ud83d"}), ('{"a":[[[[[[[1]]]]]]]}', {"a": [[[[[[[1]]]]]]]}), ('{"a":{"b":{"c":{"d":{"e":{"f":{"g":[1.5]}}}}}}}', {"a": {"b": {"c": {"d": {"e": {"f": {"g": [dec("1.5000")]}}}}}}}),
    ('{"a":{"b":1},"b":{"a":2}}', {"a": {"b": 1}, "b": {"a": 2}}),
    ('{"__extn":1,"k":2}', {"__extn": 1, "k": 2}), ('{"a":[1.5]}', {"a": [dec("1.5000")]}),
])
def test_arguments_become_a_cedar_record(text: Any, want: dict[str, Any]) -> None:
    assert parse_arguments(text) == want


@pytest.mark.parametrize("text", [
    "[1]", '"q"', "1", "true", "{} {}", "{}x", '{"a":null}', '{"a":[null]}', '{"a":1,"a":2}', '{"a":1,"A":2}',
    '{"s":1,"\\u017f":2}', '{"k":1,"\\u212a":2}', '{"ſ":1,"S":2}', '{"a":"\\ud800"}', '{"a":"\\udc00\\ud800"}',
    '{"\\ud800":1}', '{"a":"\\ud83d\\u0041"}', '{"a":9007199254740993}', '{"a":-9007199254740993}', '{"a":1e16}',
    '{"a":1.00001}', '{"a":1e-5}', '{"a":922337203685477.5808}', '{"a":-922337203685477.5808e0}', '{"a":1e400}',
    '{"a":1e-400}', '{"a":' + "1" * 5000 + "}", '{"a":0.' + "0" * 5000 + "1}", '{"a":1e' + "9" * 5000 + "}",
    '{"a":NaN}', '{"a":Infinity}', '{"a":-Infinity}', '{"a":01}', '{"a":1.}', '{"a":.5}', '{"a":+1}', '{"a":0x1}',
    '{"a":"\x01"}', "{'a':1}", '{"a":1,}', "{", '{"a":[[[[[[[[1]]]]]]]]}', '{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":1}}}}}}}}}',
    '{"a":' + "[" * 100000 + "]" * 100000 + "}", '{"__entity":{"type":"A","id":"a"}}', '{"a":{"__extn":{"fn":"decimal","arg":"1"}}}',
    '{"a":{"__expr":"1"}}', "\x1c{}", "\ufeff{}", "\u3000{}\xa0\u2028", "{}\v", "\x85{}", "\f{}", b"\xff", b'{"a":"\xc3"}', b'{"a":"\xed\xa0\x80"}', "\ud800",
    '{"q":"' + "x" * (64 << 10) + '"}',
])
def test_arguments_refused(text: Any) -> None:
    with pytest.raises(InvalidArgumentsError) as e:
        parse_arguments(text)
    assert e.value.error == "invalid_arguments" and e.value.error_description.startswith("MCP arguments cannot be decided")


def test_the_size_bound_counts_bytes_after_trimming() -> None:
    fill = 65536 - len('{"q":""}')
    assert parse_arguments('  {"q":"' + "x" * fill + '"}\n\t\r ')["q"] == "x" * fill
    with pytest.raises(InvalidArgumentsError):
        parse_arguments('{"q":"' + "x" * (fill + 1) + '"}')
    with pytest.raises(InvalidArgumentsError):  # é is two bytes
        parse_arguments('{"q":"' + "é" * (fill // 2 + 1) + '"}')


def test_decimal_values() -> None:
    assert decimal_value(105000) == dec("10.5000") and decimal_value(-1) == dec("-0.0001") and decimal_value(0) == dec("0.0000")


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200),
                 st.text(alphabet='{}[]",:0123456789.eE+-nultrfas\\ u\u017f\u212a\xa0', max_size=120)))
def test_never_an_untyped_exception(text: Any) -> None:
    try:
        v = parse_arguments(text)
    except InvalidArgumentsError:
        return
    assert type(v) is dict


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300),
                 st.text(alphabet='{}[]",:0123456789.eE+-nultrfasmpiodh\\ u', max_size=200)))
def test_the_jsonrpc_reader_never_raises_untyped(body: Any) -> None:
    try:
        m = read_message(body)
    except BadMessageError:
        return
    assert m.method is None or isinstance(m.method, str)


def test_the_jsonrpc_reader() -> None:
    m = read_message(b' {"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"t","arguments":{ "a" : 1.50 },"_meta":{}}}\n')
    assert (m.method, m.id, m.name, m.uri, m.arguments) == ("tools/call", 7, "t", "", '{ "a" : 1.50 }')
    m = read_message('{"jsonrpc":"2.0","method":"notifications/initialized"}')
    assert m.method == "notifications/initialized" and m.id is NO_ID and not m.is_request
    m = read_message('{"jsonrpc":"2.0","id":"x","result":{}}')
    assert m.method is None and m.id == "x"
    m = read_message('{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a"}}')
    assert m.uri == "file:///a" and m.arguments is None
    assert read_message('{"id":1,"method":"tools\\/call","params":null}').method == "tools/call"
    for bad in ('[{"id":1,"method":"ping"}]', '{"id":1,"method":"ping","method":"ping"}', '{"id":1,"method":1}',
                '{"id":1,"method":"tools/call","params":[]}', '{"id":1,"method":"tools/call","params":{"name":"a","name":"b"}}',
                '{"id":1,"method":"x","params":{"_meta":{"a":1,"a":2}}}', '{"id":NaN,"method":"ping"}', "{} x", "",
                '{"id":1,"method":"tools/call","params":{"name":"\\udfff"}}', b"\xfe", '{"id":1,"method":null}'):
        with pytest.raises(BadMessageError):
            read_message(bad)


def test_a_context_cut_to_what_the_policies_read_decides_alike() -> None:
    """Every MCP and call vector, decided with the whole context and with the
    attributes the policies read."""
    assert context_attributes([json.loads('{"x":{".":{"left":{"Var":"context"},"attr":"a"}}}')]) == frozenset({"a"})
    assert context_attributes([json.loads('{"x":{"==":{"left":{"Var":"context"},"right":{"Record":{}}}}}')]) is None
    for path in sorted(VECTORS.glob("*.json")):
        f = json.loads(path.read_text())
        if "policies" not in f or "covers" in f or not isinstance(f["policies"], list):
            continue
        assert _verdicts(path, cut=True) == _verdicts(path, cut=False), path.name


def _verdicts(path: Path, cut: bool) -> list[tuple[Any, Any]]:
    orig = PolicySet.__init__

    def whole(self: PolicySet, files: Any) -> None:
        orig(self, files)
        self._context_attrs = None

    if not cut:
        PolicySet.__init__ = whole  # type: ignore[method-assign]
    try:
        return [(r["verdict"], r.get("policies")) for r in run(str(path))]
    finally:
        PolicySet.__init__ = orig  # type: ignore[method-assign]


def test_the_decision_order() -> None:
    from mandate_auth import Chain

    pol = MCPPolicy(PolicySet.parse('@id("all") permit (principal, action, resource);', "p.cedar"), SERVER)
    c = Chain(jti="j", subject="s", subject_issuer="i", holder="h", actors=(), lineage=(), root="j", depth=0,
              scopes=("tools:a",), audiences=(SERVER,), issued_at=0, expires_at=0, jkt="")
    assert pol.decide(c, "tools/call", name="b", arguments="null inside").verdict == "insufficient_scope"
    assert pol.decide(c, "tools/call", name="a", arguments='{"x":null}').verdict == "invalid_arguments"
    d = pol.decide(c, "tools/call", name="a", arguments='{"x":1}')
    assert d.allow and d.policies == ["all"]
    assert pol.decide(c, "resources/read", uri="file:///x").verdict == "insufficient_scope"
    assert pol.decide(c, "completion/complete").allow


# -- against Go ------------------------------------------------------------------------------

KEYS = st.sampled_from(["a", "b", "A", "s", "ſ", "S", "k", "K", "K", "é", "É", "__extn", "__entity", "__expr", "x y", "", "\u2028"])


def _number(draw: Any) -> str:
    kind = draw(st.integers(0, 6))
    if kind == 0:
        return str(draw(st.integers(-(1 << 54), 1 << 54)))
    if kind == 1:  # an integer spelt with a fraction or an exponent
        n = draw(st.integers(-(10**6), 10**6))
        return draw(st.sampled_from([f"{n}.0", f"{n}00e-2", f"{n}e0", f"{n}.000E+0"]))
    if kind == 2:  # a decimal, exact or not
        whole = draw(st.integers(-(10**15), 10**15))
        frac = draw(st.text(alphabet="0123456789", min_size=1, max_size=6))
        return f"{whole}.{frac}"
    if kind == 3:
        m = draw(st.integers(-999, 999))
        e = draw(st.integers(-8, 20))
        return f"{m}e{e}"
    if kind == 4:
        return draw(st.sampled_from(["922337203685477.5807", "-922337203685477.5807", "922337203685477.5808", "9007199254740992",
                                     "9007199254740993", "-9007199254740992.0", "1e-4", "1e-5", "0.00010", "-0", "0.0", "1E400"]))
    if kind == 5:
        return f"{draw(st.integers(0, 99))}.{draw(st.integers(0, 9999)):04d}e{draw(st.integers(-3, 3))}"
    return str(draw(st.integers(-100, 100)))


def _string(draw: Any) -> str:
    s = draw(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6))
    out = []
    for ch in s:
        r = draw(st.integers(0, 9))
        if ch in '"\\' or ord(ch) < 0x20:
            out.append("\\u%04x" % ord(ch))
        elif r == 0:
            if ord(ch) > 0xFFFF:
                v = ord(ch) - 0x10000
                out.append("\\u%04x\\u%04x" % (0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF)))
            else:
                out.append("\\u%04X" % ord(ch))
        else:
            out.append(ch)
    if draw(st.integers(0, 30)) == 0:
        out.append(draw(st.sampled_from(["\\ud800", "\\udfff", "\\ud83d\\u0041", "\\\\ud800"])))
    return '"' + "".join(out) + '"'


@st.composite
def arguments_text(draw: Any, level: int = 1) -> str:
    ws = draw(st.sampled_from(["", "", " ", "\n", "\t "]))
    if level > 9:
        return "1"
    n = draw(st.integers(0, 3))
    members = []
    for _ in range(n):
        k = draw(KEYS)
        members.append(f"{ws}{json.dumps(k) if draw(st.booleans()) else _string_of(k)}{ws}:{ws}{draw(value_text(level + 1))}")
    return "{" + ",".join(members) + ws + "}"


def _string_of(k: str) -> str:
    return '"' + "".join("\\u%04x" % ord(c) for c in k) + '"'


@st.composite
def value_text(draw: Any, level: int) -> str:
    kind = draw(st.integers(0, 9))
    if kind <= 2:
        return _number(draw)
    if kind <= 4:
        return _string(draw)
    if kind == 5:
        return draw(st.sampled_from(["true", "false", "true", "null" if draw(st.integers(0, 8)) == 0 else "false"]))
    if kind <= 7 and level <= 10:
        return draw(arguments_text(level))
    if level > 10:
        return "2"
    items = [draw(value_text(level + 1)) for _ in range(draw(st.integers(0, 3)))]
    return "[" + ",".join(items) + "]"


def cedar_literal(v: Any) -> str:
    """A Cedar expression equal to a record value made by parse_arguments."""
    if type(v) is bool:
        return "true" if v else "false"
    if type(v) is int:
        return str(v)
    if type(v) is str:
        return '"' + "".join(c if " " <= c <= "~" and c not in '"\\' else "\\u{%x}" % ord(c) for c in v) + '"'
    if type(v) is list:
        return "[" + ", ".join(cedar_literal(x) for x in v) + "]"
    if len(v) == 1 and "__extn" in v:
        return f'decimal("{v["__extn"]["arg"]}")'
    return "{" + ", ".join(f"{cedar_literal(k)}: {cedar_literal(x)}" for k, x in v.items()) + "}"


CHAIN = {"subject": "orchestrator", "sub_iss": "https://mandate.example", "holder": "orchestrator/researcher-1",
         "actors": ["orchestrator/researcher-1"], "depth": 1, "scopes": ["tools:*"], "audiences": [SERVER], "root": "r",
         "lineage": ["r"], "bound": False}


def go_and_python(tmp: Path, texts: list[str]) -> tuple[list[tuple[str, str, str]], int]:
    """Decide one tools/call per text with Go's runner and Python's; each
    text Python reads has a policy permitting exactly the record Python made."""
    policies = ['@id("never") forbid (principal, action, resource) when { context.holder == "nobody" };']
    cases = []
    accepted: list[int] = []
    for i, t in enumerate(texts):
        try:
            rec = parse_arguments(t)
            policies.append(f'@id("c{i}") permit (principal, action, resource == Tool::"t{i}") when {{ context.arguments == {cedar_literal(rec)} }};')
            accepted.append(i)
        except InvalidArgumentsError:
            pass
        cases.append({"name": f"case {i}", "groups": [], "method": "tools/call", "params": {"name": f"t{i}", "arguments": t},
                      "chain": CHAIN, "expect": "?", "policies": []})
    doc = {"server": SERVER, "policies": [{"name": "generated.cedar", "source": "\n".join(policies)}], "cases": cases}
    path = tmp / "mcp-generated.json"
    path.write_text(json.dumps(doc))
    r = subprocess.run([mandate_binary(), "vectors", "verify", str(path)], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    go = [json.loads(line)["verdict"] for line in r.stdout.decode().splitlines()]
    py = [x["verdict"] for x in run_mcp(doc)]
    assert len(go) == len(py) == len(texts)
    # Python's own Cedar sees the record it made (its JSON form read back by
    # cedarpy) equal to the literal: the comparison with Go means something.
    assert all(py[i] == "allow" for i in accepted), [texts[i] for i in accepted if py[i] != "allow"]
    return [(t, g, p) for t, g, p in zip(texts, go, py) if g != p], len(accepted)


# Where this SDK refuses, on purpose, what Go decides: a record whose only
# member is one of Cedar's JSON escapes (Go builds its records natively).
def _escape_only(t: str) -> bool:
    try:
        parse_arguments(t)
    except InvalidArgumentsError as e:
        return "Cedar's JSON would read it as an escape" in e.error_description
    return False


@settings(max_examples=12, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(arguments_text(), min_size=30, max_size=60))
def test_python_and_go_make_the_same_records(tmp_path_factory: Any, texts: list[str]) -> None:
    diff, accepted = go_and_python(Path(tmp_path_factory.mktemp("mcp")), texts)
    diff = [d for d in diff if not (d[1] == "deny" and d[2] == "invalid_arguments" and _escape_only(d[0]))]
    assert not diff, "\n".join(f"{t!r}: go {g}, python {p}" for t, g, p in diff)


JSONISH = st.text(alphabet='{}[]",:0123456789.eE+-aeiklnprstuxbcdhjmy\\ u\u017f\u212a\xa0\u3000\v', max_size=60)


@settings(max_examples=8, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.one_of(JSONISH, JSONISH.map(lambda s: "{" + s), JSONISH.map(lambda s: '{"a":' + s + "}")), min_size=40, max_size=80))
def test_python_and_go_agree_on_raw_text(tmp_path_factory: Any, texts: list[str]) -> None:
    diff, _ = go_and_python(Path(tmp_path_factory.mktemp("raw")), texts)
    assert not diff, "\n".join(f"{t!r}: go {g}, python {p}" for t, g, p in diff)


def test_python_and_go_at_the_bounds(tmp_path: Path) -> None:
    fill = 65536 - len('{"q":""}')
    texts = ['{"q":"' + "x" * fill + '"}', '{"q":"' + "x" * (fill + 1) + '"}', " \u3000{}\xa0", "\x1c{}", "{}\x1c", "\u0085{}\u0085",
             '{"a":' + "[" * 7 + "1" + "]" * 7 + "}", '{"a":' + "[" * 8 + "1" + "]" * 8 + "}", '{"a":1e' + "0" * 30 + "1}",
             '{"a":' + "1" * 5000 + "}", '{"a":0.' + "0" * 5000 + "1}", '{"a":12345678901234567e-1}', '{"a":1234567890123456.7e-1}',
             '{"a":"\\ud800\\udc00"}', '{"K":1,"k":2}', '{"ß":1,"ss":2}', '{"ǅ":1,"ǆ":2}', '{"__extn":1,"b":2}', '{"a":{}}']
    diff, _ = go_and_python(tmp_path, texts)
    assert not diff, "\n".join(f"{t[:60]!r}: go {g}, python {p}" for t, g, p in diff)
