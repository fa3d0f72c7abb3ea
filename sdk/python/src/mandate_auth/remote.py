"""Following a running Mandate from a resource server: RFC 8414 discovery,
the issuer's JWKS (refetched on an unknown ``kid`` at most every interval,
refreshed when old, keys the feed names compromised dropped at once), and the
revocation feed, long-polled with cursors (``reset``, ``more``,
``revoked_keys``), failing closed past a staleness bound.

It all runs on one asyncio event loop in a daemon thread, so a sync
application and an async one (any loop) use it alike, and closing it cancels
a long poll at once.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Coroutine, Sequence, TypeVar
from urllib.parse import quote_plus, urlsplit, urlunsplit

import httpx

from . import _gojson as gj
from .claims import numeric_date
from .errors import DiscoveryError, FeedAnswerError, FeedCredentialsError, StaleRevocationsError, excerpt
from .jose import KeySet

__all__ = ["Feed", "FeedPage", "RemoteKeys", "follow", "metadata_url", "read_page"]

T = TypeVar("T")

MAX_DOCUMENT = 1 << 20
MAX_FEED_ANSWER = 16 << 20


def metadata_url(issuer: str) -> str:
    """Where RFC 8414 metadata lives: the well-known segment between the host
    and the issuer's path."""
    p = urlsplit(issuer)
    if not p.netloc:
        raise DiscoveryError(f"issuer {issuer!r} is not a URL")
    return urlunsplit((p.scheme, p.netloc, "/.well-known/oauth-authorization-server" + p.path.rstrip("/"), "", ""))


def basic_auth(client_id: str, secret: str) -> httpx.BasicAuth:
    """HTTP Basic with id and secret form-urlencoded first (RFC 6749 §2.3.1)."""
    return httpx.BasicAuth(quote_plus(client_id, safe=""), quote_plus(secret, safe=""))


class _Loop:
    """An event loop in a daemon thread, with one HTTP client."""

    def __init__(self, verify_tls: bool | str = True) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="mandate-feed", daemon=True)
        self.thread.start()
        self.http: httpx.AsyncClient = self.run(self._client(verify_tls))

    @staticmethod
    async def _client(verify_tls: bool | str) -> httpx.AsyncClient:
        return httpx.AsyncClient(verify=verify_tls, follow_redirects=False, timeout=httpx.Timeout(10.0))

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self, tasks: Sequence["asyncio.Task[Any] | None"]) -> None:
        async def stop() -> None:
            for t in tasks:
                if t is not None:
                    t.cancel()
            for t in tasks:
                if t is not None:
                    try:
                        await t
                    except BaseException:
                        pass
            await self.http.aclose()

        if self.loop.is_running():
            try:
                self.run(stop(), timeout=10)
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self.thread.join(timeout=10)
        if not self.loop.is_running():
            self.loop.close()


async def _get(http: httpx.AsyncClient, url: str, *, auth: httpx.BasicAuth | None, limit: int, timeout: float,
               error: type[ValueError] = ValueError) -> bytes:
    """The body of a 200 answer, at most limit bytes; error for any other
    status or a larger body (FeedCredentialsError for a 401 or 403 to auth)."""
    async with http.stream("GET", url, auth=auth, timeout=timeout) as resp:
        body = bytearray()
        async for chunk in resp.aiter_bytes():
            body += chunk
            if len(body) > limit:
                raise error(f"{url}: document larger than {limit} bytes")
    if auth is not None and resp.status_code in (401, 403):
        raise FeedCredentialsError(
            "the revocation feed refused this resource server's credentials (client_id/client_secret of a "
            f"resource_server client): HTTP {resp.status_code}: {excerpt(body.decode('utf-8', 'replace'))}"
        )
    if resp.status_code != 200:
        raise error(f"{url}: HTTP {resp.status_code}: {excerpt(body.decode('utf-8', 'replace'))}")
    return bytes(body)


async def _get_json(http: httpx.AsyncClient, url: str, *, auth: httpx.BasicAuth | None, limit: int, timeout: float) -> Any:
    return json.loads(await _get(http, url, auth=auth, limit=limit, timeout=timeout))


@dataclass(frozen=True)
class FeedPage:
    """One page of the revocation feed, as :func:`read_page` reads it."""

    cursor: str
    revocations: list[tuple[str, int]]  # (jti, exp) in the page's order
    more: bool = False
    reset: bool = False
    revoked_keys: list[str] | None = None


