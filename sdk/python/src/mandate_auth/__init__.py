"""Mandate's Python SDK: delegation tokens for multi-agent AI systems.

Client side (orchestrators and agents): :class:`Client` / :class:`AsyncClient`
mint, delegate (to registered or ephemeral agents), revoke, and call
DPoP-protected APIs (:class:`DPoPAuth`, :func:`api_client`); a workload with
no secret starts from its platform's token
(:meth:`Client.from_workload_token`), a client from a user's ID-JAG
(:meth:`Client.redeem_id_jag`).

Resource-server side: :class:`Verifier` (offline, or following a running
Mandate with :meth:`Verifier.discover`), :class:`MandateMiddleware` for ASGI
(Starlette, FastAPI), :func:`require_scope`, and per-call Cedar decisions in
:mod:`mandate_auth.cedar` (optional extra ``cedar``).

MCP: :mod:`mandate_auth.mcp` guards servers built with the official ``mcp``
SDK and plugs tokens into its client (optional extra ``mcp``);
:meth:`Client.exchange_for_downstream` is the audience exchange.

Every error is a :class:`MandateError` carrying ``error`` and
``error_description``; a verifier's refusals are :class:`TokenError`
subclasses, one per verdict.
"""

from .asgi import MandateMiddleware, get_chain, require_policy, require_scope, scopes_dependency
from .chain import Chain
from .claims import TokenInfo, decode_unverified
from .client import Agent, AsyncClient, Client, Metadata, Token
from .errors import (
    VERDICTS,
    DiscoveryError,
    DPoPProofRejectedError,
    ExpiredTokenError,
    FeedAnswerError,
    FeedCredentialsError,
    InsufficientScopeError,
    InvalidClientError,
    InvalidDPoPProofError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidSignatureError,
    InvalidTargetError,
    MalformedTokenError,
    MandateError,
    NotYetValidError,
    OAuthError,
    PolicyDeniedError,
    RevokedTokenError,
    SenderConstrainedError,
    StaleRevocationsError,
    TokenError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
    UseDPoPNonceError,
    WorkloadTokenError,
    WrongAudienceError,
    WrongIssuerError,
)
from .httpauth import DPoPAuth, api_client, async_api_client
from .jose import DPoPKey, Key, KeySet
from .resource_metadata import ResourceMetadata, resource_metadata_path
from .scope import covers, parse_scope
from .verifier import RevocationSet, Verifier

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "AsyncClient",
    "Chain",
    "Client",
    "DPoPAuth",
    "DPoPKey",
    "DPoPProofRejectedError",
    "DiscoveryError",
    "ExpiredTokenError",
    "FeedAnswerError",
    "FeedCredentialsError",
    "InsufficientScopeError",
    "InvalidClientError",
    "InvalidDPoPProofError",
    "InvalidGrantError",
    "InvalidRequestError",
    "InvalidScopeError",
    "InvalidSignatureError",
    "InvalidTargetError",
    "Key",
    "KeySet",
    "MalformedTokenError",
    "MandateError",
    "MandateMiddleware",
    "Metadata",
    "NotYetValidError",
    "OAuthError",
    "PolicyDeniedError",
    "ResourceMetadata",
    "RevocationSet",
    "RevokedTokenError",
    "SenderConstrainedError",
    "StaleRevocationsError",
    "Token",
    "TokenError",
    "TokenInfo",
    "UnauthorizedClientError",
    "UnsupportedGrantTypeError",
    "UseDPoPNonceError",
    "VERDICTS",
    "Verifier",
    "WorkloadTokenError",
    "WrongAudienceError",
    "WrongIssuerError",
    "api_client",
    "async_api_client",
    "covers",
    "decode_unverified",
    "get_chain",
    "parse_scope",
    "require_policy",
    "require_scope",
    "resource_metadata_path",
    "scopes_dependency",
]
