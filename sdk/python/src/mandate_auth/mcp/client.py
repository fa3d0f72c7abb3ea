"""Agents as MCP clients: a Mandate token in the official ``mcp`` client
(2.x), whose streamable HTTP transport takes an ``httpx2.AsyncClient``.

:class:`McpAuth` is an ``httpx2.Auth`` (the MCP SDK's HTTP library): a
bearer token as ``Authorization: Bearer``; a DPoP-bound one as
``Authorization: DPoP`` with a fresh proof for every request's method and
URL, retried once with the server's nonce when it answers
``use_dpop_nonce`` (and that nonce used from then on).
:func:`mcp_http_client` makes the ``httpx2.AsyncClient`` for it, which never
follows a redirect (the MCP transport would follow a same-origin redirect
itself; this client hides its location, so a token and a proof go to the
configured endpoint only). :func:`connect` opens an ``mcp.Client``
over it::

    async with connect("http://127.0.0.1:8000/mcp", agent.adopt(tok.value)) as mcp_client:
        tools = await mcp_client.list_tools()
        try:
            await mcp_client.call_tool("refund_order", {"order": "o-1", "amount": 400})
        except MCPError as e:
            print(denial(e))          # McpDenial(policies=[...], reason=...) for a guard's refusal
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any, AsyncIterator

import httpx2

from ..httpauth import present_token
from . import CODE_DENIED

__all__ = ["McpAuth", "mcp_http_client", "connect", "McpDenial", "denial"]

_SCOPE_PARAM = re.compile(r'(?:^|[\s,])scope="([^"]*)"')


class McpAuth(httpx2.Auth):
    """Sends a :class:`~mandate_auth.client.Token` with every request of an
    ``httpx2`` client (the official MCP client's HTTP hook)."""

    requires_request_body = True  # the body is resent on a nonce retry

    def __init__(self, token: Any) -> None:
        self.token = token
        self._nonce: str | None = None
        self.insufficient_scope: str | None = None
        """The scope the last ``403 insufficient_scope`` answer named (the MCP
        authorization spec's step-up signal, which the MCP client itself
        reports only as a failed request), or None."""

    def auth_flow(self, request: httpx2.Request) -> Any:
        present_token(request, self.token, self._nonce)
        response = yield request
        if response.status_code == 403:
            self._note_scope(response)
        nonce = response.headers.get("DPoP-Nonce")
        if not nonce or not self.token.bound:
            return
        retry = response.status_code == 401 and nonce != self._nonce
        self._nonce = nonce
        if retry:
            present_token(request, self.token, self._nonce)
            yield request

    def _note_scope(self, response: httpx2.Response) -> None:
        for challenge in response.headers.get_list("WWW-Authenticate"):
            if 'error="insufficient_scope"' in challenge:
                m = _SCOPE_PARAM.search(challenge)
                self.insufficient_scope = m.group(1) if m else ""
                return


class _NoRedirectClient(httpx2.AsyncClient):
    """Never follows a redirect, and hides where one points from whoever
    would follow it (the MCP transport follows same-origin redirects itself
    by ``response.next_request``): a 3xx answer fails the message it answered."""

    async def send(self, request: httpx2.Request, **kw: Any) -> httpx2.Response:
        kw["follow_redirects"] = False
        response = await super().send(request, **kw)
        response.next_request = None
        return response


def mcp_http_client(token: Any, **kwargs: Any) -> httpx2.AsyncClient:
    """An ``httpx2.AsyncClient`` for the MCP transport
    (``streamable_http_client(url, http_client=...)``) that sends ``token``
    with every request and follows no redirect; the MCP SDK's timeouts
    (30 s, 300 s to read a stream) unless ``timeout`` is given. Its ``auth``
    is the :class:`McpAuth` (``.insufficient_scope``)."""
    kwargs.pop("follow_redirects", None)
    kwargs.setdefault("timeout", httpx2.Timeout(30.0, read=300.0))
    return _NoRedirectClient(auth=McpAuth(token), follow_redirects=False, **kwargs)


@contextlib.asynccontextmanager
async def connect(url: str, token: Any, *, http_options: dict[str, Any] | None = None, **client_options: Any) -> AsyncIterator[Any]:
    """An entered ``mcp.Client`` talking to the MCP server at ``url``
    (streamable HTTP) with ``token``; ``client_options`` go to ``mcp.Client``
    (``mode="legacy"`` forces the initialize handshake and a session). The
    client's ``mandate_auth`` attribute is the :class:`McpAuth` in use."""
    from mcp.client.client import Client as McpClient
    from mcp.client.streamable_http import streamable_http_client

    async with mcp_http_client(token, **(http_options or {})) as http:
        async with McpClient(streamable_http_client(url, http_client=http), **client_options) as c:
            c.mandate_auth = http.auth  # type: ignore[attr-defined]
            yield c


@dataclass(frozen=True)
class McpDenial:
    """A guard's refusal of an MCP request, as the client received it."""

    policies: list[str]
    reason: str
    message: str


def denial(err: BaseException) -> McpDenial | None:
    """The guard's refusal an error from the MCP client carries (an
    ``MCPError`` with code 403 and ``data.policies``), or None for any
    other error."""
    code = getattr(err, "code", None)
    data = getattr(err, "data", None)
    if code != CODE_DENIED or not isinstance(data, dict):
        return None
    policies = data.get("policies")
    if not isinstance(policies, list) or not all(isinstance(p, str) for p in policies):
        return None
    reason = data.get("reason")
    return McpDenial(policies=list(policies), reason=reason if isinstance(reason, str) else "", message=str(getattr(err, "message", "")))
