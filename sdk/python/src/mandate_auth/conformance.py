"""The conformance runner: ``python -m mandate_auth.conformance FILE``.

It reads one vector file (testdata/vectors/README.md in the repository) and
prints one JSON line per case, ``{"name": ..., "verdict": ...}``, then exits
0 — a verdict differing from ``expect`` is not the runner's failure; whoever
runs it compares. Five kinds of file:

- verification (``jwks``): one offline :class:`~mandate_auth.verifier.Verifier`
  configured as the file says (its clock fixed at ``now``), every case in
  order (a DPoP replay cache shared by the cases of the file); the verdict
  is ``ok`` or the refusal's class;
- scope (``covers``): ``"<parent> ⊇ <child>"`` and whether it covers;
- per-call Cedar decisions (``policies``): ``allow`` or ``deny``;
- MCP requests (``server``): ``allow``, ``deny``, ``insufficient_scope`` or
  ``invalid_arguments``, decided by :func:`mandate_auth.mcp.decide_mcp`,
  the function the MCP guard decides by;
- the revocation feed (``max_staleness_seconds``): per case a fresh
  :class:`~mandate_auth.remote.Feed` polling a scripted feed served over HTTP
  on 127.0.0.1, its clocks reading each step's ``at``; the verdict is the
  steps' outcomes joined by ``"; "``.

Exit status 2: the file cannot be read or is of no known kind.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

from . import _gojson as gj
from .errors import StaleRevocationsError, TokenError
from .scope import covers
from .verifier import RevocationSet, Verifier

__all__ = ["run", "run_verify", "run_scope", "run_call", "run_mcp", "run_feed", "main"]


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


def _vector_chain(case: dict[str, Any]) -> dict[str, Any]:
    """A call or MCP case's ``chain``, as the keyword arguments of
    ``authorize_call`` and ``decide_mcp`` (what :func:`~mandate_auth.cedar.chain_args`
    gives for a verified chain)."""
    ch = case.get("chain") or {}
    return {
        "holder": ch.get("holder", ""),
        "subject": ch.get("subject", ""),
        "subject_issuer": ch.get("sub_iss", ""),
        "actors": ch.get("actors") or [],
        "depth": int(ch.get("depth") or 0),
        "scopes": ch.get("scopes") or [],
        "audiences": ch.get("audiences") or [],
        "root": ch.get("root", ""),
        "lineage": ch.get("lineage") or [],
        "bound": bool(ch.get("bound")),
    }


def run_call(f: dict[str, Any], base: str = ".") -> Iterator[dict[str, Any]]:
    from .cedar import Entity

    ps = _policy_set(f["policies"], base)
    for c in f.get("cases") or []:
        res = c.get("resource") or {}
        d = ps.authorize_call(
            groups=c.get("groups") or [],
            action=c.get("action") or "call",
            resource=Entity(res.get("type", ""), res.get("id", "")),
            **_vector_chain(c),
        )
        yield {"name": c.get("name", ""), "verdict": "allow" if d.allow else "deny", "policies": d.policies}


def run_mcp(f: dict[str, Any], base: str = ".") -> Iterator[dict[str, Any]]:
    """Every case of an MCP file (testdata/vectors/README.md, "MCP files"),
    decided as the guard decides: scope, arguments, Cedar."""
    from .mcp.decision import decide_mcp

    f = gj._fix_surrogates(f)  # the strings Go reads from the file: lone surrogates are U+FFFD
    server = f["server"]
    if not isinstance(server, str):
        raise ValueError("server: want the MCP server's canonical URI")
    ps = _policy_set(f["policies"], base)
    for c in f.get("cases") or []:
        p = c.get("params") or {}
        d = decide_mcp(
            ps,
            server=server,
            method=c.get("method") or "",
            name=p.get("name") or "",
            uri=p.get("uri") or "",
            arguments=p.get("arguments") or "",
            groups=c.get("groups") or [],
            **_vector_chain(c),
        )
        yield {"name": c.get("name", ""), "verdict": d.verdict, "policies": d.policies}


class _Script:
    """The pages of one sync step, and what the follower asked."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pages: list[dict[str, Any]] = []
        self.next = 0
        self.wrong = False
        self.extra = False

    def load(self, pages: list[dict[str, Any]]) -> None:
        with self.lock:
            self.pages, self.next, self.wrong, self.extra = pages, 0, False, False