def _bool(page: dict[str, Any], name: str) -> bool:
    v = page.get(name)
    if v is None or type(v) is bool:
        return bool(v)
    raise FeedAnswerError(f"revocation feed: {name} is not a boolean")


def read_page(body: bytes | str) -> FeedPage:
    """Read a feed page by the grammar every Mandate follower shares
    (testdata/vectors/README.md, "Feed files"; Go's ``feedAnswer``): a JSON
    object and nothing after it; ``cursor`` a non-empty string;
    ``revocations`` absent, null or an array of objects, each with ``jti`` a
    non-empty string and ``exp`` a NumericDate read as a token's ``exp`` is
    (:func:`~mandate_auth.claims.numeric_date`) that is neither 0 nor null;
    ``more`` and ``reset`` absent, null or booleans; ``revoked_keys`` absent,
    null or an array of strings (not null). Names are matched exactly, unknown members ignored, a
    member given twice counts by its last value. A page breaking the grammar
    raises :class:`FeedAnswerError` (whatever the body: never another
    exception), and nothing of it applies."""
    try:
        page = gj.loads_document(body)
    except gj.GoJSONError:
        raise FeedAnswerError("revocation feed: the answer is not a JSON object") from None
    if type(page) is not dict:
        raise FeedAnswerError("revocation feed: the answer is not a JSON object")
    cursor = page.get("cursor")
    if type(cursor) is not str or not cursor:
        raise FeedAnswerError("revocation feed: a page without a cursor (a non-empty string)")
    more, reset = _bool(page, "more"), _bool(page, "reset")
    keys = page.get("revoked_keys")
    if keys is not None and (type(keys) is not list or any(type(k) is not str for k in keys)):
        raise FeedAnswerError("revocation feed: revoked_keys is not an array of strings")  # null inside included
    revs = page.get("revocations")
    if revs is not None and (type(revs) is not list or any(e is not None and type(e) is not dict for e in revs)):
        raise FeedAnswerError("revocation feed: revocations is not an array of objects")
    entries: list[tuple[str, int]] = []
    for i, e in enumerate(revs or ()):
        jti = e.get("jti") if e is not None else None
        if type(jti) is not str or not jti:
            raise FeedAnswerError(f"revocation feed: revocations[{i}]: no jti (a non-empty string)")
        try:
            exp = numeric_date(e.get("exp"))  # absent or null: 0
        except gj.GoJSONError:
            exp = 0
        if exp == 0:
            raise FeedAnswerError(f"revocation feed: revocations[{i}]: exp is not a NumericDate (a number within ±2^53, not zero)")
        entries.append((jti, exp))
    return FeedPage(cursor, entries, more, reset, keys)


