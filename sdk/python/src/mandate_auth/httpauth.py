"""Calling a protected API with a Mandate token, through httpx.

:class:`DPoPAuth` is an ``httpx.Auth``: ``Authorization: Bearer`` for a bearer
token; for a bound one, ``Authorization: DPoP`` and a fresh proof for the
request's method and URL (RFC 9449 §7), retried once with the server's nonce
when it answers ``use_dpop_nonce``. It works with ``httpx.Client`` and
``httpx.AsyncClient`` alike.

Redirects: a token and a proof must never go where a server points. httpx
does not follow redirects unless asked (``follow_redirects=False`` is its
default); :func:`api_client` and :func:`async_api_client` make clients that
never do, and :class:`DPoPAuth` raises if it finds a redirect was followed
with its credentials.
"""

from __future__ import annotations

from typing import Any, Generator

import httpx

from .errors import MandateError

__all__ = ["DPoPAuth", "api_client", "async_api_client"]


def present_token(request: Any, token: Any, nonce: str | None) -> None:
    """Put ``token`` on ``request`` (an ``httpx`` or ``httpx2`` one): as a
    bearer token, or, when it is DPoP-bound, with a proof of its key for the
    request's method and URL (no query or fragment) and the server's
    ``nonce``."""
    if not token.bound:
        request.headers["Authorization"] = "Bearer " + token.value
        return
    if token.key is None:
        raise MandateError("this DPoP-bound token's key is not here (adopt it with the holder's client or agent)",
                           error="missing_dpop_key")
    url = request.url.copy_with(query=None, fragment=None)
    request.headers["Authorization"] = "DPoP " + token.value
    request.headers["DPoP"] = token.key.proof(request.method, str(url), access_token=token.value, nonce=nonce, now=token.clock())


class DPoPAuth(httpx.Auth):
    """Sends a :class:`~mandate_auth.client.Token` to a resource server."""

    requires_request_body = True  # the body is resent on a nonce retry

    def __init__(self, token: Any) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        present_token(request, self.token, None)
        response = yield request
        self._no_redirects(response)
        nonce = response.headers.get("DPoP-Nonce")
        if response.status_code == 401 and nonce and self.token.bound:
            present_token(request, self.token, nonce)
            response = yield request
            self._no_redirects(response)

    @staticmethod
    def _no_redirects(response: httpx.Response) -> None:
        if any(r.has_redirect_location for r in response.history):  # history also holds an auth retry's 401
            raise MandateError(
                "a redirect was followed with Mandate credentials: send them with follow_redirects=False "
                "(mandate_auth.api_client does)",
                error="redirect_followed",
            )


class _NoRedirectClient(httpx.Client):
    def send(self, request: httpx.Request, **kw: Any) -> httpx.Response:
        kw["follow_redirects"] = False
        return super().send(request, **kw)


class _NoRedirectAsyncClient(httpx.AsyncClient):
    async def send(self, request: httpx.Request, **kw: Any) -> httpx.Response:
        kw["follow_redirects"] = False
        return await super().send(request, **kw)


def api_client(token: Any, **kwargs: Any) -> httpx.Client:
    """An ``httpx.Client`` that sends ``token`` on every request and never
    follows a redirect (a 3xx answer is returned as it is)."""
    kwargs.pop("follow_redirects", None)
    return _NoRedirectClient(auth=DPoPAuth(token), follow_redirects=False, **kwargs)


def async_api_client(token: Any, **kwargs: Any) -> httpx.AsyncClient:
    """The ``httpx.AsyncClient`` twin of :func:`api_client`."""
    kwargs.pop("follow_redirects", None)
    return _NoRedirectAsyncClient(auth=DPoPAuth(token), follow_redirects=False, **kwargs)