def _has_basic_auth(header: str | None) -> bool:
    # Go's Request.BasicAuth: "Basic " (any case) and base64 of "id:secret".
    if header is None or len(header) < 6 or header[:6].lower() != "basic ":
        return False
    try:
        return b":" in base64.b64decode(header[6:], validate=True)
    except (binascii.Error, ValueError):
        return False


def _feed_server(script: _Script) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: no delayed-ACK stall

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            with script.lock:
                if not _has_basic_auth(self.headers.get("Authorization")):
                    status, body = 401, b"credentials required\n"
                elif script.next >= len(script.pages):
                    script.extra = True
                    status, body = 500, b"no page scripted\n"
                else:
                    p = script.pages[script.next]
                    script.next += 1
                    since = parse_qs(urlsplit(self.path).query, keep_blank_values=True).get("since", [""])[0]
                    if since != (p.get("since") or ""):
                        script.wrong = True
                    status, body = p["status"], (p.get("body") or "").encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            if status in (204, 304):  # no body, as Go's server sends none
                self.end_headers()
                return
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def run_feed(f: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every case of a feed file (testdata/vectors/README.md, "Feed files"):
    a fresh follower per case, polling a scripted feed on loopback."""
    from .remote import Feed, _Loop

    f = gj._fix_surrogates(f)  # the strings Go reads from the file: lone surrogates are U+FFFD
    leeway, bound = float(f.get("leeway_seconds") or 0), float(f["max_staleness_seconds"])
    script = _Script()
    srv = _feed_server(script)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, name="feed-vectors", daemon=True).start()
    loop = _Loop()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/feed"
        for ci, c in enumerate(f.get("cases") or []):
            at = [0.0]
            dropped: list[str] = []
            feed = Feed(loop, url, "vectors", "vectors-secret", leeway=leeway, max_staleness=bound,
                        on_revoked_keys=dropped.extend, clock=lambda: at[0], now=lambda: at[0])
            outcomes: list[str] = []
            for si, st in enumerate(c.get("steps") or []):
                at[0] = float(st["at"])
                sync, check = st.get("sync"), st.get("check")
                if sync is not None and check is None:
                    if type(sync) is not list or not all(
                        type(p) is dict and type(p.get("status")) is int and 100 <= p["status"] <= 999
                        and type(p.get("since") or "") is str and type(p.get("body") or "") is str for p in sync
                    ):
                        raise ValueError(f"cases[{ci}].steps[{si}].sync: want pages of since, status and body")
                    script.load(sync)
                    dropped.clear()
                    err: BaseException | None = None
                    try:
                        loop.run(feed.sync(), timeout=60)
                    except Exception as e:  # a failed poll (status, grammar, network)
                        err = e
                    with script.lock:
                        if script.wrong:
                            o = "wrong_since"
                        elif script.extra:
                            o = "extra_poll"
                        elif err is not None:
                            o = "failed"
                        elif script.next < len(script.pages):
                            o = "unused_pages"
                        else:
                            o = "synced"
                    if dropped:
                        o += " dropped:" + ",".join(dropped)
                    outcomes.append(o)
                elif check is not None and sync is None:
                    try:
                        feed.check_current(at[0])
                        jti = feed.first_revoked(list(check))
                        outcomes.append("ok" if jti is None else "revoked:" + jti)
                    except StaleRevocationsError:
                        outcomes.append("stale")
                else:
                    raise ValueError(f"cases[{ci}].steps[{si}]: a step has either sync or check")
            yield {"name": c.get("name", ""), "verdict": "; ".join(outcomes)}
    finally:
        loop.close([])
        srv.shutdown()
        srv.server_close()


def run(path: str) -> list[dict[str, Any]]:
    """Every case of the vector file at ``path``, with its verdict."""
    with open(path, encoding="utf-8") as fh:
        f = json.load(fh)
    if not isinstance(f, dict):
        raise ValueError("not a JSON object")
    if "covers" in f:
        return list(run_scope(f))
    if "server" in f:
        return list(run_mcp(f, os.path.dirname(os.path.abspath(path))))
    if "policies" in f:
        return list(run_call(f, os.path.dirname(os.path.abspath(path))))
    if "max_staleness_seconds" in f:
        return list(run_feed(f))
    if "jwks" in f:
        return list(run_verify(f))
    raise ValueError(
        "neither a verification (jwks), a scope (covers), an MCP (server), a call (policies) nor a feed (max_staleness_seconds) file"
    )


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