class RemoteKeys:
    """The issuer's JWKS, fetched from ``jwks_uri``: refetched when a token
    names an unknown kid (at most once per interval, so forged kids cannot
    make it hammer Mandate) and when older than ``max_age`` (so a withdrawn
    key stops verifying without a restart)."""

    def __init__(self, loop: _Loop, uri: str, *, interval: float = 10.0, max_age: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._loop, self._uri, self._interval, self._max_age, self._clock = loop, uri, interval, max_age, clock
        self._set = KeySet()
        self.withdrawals = 0
        self._revoked: set[str] = set()
        self._lock = threading.Lock()
        self._last = float("-inf")

    def resolve(self, kid: str) -> Any:
        return self._set.resolve(kid)

    async def fetch(self) -> None:
        doc = await _get_json(self._loop.http, self._uri, auth=None, limit=MAX_DOCUMENT, timeout=5.0)
        s = KeySet.from_jwks(doc)
        with self._lock:
            if self._revoked:
                s = s.without(self._revoked)
            old, self._set = self._set, s
            if old.withdrawn(s):
                self.withdrawals += 1

    def refresh(self) -> bool:
        """Refetch after an unknown kid, at most once per interval; whether a
        new set came. Blocks the calling thread for at most 5 s."""
        with self._lock:
            now = self._clock()
            if now - self._last < self._interval:
                return False
            self._last = now
        try:
            self._loop.run(self.fetch(), timeout=6)
            return True
        except Exception:
            return False

    __call__ = refresh

    async def refresh_stale(self) -> None:
        now = self._clock()
        if now - self._last < self._max_age:
            return
        try:
            await self.fetch()
            self._last = now
        except Exception:
            pass  # keep the current set; retried after the next poll

    def revoke(self, kids: Sequence[str]) -> None:
        """Drop the keys the feed names compromised, at once and for good."""
        with self._lock:
            fresh = set(kids) - self._revoked
            if not fresh:
                return
            self._revoked |= fresh
            self._last = float("-inf")  # the replacing key signs at once: let an unknown kid refetch now
            nxt = self._set.without(self._revoked)
            if self._set.withdrawn(nxt):
                self.withdrawals += 1
            self._set = nxt


class Feed:
    """Follows Mandate's revocation feed, keeping the revoked jtis whose
    tokens have not yet expired (plus the leeway). It only ever adds: a
    ``reset`` never makes it forget a revocation it knew."""

    def __init__(self, loop: _Loop, url: str, client_id: str, client_secret: str, *, leeway: float = 5.0,
                 max_staleness: float = 30.0, wait: float = 15.0, retry_max: float = 5.0,
                 on_sync: Callable[[BaseException | None], None] | None = None,
                 after_poll: Callable[[], Coroutine[Any, Any, None]] | None = None,
                 on_revoked_keys: Callable[[Sequence[str]], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, now: Callable[[], float] = time.time) -> None:
        self._loop, self._url = loop, url
        self._auth = basic_auth(client_id, client_secret)
        self._leeway = leeway
        self.max_staleness = max_staleness if max_staleness > 0 else 30.0
        self._wait = min(max(wait, 1.0), self.max_staleness / 2)
        self._retry_max = retry_max
        self._on_sync, self._after_poll, self._on_revoked_keys = on_sync, after_poll, on_revoked_keys
        self._clock, self._now = clock, now
        self._revoked: dict[str, int] = {}
        self._cursor = ""
        self._last_prune = float("-inf")
        self._last_sync: float | None = None
        self._lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        self._synced = threading.Condition(self._lock)
        self.syncs = 0

    # -- RevocationSource --------------------------------------------------------

    def first_revoked(self, jtis: Sequence[str]) -> str | None:
        r = self._revoked
        for j in jtis:
            if j in r:
                return j
        return None

    def check_current(self, now: float) -> None:
        last = self._last_sync
        if last is None:
            raise StaleRevocationsError("revocation data is stale: the revocation feed has never been synced")
        age = self._clock() - last
        if age > self.max_staleness:
            raise StaleRevocationsError(f"revocation data is stale: last synced {age:.0f}s ago (bound {self.max_staleness:.0f}s)")

    @property
    def last_sync(self) -> float | None:
        """When (on the monotonic clock) the feed last caught up."""
        return self._last_sync

    def wait_for_sync(self, after: int, timeout: float) -> bool:
        """Block until more than ``after`` syncs have completed (see ``syncs``)."""
        with self._synced:
            return self._synced.wait_for(lambda: self.syncs > after, timeout)

    # -- polling -------------------------------------------------------------------

    async def poll(self, wait: float) -> tuple[bool, int]:
        """Ask the feed once (waiting at most ``wait`` seconds for news) and
        apply the page; whether more is waiting, and how many revocations
        came. Raises :class:`FeedAnswerError` for a status other than 200 or a
        page breaking the grammar (:func:`read_page`), which changes nothing."""
        with self._lock:
            cursor = self._cursor
        params = {}
        if cursor:
            params["since"] = cursor
        if wait > 0:
            params["wait"] = str(int(wait))
        url = self._url + ("&" if "?" in self._url else "?") + str(httpx.QueryParams(params))
        body = await _get(self._loop.http, url, auth=self._auth, limit=MAX_FEED_ANSWER, timeout=wait + 10,
                          error=FeedAnswerError)
        page = read_page(body)  # a page breaking the grammar is refused whole: nothing below happens
        if page.revoked_keys and self._on_revoked_keys is not None:
            self._on_revoked_keys(page.revoked_keys)  # before the revocations apply: a sync includes it
        self._apply(cursor, page.cursor, page.revocations, page.more)
        return page.more, len(page.revocations)

    def _apply(self, cursor: str, new_cursor: str, entries: list[tuple[str, int]], more: bool) -> None:
        now = self._now()
        with self._lock:
            if self._cursor != cursor:
                return  # another poll applied first; the next one brings anything this had
            for jti, exp in entries:
                self._revoked[jti] = exp
            if now - self._last_prune > 30:
                for jti in [j for j, exp in self._revoked.items() if exp + self._leeway < now]:
                    del self._revoked[jti]
                self._last_prune = now
            self._cursor = new_cursor
            if not more:
                self._last_sync = self._clock()
                self.syncs += 1
                self._synced.notify_all()

    async def sync(self) -> None:
        """Poll without waiting, page after page until caught up."""
        while True:
            more, _ = await self.poll(0)
            if not more:
                return

    async def _follow(self) -> None:
        backoff = 0.05
        err: BaseException | None = None
        more = False
        while True:
            wait = self._wait
            if err is not None or more or self._last_sync is None:
                wait = 0
            started = time.monotonic()
            entries = 0
            try:
                more, entries = await self.poll(wait)
                err = None
            except asyncio.CancelledError:
                raise
            except Exception as e:  # network, HTTP, JSON: retried with back-off
                more, err = False, e
            if self._after_poll is not None:
                await self._after_poll()
            if self._on_sync is not None and not more:
                try:
                    self._on_sync(err)
                except Exception:
                    pass
            pause = 0.0
            elapsed = time.monotonic() - started
            if err is not None:
                pause, backoff = backoff, min(2 * backoff, self._retry_max)
            elif wait > 0 and entries == 0 and elapsed < 0.1:
                pause, backoff = 0.1 - elapsed, 0.05
            else:
                backoff = 0.05
            if pause > 0:
                await asyncio.sleep(pause)

    def start(self) -> None:
        """Sync once (reporting it to on_sync), then follow in the background.
        Raises :class:`FeedCredentialsError` when the credentials are refused."""
        err: BaseException | None = None
        try:
            self._loop.run(self.sync(), timeout=30)
        except FeedCredentialsError:
            raise
        except Exception as e:
            err = e
        if self._on_sync is not None:
            self._on_sync(err)

        async def spawn() -> "asyncio.Task[None]":
            return asyncio.ensure_future(self._follow())

        self._task = self._loop.run(spawn())


def follow(
    issuer: str,
    *,
    client_id: str,
    client_secret: str,
    leeway: float,
    max_staleness: float,
    feed_wait: float,
    jwks_refresh_interval: float,
    jwks_max_age: float,
    on_sync: Callable[[BaseException | None], None] | None,
    verify_tls: bool | str,
    now: Callable[[], float] | None,
) -> tuple[RemoteKeys, Feed, Callable[[], None]]:
    """Discover ``issuer``, fetch its keys, start following its feed; returns
    the key set, the feed and the function that stops it all."""
    loop = _Loop(verify_tls)
    try:
        try:
            md = loop.run(_get_json(loop.http, metadata_url(issuer), auth=None, limit=MAX_DOCUMENT, timeout=10), timeout=15)
        except DiscoveryError:
            raise
        except Exception as e:
            raise DiscoveryError(f"discovery: {excerpt(str(e))}") from None
        if not isinstance(md, dict) or md.get("issuer") != issuer:
            got = md.get("issuer") if isinstance(md, dict) else None
            raise DiscoveryError(f"discovery: metadata names issuer {got!r}, not {issuer!r}")
        jwks_uri, feed_url = md.get("jwks_uri"), md.get("revocation_feed_endpoint")
        if not isinstance(jwks_uri, str) or not jwks_uri:
            raise DiscoveryError("discovery: metadata has no jwks_uri")
        if not isinstance(feed_url, str) or not feed_url:
            raise DiscoveryError("discovery: the issuer offers no revocation_feed_endpoint")
        keys = RemoteKeys(loop, jwks_uri, interval=jwks_refresh_interval, max_age=jwks_max_age)
        try:
            loop.run(keys.fetch(), timeout=15)
        except Exception as e:
            raise DiscoveryError(f"JWKS: {excerpt(str(e))}") from None
        keys._last = time.monotonic()
        feed = Feed(loop, feed_url, client_id, client_secret, leeway=leeway, max_staleness=max_staleness, wait=feed_wait,
                    on_sync=on_sync, after_poll=keys.refresh_stale, on_revoked_keys=keys.revoke, now=now or time.time)
        feed.start()
    except BaseException:
        loop.close([])
        raise

    def close() -> None:
        loop.close([feed._task])

    return keys, feed, close
