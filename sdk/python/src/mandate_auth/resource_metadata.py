"""RFC 9728 protected-resource metadata: the document that tells a client
(an MCP client, say) which authorization server issues tokens for a
resource — Go's ``verifier.ResourceMetadata``.

::

    md = ResourceMetadata("https://mcp.orders.example/mcp", ["https://mandate.example"], scopes_supported=["tools:*"])
    md.path()   # "/.well-known/oauth-protected-resource/mcp": serve md.asgi() there
    md.url()    # "https://mcp.orders.example/.well-known/oauth-protected-resource/mcp":
                # the verifier's resource_metadata_url, named in every 401's WWW-Authenticate
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, MutableMapping, Sequence
from urllib.parse import urlsplit

__all__ = ["ResourceMetadata", "resource_metadata_path", "WELL_KNOWN"]

WELL_KNOWN = "/.well-known/oauth-protected-resource"


def resource_metadata_path(resource: str) -> str:
    """Where the document for ``resource`` is served: the well-known segment
    between the host and the resource's path, the resource's query, if any,
    at the end (RFC 9728 §3.1)."""
    p = WELL_KNOWN
    try:
        u = urlsplit(resource)
    except ValueError:
        return p
    p += u.path.rstrip("/")
    if u.query:
        p += "?" + u.query
    return p


@dataclass(frozen=True)
class ResourceMetadata:
    """An RFC 9728 document: ``resource`` is the resource's identifier (the
    audience its tokens carry), ``authorization_servers`` Mandate's issuer."""

    resource: str
    authorization_servers: Sequence[str]
    scopes_supported: Sequence[str] = ()
    bearer_methods_supported: Sequence[str] = field(default=("header",))
    resource_name: str = ""
    resource_documentation: str = ""

    def path(self) -> str:
        return resource_metadata_path(self.resource)

    def url(self) -> str:
        """The document's absolute URL, for ``resource_metadata`` in
        ``WWW-Authenticate`` (RFC 9728 §5.1)."""
        u = urlsplit(self.resource)
        if not u.scheme or not u.netloc:
            return ""
        return f"{u.scheme}://{u.netloc}{self.path()}"

    def document(self) -> dict[str, Any]:
        d: dict[str, Any] = {"resource": self.resource, "authorization_servers": list(self.authorization_servers)}
        if self.scopes_supported:
            d["scopes_supported"] = list(self.scopes_supported)
        d["bearer_methods_supported"] = list(self.bearer_methods_supported)
        if self.resource_name:
            d["resource_name"] = self.resource_name
        if self.resource_documentation:
            d["resource_documentation"] = self.resource_documentation
        return d

    def asgi(self) -> Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]:
        """An ASGI app serving the document as JSON to GET and HEAD (405
        otherwise)."""
        body = json.dumps(self.document()).encode()

        async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
            if scope.get("type") != "http":
                return
            method = scope.get("method", "GET")
            if method not in ("GET", "HEAD"):
                msg = b"method not allowed\n"
                await send({"type": "http.response.start", "status": 405, "headers": [
                    (b"allow", b"GET, HEAD"), (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(msg)).encode())]})
                await send({"type": "http.response.body", "body": msg})
                return
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

        return app
