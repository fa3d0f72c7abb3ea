"""Per-call Cedar decisions for resource servers, with the same policy files
and the same request as Go's verifier (``policy.AuthorizeCall``,
``chain/authz``): principal ``Agent::"<holder>"`` in its groups, the action
and resource the resource server names, and the chain in the context —
``holder``, ``subject``, ``sub_iss``, ``actors``, ``depth``, ``scopes``,
``scope_patterns``, ``scope_patterns_all``, ``audiences``, ``root``,
``lineage``, ``bound``.

Optional: it needs ``cedarpy`` (``pip install 'mandate-auth[cedar]'``);
nothing else in this SDK imports it.

Any evaluation error denies — also an erroring ``forbid``, which Cedar
itself skips: the diagnostics are checked and a request with any error is
denied, naming the failing policies. Policy ids are Go's: a policy's
``@id("...")``, else ``FILE:LINE`` of its first line.
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from .chain import Chain
from .errors import PolicyDeniedError
from .scope import wildcard

__all__ = ["PolicyError", "PolicySet", "Decision", "Entity", "Authorizer", "NO_POLICY_PERMITS", "context_attributes"]

NO_POLICY_PERMITS = "no policy permits this request"
MAX_PATTERNS = 256


class PolicyError(ValueError):
    """Policies that cannot be loaded (a parse error names the file)."""


@dataclass(frozen=True)
class Entity:
    """A Cedar entity, such as ``Table::"orders"``."""

    type: str
    id: str


@dataclass(frozen=True)
class Decision:
    """A policy outcome and the ids of the policies that determined it: the
    permitting ones on allow; the forbidding or failing ones on deny (none
    for Cedar's default deny). ``forbidden`` is set only when forbid
    policies determined a denial."""

    allow: bool
    policies: list[str] = field(default_factory=list)
    reason: str = ""
    forbidden: bool = False


# -- scope patterns (Go's policy/patterns.go) --------------------------------------


@dataclass(frozen=True)
class _Pattern:
    text: str
    segs: tuple[str, ...]


def _seg(p: str, s: str) -> bool:
    return p == "*" or p == s


def _grant(scope: str) -> tuple[tuple[str, ...], bool]:
    prefix, wild = wildcard(scope)
    if wild and prefix == "":
        return (), True
    if wild:
        return tuple(prefix[:-1].split(":")), True
    return tuple(scope.split(":")), False


def _matches(p: _Pattern, c: tuple[str, ...]) -> bool:
    m = len(p.segs)
    if m > len(c) or (m < len(c) and p.segs[m - 1] != "*"):
        return False
    return all(_seg(p.segs[i], c[i]) for i in range(m))


def _overlaps(p: _Pattern, g: tuple[tuple[str, ...], bool]) -> bool:
    segs, rest = g
    if not rest:
        return _matches(p, segs)
    k, m = len(segs), len(p.segs)
    if not all(_seg(p.segs[i], segs[i]) for i in range(min(k, m))):
        return False
    return m > k or p.segs[m - 1] == "*"


def _contains(p: _Pattern, g: tuple[tuple[str, ...], bool]) -> bool:
    segs, rest = g
    if not rest:
        return _matches(p, segs)
    k, m = len(segs), len(p.segs)
    if m > k + 1 or p.segs[m - 1] != "*":
        return False
    return all(_seg(p.segs[i], segs[i]) for i in range(m - 1))


_STRING_LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"')


def _literal_patterns(sources: Iterable[str]) -> list[_Pattern]:
    seen: set[str] = set()
    out: list[_Pattern] = []
    for src in sources:
        for m in _STRING_LITERAL.finditer(src):
            t = m.group(1)
            if t == "" or t in seen or any(c in t for c in ' \\\t"') or len(out) == MAX_PATTERNS:
                continue
            seen.add(t)
            out.append(_Pattern(t, tuple(t.split(":"))))
    return out


def scope_patterns(patterns: Sequence[_Pattern], scopes: Sequence[str]) -> tuple[list[str], list[str]]:
    """The patterns some scope can grant something matching, and those
    everything every scope grants matches."""
    grants = [_grant(s) for s in scopes]
    some, every = [], []
    for p in patterns:
        if any(_overlaps(p, g) for g in grants):
            some.append(p.text)
        if grants and all(_contains(p, g) for g in grants):
            every.append(p.text)
    return some, every


# -- loading -------------------------------------------------------------------------


def _policy_lines(src: str) -> list[int]:
    """The line on which each policy of a Cedar document starts (its first
    token: an annotation or the effect), in order."""
    lines, i, n, line, start = [], 0, len(src), 1, True
    while i < n:
        c = src[i]
        if c == "\n":
            line += 1
            i += 1
        elif c in " \t\r\f\v":
            i += 1
        elif src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif c == '"':
            if start:
                lines.append(line)
                start = False
            i += 1
            while i < n and src[i] != '"':
                if src[i] == "\\":
                    i += 1
                elif src[i] == "\n":
                    line += 1
                i += 1
            i += 1
        else:
            if start:
                lines.append(line)
                start = False
            if c == ";":
                start = True
            i += 1
    return lines


_CONTEXT = {"Var": "context"}


@functools.lru_cache(maxsize=1024)
def _quoted(pid: str) -> str:
    return json.dumps(pid)


def context_attributes(policies: Iterable[Any]) -> frozenset[str] | None:
    """The context attributes the policies (in Cedar's JSON form, EST) read:
    ``context.x``, ``context["x"]`` and ``context has x``; None when one uses
    the context otherwise (as a whole), so all of it must be given. A
    context cut down to these attributes decides every request alike — an
    attribute no policy names can change no evaluation — and is cheaper for
    Cedar to build (it parses the whole context on every request)."""
    attrs: set[str] = set()
    whole = False

    def walk(x: Any) -> None:
        nonlocal whole
        if isinstance(x, dict):
            for op in (".", "has"):
                v = x.get(op)
                if len(x) == 1 and isinstance(v, dict) and v.get("left") == _CONTEXT and isinstance(v.get("attr"), str):
                    attrs.add(v["attr"])
                    return
            if x == _CONTEXT:
                whole = True
                return
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    for p in policies:
        walk(p)
    return None if whole else frozenset(attrs)


def _cedarpy() -> Any:
    try:
        import cedarpy
    except ImportError as e:  # pragma: no cover - the extra is installed in tests
        raise PolicyError("per-call Cedar decisions need cedarpy: pip install 'mandate-auth[cedar]'") from e
    return cedarpy


def _internal_api(cedarpy: Any) -> Any:
    """cedarpy's extension module when it has the entry point its public
    wrapper calls (``is_authorized_batch`` over JSON text), else None: the
    public wrapper is used then."""
    internal = getattr(cedarpy, "_internal", None)
    entities = getattr(cedarpy, "Entities", None)
    if not callable(getattr(internal, "is_authorized_batch", None)) or not callable(getattr(entities, "from_json_str", None)):
        return None
    return internal


class PolicySet:
    """An immutable, parsed set of Cedar policies with Mandate's ids."""

    def __init__(self, files: Sequence[tuple[str, str]]) -> None:
        cedarpy = _cedarpy()
        static: dict[str, Any] = {}
        self._positions: dict[str, str] = {}
        for name, src in files:
            try:
                doc = json.loads(cedarpy.policies_to_json_str(src))
            except ValueError as e:
                raise PolicyError(f"policy: {name}: {e}") from None
            if doc.get("templates"):
                raise PolicyError(f"policy: {name}: templates are not supported")
            policies = doc.get("staticPolicies") or {}
            if not policies and name.endswith(".cedar"):
                raise PolicyError(f"policy: {name} holds no policy (an emptied file would silently drop its rules; delete it instead)")
            lines = _policy_lines(src)
            ordered = sorted(policies.items(), key=lambda kv: int(kv[0][6:]) if kv[0][6:].isdigit() else 0)
            if len(lines) != len(ordered):
                raise PolicyError(f"policy: {name}: cannot locate its policies")
            for (_, p), line in zip(ordered, lines):
                pos = f"{name}:{line}"
                ann = p.get("annotations") or {}
                pid = ann["id"] if isinstance(ann.get("id"), str) else f"{os.path.basename(name)}:{line}"
                if pid in self._positions:
                    raise PolicyError(f"policy: id {pid!r} at {pos} is already used at {self._positions[pid]}")
                self._positions[pid] = pos
                static[pid] = p
        if not static:
            raise PolicyError("policy: the policy files hold no policy")
        self._ps = cedarpy.PolicySet.from_json_str(json.dumps({"staticPolicies": static, "templates": {}, "templateLinks": []}))
        self._patterns = _literal_patterns(src for _, src in files)
        self._pattern_cache: dict[tuple[str, ...], tuple[list[str], list[str]]] = {}
        self._context_attrs = context_attributes(static.values())
        self._entity_cache: dict[tuple[str, tuple[str, ...], str, str], Any] = {}
        self._cedarpy = cedarpy
        self._internal = _internal_api(cedarpy)

    @classmethod
    def load_dir(cls, path: str | os.PathLike[str]) -> "PolicySet":
        """Every ``*.cedar`` file of a directory, in name order (Go's LoadDir)."""
        names = sorted(f for f in os.listdir(path) if f.endswith(".cedar"))
        if not names:
            raise PolicyError(f"policy: no *.cedar files in {os.fspath(path)}")
        files = []
        for f in names:
            p = os.path.join(path, f)
            with open(p, encoding="utf-8") as fh:
                files.append((p, fh.read()))
        return cls(files)

    @classmethod
    def parse(cls, source: str, name: str = "policies.cedar") -> "PolicySet":
        return cls([(name, source)])

    def ids(self) -> list[str]:
        return sorted(self._positions)

    def position(self, pid: str) -> str:
        return self._positions.get(pid, "")

    def authorize_call(
        self,
        *,
        holder: str,
        action: str = "call",
        resource: Entity,
        groups: Sequence[str] = (),
        subject: str = "",
        subject_issuer: str = "",
        actors: Sequence[str] = (),
        depth: int = 0,
        scopes: Sequence[str] = (),
        audiences: Sequence[str] = (),
        root: str = "",
        lineage: Sequence[str] = (),
        bound: bool = False,
        extra_context: Mapping[str, Any] | None = None,
    ) -> Decision:
        """Decide one call, as Go's ``Set.AuthorizeCall`` does.
        ``extra_context`` adds members to the context in Cedar's JSON form
        (an MCP request's ``server`` and ``arguments``: see
        :mod:`mandate_auth.mcp`)."""
        want = self._context_attrs
        if want is None or "scope_patterns" in want or "scope_patterns_all" in want:
            some, every = self._patterns_of(tuple(scopes))
        else:
            some, every = [], []
        context = {
            "scopes": scopes,
            "scope_patterns": some,
            "scope_patterns_all": every,
            "holder": holder,
            "subject": subject,
            "sub_iss": subject_issuer,
            "audiences": audiences,
            "depth": depth,
            "actors": actors,
            "root": root,
            "lineage": lineage,
            "bound": bound,
        }
        if extra_context:
            context.update(extra_context)
        if want is not None:
            context = {k: context[k] for k in want if k in context}
        for k in ("scopes", "audiences", "actors", "lineage"):
            if k in context and type(context[k]) is not list:
                context[k] = list(context[k])
        principal = {"type": "Agent", "id": holder}
        res = {"type": resource.type, "id": resource.id}
        request = {"principal": principal, "action": {"type": "Action", "id": action or "call"}, "resource": res, "context": context}
        try:
            decision, reasons, errors = self._evaluate(request, (holder, tuple(dict.fromkeys(groups)), resource.type, resource.id))
        except Exception as e:  # any failure to evaluate denies
            return Decision(allow=False, reason=f"the request could not be evaluated ({type(e).__name__}), so it is denied")
        if decision not in ("Allow", "Deny"):  # Cedar could not even build the request
            return Decision(allow=False, reason=f"the request could not be evaluated ({errors[0] if errors else decision}), so it is denied")
        allowed = decision == "Allow"
        if errors:
            # Sorted, as Go names them (Cedar reports them in no fixed order).
            failing = sorted((self._failing_id(msg), msg) for msg in errors)
            ids = [pid for pid, _ in failing]
            return Decision(allow=False, policies=ids, reason=f"policy {ids[0]!r} failed to evaluate ({failing[0][1]}), so the request is denied")
        ids = sorted(reasons)
        if allowed:
            return Decision(allow=True, policies=ids, reason="permitted by policy " + ", ".join(map(_quoted, ids)))
        if ids:
            return Decision(allow=False, forbidden=True, policies=ids, reason="denied by policy " + ", ".join(map(_quoted, ids)))
        return Decision(allow=False, policies=[], reason=NO_POLICY_PERMITS)

    def _patterns_of(self, scopes: tuple[str, ...]) -> tuple[list[str], list[str]]:
        """scope_patterns, remembered per scope list (a chain's scopes repeat
        request after request)."""
        hit = self._pattern_cache.get(scopes)
        if hit is None:
            hit = scope_patterns(self._patterns, scopes)
            if len(self._pattern_cache) >= 4096:
                self._pattern_cache.clear()
            self._pattern_cache[scopes] = hit
        return list(hit[0]), list(hit[1])

    @staticmethod
    def _entities(key: tuple[str, tuple[str, ...], str, str]) -> list[dict[str, Any]]:
        """The request's entities: the holder in its groups, and the resource
        (unless it is the holder: then the holder's groups win)."""
        holder, groups, rtype, rid = key
        principal = {"type": "Agent", "id": holder}
        res = {"type": rtype, "id": rid}
        ents: list[dict[str, Any]] = [{"uid": principal, "attrs": {}, "parents": [{"type": "Group", "id": g} for g in groups]}]
        if res != principal:
            ents.append({"uid": res, "attrs": {}, "parents": []})
        return ents

    def _entities_handle(self, key: tuple[str, tuple[str, ...], str, str]) -> Any:
        """The entities parsed by Cedar once, remembered per holder, groups and
        resource (they repeat request after request)."""
        h = self._entity_cache.get(key)
        if h is None:
            h = self._cedarpy.Entities.from_json_str(json.dumps(self._entities(key)))._inner
            if len(self._entity_cache) >= 1024:
                self._entity_cache.clear()
            self._entity_cache[key] = h
        return h

    def _evaluate(self, request: dict[str, Any], key: tuple[str, tuple[str, ...], str, str]) -> tuple[str, list[str], list[str]]:
        """Cedar's answer: its decision (Allow, Deny, NoDecision), the
        determining policies, the evaluation errors."""
        internal = self._internal
        if internal is not None:
            # cedarpy's own wrapper, minus its copies: the context as JSON
            # text, the entities parsed once, the answer read once.
            req = dict(request)
            req["context"] = json.dumps(request["context"])
            raw = internal.is_authorized_batch([req], self._ps, self._entities_handle(key), None, False)[0]
            out = json.loads(raw)
            diag = out.get("diagnostics") or {}
            return str(out.get("decision")), list(diag.get("reason") or ()), [str(e) for e in diag.get("errors") or ()]
        r = self._cedarpy.is_authorized(request, self._ps, self._entities(key))
        return r.decision.name, list(r.diagnostics.reasons), list(r.diagnostics.errors)

    def _failing_id(self, msg: str) -> str:
        prefix = "error while evaluating policy `"
        if msg.startswith(prefix):
            rest = msg[len(prefix) :]
            for pid in sorted(self._positions, key=len, reverse=True):
                if rest.startswith(pid + "`"):
                    return pid
        return "?"


def chain_args(chain: Chain) -> dict[str, Any]:
    """The fields of ``chain`` a decision reads, as the keyword arguments of
    :meth:`PolicySet.authorize_call` (and of
    :func:`~mandate_auth.mcp.decision.decide_mcp`)."""
    return {
        "holder": chain.holder,
        "subject": chain.subject,
        "subject_issuer": chain.subject_issuer,
        "actors": chain.actors,
        "depth": chain.depth,
        "scopes": chain.scopes,
        "audiences": chain.audiences,
        "root": chain.root,
        "lineage": chain.lineage,
        "bound": chain.bound,
    }


class Authorizer:
    """Per-call policy for the chains a verifier checks. ``groups``, when
    given, names a holder's groups (Mandate's tokens carry none), so call
    policies can say ``principal in Group::"..."``."""

    def __init__(self, policy: PolicySet, groups: Callable[[str], Sequence[str]] | None = None) -> None:
        if policy is None:
            raise ValueError("an Authorizer needs a policy set")
        self.policy = policy
        self.groups = groups

    def authorize(self, chain: Chain, action: str = "call", resource: Entity | tuple[str, str] | None = None) -> Decision:
        """Whether ``chain`` may perform ``action`` on ``resource``."""
        if resource is None:
            raise ValueError("a call decision needs a resource entity")
        if isinstance(resource, tuple):
            resource = Entity(*resource)
        return self.policy.authorize_call(
            groups=list(self.groups(chain.holder)) if self.groups else [],
            action=action,
            resource=resource,
            **chain_args(chain),
        )

    def check(self, chain: Chain, action: str = "call", resource: Entity | tuple[str, str] | None = None) -> Decision:
        """:meth:`authorize`, raising :class:`PolicyDeniedError` on a denial
        (which :class:`~mandate_auth.asgi.MandateMiddleware` answers 403)."""
        d = self.authorize(chain, action, resource)
        if not d.allow:
            raise PolicyDeniedError(d.reason, d.policies)
        return d
