"""The feed follower and the remote key set, against answers shaped as
Mandate's (httpx's MockTransport stands in for the network; the real server
runs in test_integration.py)."""

from __future__ import annotations

import json
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from mandate_auth import FeedCredentialsError, Key, StaleRevocationsError
from mandate_auth.remote import Feed, RemoteKeys, _Loop


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def loop_with(handler: Callable[[httpx.Request], httpx.Response]) -> _Loop:
    loop = _Loop()
    old = loop.http
    loop.http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    loop.run(old.aclose())
    return loop


def answer(status: int = 200, **body: Any) -> httpx.Response:
    return httpx.Response(status, json=body)


def test_pages_cursors_reset_and_revoked_keys() -> None:
    asked: list[dict[str, list[str]]] = []
    pages = [
        answer(revocations=[{"jti": "a", "exp": 5000, "revoked_at": 1}], cursor="c1", reset=True, more=True),
        answer(revocations=[{"jti": "b", "exp": 5000, "revoked_at": 2}], cursor="c2", more=False, revoked_keys=["k1"]),
        answer(revocations=[], cursor="c3", reset=True),  # a reset forgets nothing
        answer(revocations=[{"jti": "c", "exp": 500, "revoked_at": 3}], cursor="c4"),
    ]

    def handler(req: httpx.Request) -> httpx.Response:
        assert req.headers["authorization"].startswith("Basic ")
        asked.append(parse_qs(urlsplit(str(req.url)).query))
        return pages.pop(0)

    dropped: list[str] = []
    clock, wall = Clock(), Clock()
    loop = loop_with(handler)
    try:
        f = Feed(loop, "http://m.example/oauth2/revocations", "orders-api", "s", max_staleness=30,
                 on_revoked_keys=dropped.extend, clock=clock, now=wall)
        with pytest.raises(StaleRevocationsError):
            f.check_current(0)
        loop.run(f.sync())
        assert asked == [{}, {"since": ["c1"]}]
        assert f.first_revoked(["x", "b", "a"]) == "b" and dropped == ["k1"] and f.syncs == 1
        f.check_current(0)
        loop.run(f.sync())
        assert f.first_revoked(["a"]) == "a"  # still known after the reset
        clock.t += 31
        with pytest.raises(StaleRevocationsError):
            f.check_current(0)
        wall.t = 6000.0  # a and b have expired (plus the leeway): pruned; c too
        loop.run(f.sync())
        f.check_current(0)
        assert f.first_revoked(["a", "b", "c"]) is None
    finally:
        loop.close([])


def test_bad_answers() -> None:
    answers = [answer(revocations=[], reset=True), answer(401, error="invalid_client"), httpx.Response(200, content=b"[1")]
    loop = loop_with(lambda req: answers.pop(0))
    try:
        f = Feed(loop, "http://m.example/feed", "a", "b")
        with pytest.raises(ValueError, match="without a cursor"):
            loop.run(f.sync())
        with pytest.raises(FeedCredentialsError):
            loop.run(f.sync())
        with pytest.raises(ValueError):
            loop.run(f.sync())
    finally:
        loop.close([])


def test_remote_keys_refetch_on_unknown_kid_rate_limited() -> None:
    a, b = Key.generate(), Key.generate("ES256")
    served = [a]
    fetches: list[int] = []

    def handler(req: httpx.Request) -> httpx.Response:
        fetches.append(1)
        return httpx.Response(200, content=json.dumps({"keys": [k.public_jwk() for k in served]}).encode())

    clock = Clock()
    loop = loop_with(handler)
    try:
        keys = RemoteKeys(loop, "http://m.example/jwks", interval=10, clock=clock)
        loop.run(keys.fetch())
        assert keys.resolve(a.kid) is not None and keys.resolve(b.kid) is None
        served.append(b)
        assert keys.refresh() and keys.resolve(b.kid) is not None
        assert not keys.refresh()  # within the interval: no fetch
        clock.t += 10
        served.remove(a)
        assert keys.refresh() and keys.resolve(a.kid) is None and keys.withdrawals == 1
        assert len(fetches) == 3
        keys.revoke([b.kid])  # the feed names it compromised: dropped at once, and a refetch cannot bring it back
        assert keys.resolve(b.kid) is None and keys.withdrawals == 2
        assert keys.refresh() and keys.resolve(b.kid) is None
    finally:
        loop.close([])
