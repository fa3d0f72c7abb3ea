"""The feed follower and the remote key set, against answers shaped as
Mandate's (httpx's MockTransport stands in for the network; the real server
runs in test_integration.py)."""

from __future__ import annotations

import json
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from mandate_auth import FeedAnswerError, FeedCredentialsError, Key, MandateError, StaleRevocationsError
from mandate_auth.remote import Feed, FeedPage, RemoteKeys, _Loop, read_page


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
        with pytest.raises(FeedAnswerError, match="without a cursor"):
            loop.run(f.sync())
        with pytest.raises(FeedCredentialsError):
            loop.run(f.sync())
        with pytest.raises(FeedAnswerError):
            loop.run(f.sync())
    finally:
        loop.close([])


@pytest.mark.parametrize("body", [
    b'{"cursor":"c2","more":"yes"}',  # more read as truthy before
    b'{"cursor":"c2","revocations":[{"jti":"b"}]}',  # no exp: read as a date before
    b'{"cursor":"c2","revocations":[{"jti":"b","exp":null}]}',
    b'{"cursor":"c2","revocations":[{"jti":"b","exp":0.5}]}',  # its whole second is 0
    b'{"cursor":"c2","revocations":[{"jti":"b","exp":true}]}',
    b'{"cursor":"c2","revocations":[{"jti":"b","exp":9007199254740993}]}',
    b'{"cursor":"c2","revocations":[{"jti":"b","exp":9007199254740992.5}]}',
    b'{"cursor":"c2","revocations":[{"jti":"b","exp":1e400}]}',
    b'{"cursor":"c2","revocations":[{"jti":"","exp":1795773600}]}',
    b'{"cursor":"c2","revoked_keys":["k9",9]}',  # a non-string key id: filtered out before
    b'{"cursor":"c2","revoked_keys":["k9",null]}',
    b'{"cursor":"c2","revoked_keys":"k9"}',
    b'{"CURSOR":"c2"}',
    b'{"cursor":"c2"} {}',
    b'\xef\xbb\xbf{"cursor":"c2"}',
    b'{"cursor":"c2","x":' + b"[" * 10000 + b"]" * 10000 + b"}",  # deeper than encoding/json reads
])
def test_read_page_refuses(body: bytes) -> None:
    with pytest.raises(FeedAnswerError) as e:
        read_page(body)
    assert isinstance(e.value, MandateError) and isinstance(e.value, ValueError)


def test_read_page_accepts() -> None:
    assert read_page(b' {"cursor":"c1","revocations":null,"more":null,"reset":null,"revoked_keys":null}\n') == \
        FeedPage("c1", [], False, False, None)
    p = read_page(b'{"\\u0063ursor":"c0","cursor":"c9","CURSOR":1,"revocations":[{"jti":"z","exp":1},{"jti":"b",'
                  b'"exp":1795773600.75,"exp":17957736e2,"JTI":5}],"more":true,"reset":false,"revoked_keys":["k1",""],'
                  b'"x":' + b"[" * 9999 + b"]" * 9999 + b"}")
    assert p == FeedPage("c9", [("z", 1), ("b", 1795773600)], True, False, ["k1", ""])
    # Exact NumericDates of any length, a lone surrogate escape as U+FFFD, as Go reads them.
    p = read_page(b'{"cursor":"\\ud800","revocations":[{"jti":"a","exp":1795773600.' + b"0" * 5000 + b'1}]}')
    assert p.cursor == "\ufffd" and p.revocations == [("a", 1795773600)]


def test_a_redirect_is_not_followed_with_the_credentials() -> None:
    real = _Loop()
    try:
        assert real.http.follow_redirects is False
    finally:
        real.close([])
    asked: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        asked.append(str(req.url))
        return httpx.Response(302, headers={"Location": "http://elsewhere.example/feed"})

    loop = loop_with(handler)
    try:
        f = Feed(loop, "http://m.example/feed", "a", "b")
        with pytest.raises(FeedAnswerError, match="HTTP 302"):
            loop.run(f.sync())
        assert asked == ["http://m.example/feed?"]
    finally:
        loop.close([])


def test_a_refused_page_changes_nothing() -> None:
    asked: list[dict[str, list[str]]] = []
    pages = [
        answer(revocations=[{"jti": "a", "exp": 5000}], cursor="c1"),
        httpx.Response(200, content=b'{"cursor":"c2","revoked_keys":["k1"],"revocations":[{"jti":"b","exp":5000},{"jti":"c"}]}'),
        httpx.Response(204),
        answer(cursor="c2", revoked_keys=["k2"]),
    ]

    def handler(req: httpx.Request) -> httpx.Response:
        asked.append(parse_qs(urlsplit(str(req.url)).query))
        return pages.pop(0)

    dropped: list[str] = []
    clock = Clock()
    loop = loop_with(handler)
    try:
        f = Feed(loop, "http://m.example/feed", "a", "b", on_revoked_keys=dropped.extend, clock=clock, now=clock)
        loop.run(f.sync())
        with pytest.raises(FeedAnswerError, match="exp"):
            loop.run(f.sync())
        assert dropped == [] and f.first_revoked(["b", "c"]) is None and f.syncs == 1
        with pytest.raises(FeedAnswerError, match="HTTP 204"):
            loop.run(f.sync())
        loop.run(f.sync())
        assert asked == [{}, {"since": ["c1"]}, {"since": ["c1"]}, {"since": ["c1"]}]  # the cursor stayed
        assert dropped == ["k2"] and f.first_revoked(["a"]) == "a" and f.syncs == 2
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
