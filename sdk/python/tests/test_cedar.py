"""Per-call Cedar decisions: the same files, ids and context as Go's."""

from __future__ import annotations

from pathlib import Path

import pytest

from mandate_auth import PolicyDeniedError
from mandate_auth.cedar import NO_POLICY_PERMITS, Authorizer, Entity, PolicyError, PolicySet, _policy_lines, scope_patterns
from mandate_auth.chain import Chain

from .conftest import POLICIES

ORDERS = Entity("Table", "orders")


def chain(**over: object) -> Chain:
    base: dict[str, object] = dict(jti="j", subject="orchestrator", subject_issuer="https://m.example", holder="db-agent",
                                   actors=("db-agent", "researcher"), lineage=("r", "p"), root="r", depth=2,
                                   scopes=("db:read:orders",), audiences=("https://orders.example",), issued_at=0,
                                   expires_at=10, jkt="")
    base.update(over)
    return Chain(**base)  # type: ignore[arg-type]


def test_the_orders_api_policy_from_the_repository() -> None:
    ps = PolicySet.load_dir(POLICIES / "api")
    assert ps.ids() == ["orders-depth-limit", "orders-read"]
    assert ps.position("orders-read").endswith("orders.cedar:6")
    az = Authorizer(ps)
    d = az.authorize(chain(), "call", ORDERS)
    assert d.allow and d.policies == ["orders-read"]
    d = az.authorize(chain(depth=4), "call", ORDERS)
    assert not d.allow and d.forbidden and d.policies == ["orders-depth-limit"]
    d = az.authorize(chain(scopes=("db:read:customers",)), "call", ORDERS)
    assert not d.allow and not d.forbidden and d.policies == [] and d.reason == NO_POLICY_PERMITS
    with pytest.raises(PolicyDeniedError) as e:
        az.check(chain(depth=4), "call", ("Table", "orders"))
    assert e.value.policies == ["orders-depth-limit"] and e.value.error == "insufficient_scope"


def test_an_erroring_forbid_denies_naming_it() -> None:
    src = '''
@id("allow-all")
permit (principal, action, resource);

forbid (principal, action, resource)
when { context.no_such_attribute == 1 };
'''
    ps = PolicySet([("/x/guard.cedar", src)])
    d = ps.authorize_call(holder="a", resource=ORDERS)
    assert not d.allow and d.policies == ["guard.cedar:5"] and "failed to evaluate" in d.reason


def test_groups_are_the_principals_parents() -> None:
    src = '@id("members") permit (principal in Group::"research-agents", action == Action::"call", resource);'
    az = Authorizer(PolicySet.parse(src), groups=lambda holder: ["research-agents"] if holder == "researcher" else [])
    assert az.authorize(chain(holder="researcher"), "call", ORDERS).allow
    assert not az.authorize(chain(holder="db-agent"), "call", ORDERS).allow
    # The holder's groups win when the resource names the holder itself.
    assert az.authorize(chain(holder="researcher"), "call", ("Agent", "researcher")).allow


def test_the_context_carries_the_chain() -> None:
    src = '''@id("ctx") permit (principal == Agent::"db-agent", action == Action::"read", resource)
when { context.subject == "orchestrator" && context.sub_iss == "https://m.example" && context.holder == "db-agent"
       && context.actors.contains("researcher") && context.depth == 2 && context.root == "r" && context.lineage.contains("p")
       && context.audiences.contains("https://orders.example") && context.scopes.contains("db:read:orders")
       && !context.bound && context.scope_patterns_all.contains("db:read:*") && context.scope_patterns.contains("*:read:*") };'''
    az = Authorizer(PolicySet.parse(src))
    assert az.authorize(chain(), "read", ORDERS).allow
    assert not az.authorize(chain(jkt="k"), "read", ORDERS).allow


def test_scope_patterns_read_what_scopes_grant() -> None:
    from mandate_auth.cedar import _literal_patterns

    pats = _literal_patterns(['"*:write:*" "*:read:*" "db:read:*" "db:read:orders"'])
    some, every = scope_patterns(pats, ["db:*"])
    assert "*:write:*" in some and "*:read:*" in some and "*:read:*" not in every
    some, every = scope_patterns(pats, ["db:read:orders", "db:read:*"])
    assert set(every) == {"*:read:*", "db:read:*"} and "*:write:*" not in some
    some, every = scope_patterns(pats, ["*"])
    assert set(some) == {"*:write:*", "*:read:*", "db:read:*", "db:read:orders"} and every == []
    assert scope_patterns(pats, []) == ([], [])


def test_loading_refuses_what_go_refuses(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="no \\*.cedar files"):
        PolicySet.load_dir(tmp_path)
    (tmp_path / "a.cedar").write_text("permit (principal, action, resource")
    with pytest.raises(PolicyError, match="a.cedar"):
        PolicySet.load_dir(tmp_path)
    (tmp_path / "a.cedar").write_text("// nothing here\n")
    with pytest.raises(PolicyError, match="holds no policy"):
        PolicySet.load_dir(tmp_path)
    (tmp_path / "a.cedar").write_text('@id("x") permit (principal, action, resource);\n@id("x") forbid (principal, action, resource);')
    with pytest.raises(PolicyError, match="already used"):
        PolicySet.load_dir(tmp_path)


def test_policy_lines_skip_comments_and_strings() -> None:
    src = '// a; "b"\n\n@id("x;y")\npermit (principal, action, resource)\nwhen { context.s == "a;\\"b" };\n  // ;\nforbid (principal, action, resource);\n'
    assert _policy_lines(src) == [3, 7]
