"""The conformance runner: ``python -m mandate_auth.conformance FILE``.

It reads one vector file (testdata/vectors/README.md in the repository) and
prints one JSON line per case, ``{"name": ..., "verdict": ...}``, then exits
0 — a verdict differing from ``expect`` is not the runner's failure; whoever
runs it compares. Three kinds of file:

- verification (``jwks``): one offline :class:`~mandate_auth.verifier.Verifier`
  configured as the file says (its clock fixed at ``now``), every case in
  order (a DPoP replay cache shared by the cases of the file); the verdict
  is ``ok`` or the refusal's class;
- scope (``covers``): ``"<parent> ⊇ <child>"`` and whether it covers;
- per-call Cedar decisions (``policies``): ``allow`` or ``deny``.

Exit status 2: the file cannot be read or is of no known kind.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Iterator

from .errors import TokenError
from .scope import covers
from .verifier import RevocationSet, Verifier

__all__ = ["run", "run_verify", "run_scope", "run_call", "main"]


def verdict(err: BaseException | None) -> str:
    if err is None:
        return "ok"
    if isinstance(err, TokenError):
        return err.verdict
    return f"error: {type(err).__name__}: {err}"


def run_verify(f: dict[str, Any]) -> Iterator[dict[str, Any]]:
    now = float(f["now"])
    v = Verifier(
        issuer=f["issuer"],
        audience=f["audience"],
        keys=f["jwks"],
        revocations=RevocationSet(f.get("revoked") or []),
        leeway=float(f.get("leeway_seconds") or 0),
        public_url=f.get("public_url") or None,
        now=lambda: now,
    )
    for c in f.get("cases") or []:
        err: BaseException | None = None
        try:
            d = c.get("dpop")
            if d:
                v.verify_dpop(c["token"], d["proof"], d["method"], d["url"])
            else:
                v.verify(c["token"])
        except Exception as e:  # a verdict, or a bug the comparison will show
            err = e
        yield {"name": c.get("name", ""), "verdict": verdict(err)}


def run_scope(f: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for q in f["covers"]:
        if not (isinstance(q, list) and len(q) == 3 and isinstance(q[0], str) and isinstance(q[1], str)):
            raise ValueError("covers: want [parent, child, bool]")
        yield {"name": f"{q[0]} ⊇ {q[1]}", "verdict": covers(q[0], q[1])}


def _repo_root(start: str) -> str | None:
    d = os.path.abspath(start)
    while True:
        if os.path.exists(os.path.join(d, "go.mod")):
            return d
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def _policy_set(spec: Any, base: str) -> Any:
    from .cedar import PolicySet

    if isinstance(spec, list):
        return PolicySet([(p["name"], p["source"]) for p in spec])
    if isinstance(spec, str):
        for root in (base, _repo_root(base), os.getcwd()):
            if root and os.path.isdir(os.path.join(root, spec)):
                return PolicySet.load_dir(os.path.join(root, spec))
        return PolicySet.parse(spec, "inline.cedar")
    raise ValueError("policies: want a list of {name, source}, a directory or Cedar text")


def run_call(f: dict[str, Any], base: str = ".") -> Iterator[dict[str, Any]]:
    from .cedar import Entity

    ps = _policy_set(f["policies"], base)
    for c in f.get("cases") or []:
        ch = c.get("chain") or {}
        res = c.get("resource") or {}
        d = ps.authorize_call(
            holder=ch.get("holder", ""),
            groups=c.get("groups") or [],
            action=c.get("action") or "call",
            resource=Entity(res.get("type", ""), res.get("id", "")),
            subject=ch.get("subject", ""),
            subject_issuer=ch.get("sub_iss", ""),
            actors=ch.get("actors") or [],
            depth=int(ch.get("depth") or 0),
            scopes=ch.get("scopes") or [],
            audiences=ch.get("audiences") or [],
            root=ch.get("root", ""),
            lineage=ch.get("lineage") or [],
            bound=bool(ch.get("bound")),
        )
        yield {"name": c.get("name", ""), "verdict": "allow" if d.allow else "deny", "policies": d.policies}


def run(path: str) -> list[dict[str, Any]]:
    """Every case of the vector file at ``path``, with its verdict."""
    with open(path, encoding="utf-8") as fh:
        f = json.load(fh)
    if not isinstance(f, dict):
        raise ValueError("not a JSON object")
    if "covers" in f:
        return list(run_scope(f))
    if "policies" in f:
        return list(run_call(f, os.path.dirname(os.path.abspath(path))))
    if "jwks" in f:
        return list(run_verify(f))
    raise ValueError("neither a verification (jwks), a scope (covers) nor a call (policies) file")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m mandate_auth.conformance FILE", file=sys.stderr)
        return 2
    try:
        results = run(args[0])
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"conformance: {args[0]}: {e}", file=sys.stderr)
        return 2
    out = sys.stdout.buffer
    for r in results:
        out.write(json.dumps({"name": r["name"], "verdict": r["verdict"]}, ensure_ascii=False).encode("utf-8") + b"\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
