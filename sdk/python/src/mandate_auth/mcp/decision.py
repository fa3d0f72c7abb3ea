"""The decision on one MCP request (docs/mcp.md; Go's ``policy.MCPRequest``
and ``chain/mcpguard``), in the order every Mandate guard makes it:

1. **scope**: a ``tools/call`` of tool T needs ``tools:T``,
   ``resources/read`` needs ``resources:read``, ``prompts/get`` needs
   ``prompts:get`` (other methods none) — else ``insufficient_scope``;
2. **arguments**: their JSON text becomes a Cedar record
   (:func:`~mandate_auth.mcp.arguments.parse_arguments`) — else
   ``invalid_arguments``;
3. **Cedar**: principal ``Agent::"<holder>"`` in its groups, action
   ``Action::"<method>"``, resource ``Tool::"<name>"``,
   ``Resource::"<uri>"``, ``Prompt::"<name>"`` or ``Server::"<server>"``,
   context the chain's per-call context plus ``server`` and ``arguments`` —
   ``allow`` or ``deny``, any evaluation error denying.

The guard (:mod:`mandate_auth.mcp.guard`) and the conformance runner
decide through this one function, so the shared vectors hold the guard.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..cedar import Entity, PolicySet, chain_args
from ..chain import Chain
from ..scope import covered_by
from .arguments import InvalidArgumentsError, parse_arguments

__all__ = [
    "ACTING_EXEMPT",
    "MCPDecision",
    "MCPPolicy",
    "required_scope",
    "target",
    "is_decided",
    "VERDICT_ALLOW",
    "VERDICT_DENY",
    "VERDICT_INSUFFICIENT_SCOPE",
    "VERDICT_INVALID_ARGUMENTS",
]

VERDICT_ALLOW = "allow"
VERDICT_DENY = "deny"
VERDICT_INSUFFICIENT_SCOPE = "insufficient_scope"
VERDICT_INVALID_ARGUMENTS = "invalid_arguments"

ACTING_EXEMPT = frozenset({
    "initialize", "ping", "server/discover",
    "tools/list", "resources/list", "resources/templates/list", "prompts/list",
})
"""The methods no policy decides: the protocol's own housekeeping (the
``initialize`` handshake, and ``server/discover``, its stateless successor
in the 2026-07-28 protocol) and the lists (``tools/list`` is filtered by
scope instead). Notifications are not decided either; every other method is."""

_TARGETS = {"tools/call": "Tool", "resources/read": "Resource", "prompts/get": "Prompt"}
_SCOPES = {"resources/read": "resources:read", "prompts/get": "prompts:get"}


def is_decided(method: str) -> bool:
    """Whether a request of ``method`` is decided by policy."""
    return method not in ACTING_EXEMPT and not method.startswith("notifications/")


def required_scope(method: str, name: str = "") -> str:
    """The scope a request of ``method`` needs before policy decides it
    (``""`` for none): ``tools:<name>``, ``resources:read``, ``prompts:get``."""
    if method == "tools/call":
        return "tools:" + name
    return _SCOPES.get(method, "")


def target(method: str, server: str, name: str = "", uri: str = "") -> tuple[str, Entity]:
    """The Cedar action and resource of a request."""
    t = _TARGETS.get(method)
    if t is None:
        return method, Entity("Server", server)
    return method, Entity(t, uri if t == "Resource" else name)


@dataclass(frozen=True)
class MCPDecision:
    """The decision on one MCP request. ``verdict`` is ``allow``, ``deny``,
    ``insufficient_scope`` or ``invalid_arguments``; ``policies`` the ids that
    determined an allow or a deny (sorted; empty for Cedar's default deny and
    for a request refused before Cedar); ``scope`` the scope an
    ``insufficient_scope`` request lacks."""

    verdict: str
    policies: list[str] = field(default_factory=list)
    reason: str = ""
    scope: str = ""

    @property
    def allow(self) -> bool:
        return self.verdict == VERDICT_ALLOW


class MCPPolicy:
    """Cedar policy for the MCP requests of one server, whose canonical URI
    is ``server`` (the audience of its tokens, and the context's
    ``server``). ``groups`` names a holder's groups (``principal in
    Group::"…"``)."""

    def __init__(self, policy: PolicySet, server: str, groups: Callable[[str], Sequence[str]] | None = None) -> None:
        if policy is None or not server:
            raise ValueError("an MCPPolicy needs a policy set and the server's canonical URI")
        self.policy = policy
        self.server = server
        self.groups = groups

    def decide(
        self,
        chain: Chain,
        method: str,
        *,
        name: str = "",
        uri: str = "",
        arguments: str | bytes | None = None,
        groups: Sequence[str] | None = None,
    ) -> MCPDecision:
        """Decide a request ``method`` (with the tool or prompt ``name``, the
        resource ``uri`` and the ``arguments``' JSON text — a guard passes
        those of ``tools/call`` and ``prompts/get`` only) made with
        ``chain``. ``groups`` overrides the configured lookup."""
        if groups is None:
            groups = list(self.groups(chain.holder)) if self.groups is not None else []
        return decide_mcp(
            self.policy,
            server=self.server,
            method=method,
            name=name,
            uri=uri,
            arguments=arguments,
            groups=groups,
            **chain_args(chain),
        )


def decide_mcp(
    policy: PolicySet,
    *,
    server: str,
    method: str,
    name: str = "",
    uri: str = "",
    arguments: str | bytes | None = None,
    groups: Sequence[str] = (),
    holder: str,
    subject: str = "",
    subject_issuer: str = "",
    actors: Sequence[str] = (),
    depth: int = 0,
    scopes: Sequence[str] = (),
    audiences: Sequence[str] = (),
    root: str = "",
    lineage: Sequence[str] = (),
    bound: bool = False,
) -> MCPDecision:
    """Decide one MCP request from the chain's fields (what
    :meth:`MCPPolicy.decide` and the conformance runner call)."""
    scope = required_scope(method, name)
    if scope and not covered_by(scopes, scope):
        return MCPDecision(VERDICT_INSUFFICIENT_SCOPE, [], "insufficient_scope: the token does not grant " + scope, scope)
    try:
        args: dict[str, Any] = parse_arguments(arguments)
    except InvalidArgumentsError as e:
        return MCPDecision(VERDICT_INVALID_ARGUMENTS, [], e.error_description)
    action, resource = target(method, server, name, uri)
    d = policy.authorize_call(
        holder=holder,
        action=action,
        resource=resource,
        groups=groups,
        subject=subject,
        subject_issuer=subject_issuer,
        actors=actors,
        depth=depth,
        scopes=scopes,
        audiences=audiences,
        root=root,
        lineage=lineage,
        bound=bound,
        extra_context={"server": server, "arguments": args},
    )
    return MCPDecision(VERDICT_ALLOW if d.allow else VERDICT_DENY, list(d.policies), d.reason)
