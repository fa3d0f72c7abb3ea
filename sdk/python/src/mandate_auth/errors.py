"""Every error this SDK raises on purpose is a :class:`MandateError`, carrying
an OAuth-style ``error`` code and an ``error_description`` that never holds a
whole token or a secret.

Two families:

- :class:`OAuthError` and its subclasses: Mandate refused a request (token
  endpoint, revocation); ``error`` is the RFC 6749/8693/9449 code the server
  sent, ``status`` its HTTP status.
- :class:`TokenError` and its subclasses: a resource-server verifier refused
  a token. Each class is one verdict of the cross-language vectors
  (``verdict``), in the order a verifier checks them: malformed,
  invalid_signature, wrong_issuer, wrong_audience, not_yet_valid, expired,
  revoked, sender_constrained, invalid_dpop_proof.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "MandateError",
    "OAuthError",
    "InvalidRequestError",
    "InvalidClientError",
    "InvalidGrantError",
    "InvalidScopeError",
    "InvalidTargetError",
    "UnauthorizedClientError",
    "UnsupportedGrantTypeError",
    "DPoPProofRejectedError",
    "DiscoveryError",
    "WorkloadTokenError",
    "TokenError",
    "MalformedTokenError",
    "InvalidSignatureError",
    "WrongIssuerError",
    "WrongAudienceError",
    "NotYetValidError",
    "ExpiredTokenError",
    "RevokedTokenError",
    "SenderConstrainedError",
    "InvalidDPoPProofError",
    "UseDPoPNonceError",
    "StaleRevocationsError",
    "FeedCredentialsError",
    "FeedAnswerError",
    "InsufficientScopeError",
    "PolicyDeniedError",
    "VERDICTS",
]


class MandateError(Exception):
    """Base of every error this SDK raises on purpose."""

    error: str = "mandate_error"

    def __init__(self, error_description: str = "", *, error: str | None = None) -> None:
        if error is not None:
            self.error = error
        self.error_description = error_description
        super().__init__(error_description)

    def __str__(self) -> str:
        if self.error_description:
            return f"{self.error}: {self.error_description}"
        return self.error

    def __repr__(self) -> str:
        return f"{type(self).__name__}(error={self.error!r}, error_description={self.error_description!r})"


# ---------------------------------------------------------------------------
# Client side: Mandate's answers


class OAuthError(MandateError):
    """Mandate refused a request; ``error`` is the OAuth code it sent."""

    error = "server_error"
    status: int | None = None

    def __init__(self, error_description: str = "", *, error: str | None = None, status: int | None = None) -> None:
        super().__init__(error_description, error=error)
        self.status = status

    @classmethod
    def from_response(cls, status: int, body: Any) -> "OAuthError":
        """The error for an HTTP answer that is not a success: the class for the
        OAuth code in the JSON body, or a server_error naming the status."""
        code = desc = None
        if isinstance(body, dict):
            code, desc = body.get("error"), body.get("error_description")
        if not isinstance(code, str) or not code:
            return OAuthError(f"HTTP {status} without an OAuth error", status=status)
        if not isinstance(desc, str):
            desc = ""
        klass = _OAUTH_CLASSES.get(code, OAuthError)
        return klass(_safe(desc), error=code, status=status)


class InvalidRequestError(OAuthError):
    """``invalid_request``: a malformed request, or a subject/actor token refused
    (invalid, expired, revoked, not held by the client, too deep, or denied by
    policy — RFC 8693 §2.2.2)."""

    error = "invalid_request"


class InvalidClientError(OAuthError):
    """``invalid_client`` (401): the client's credentials were refused."""

    error = "invalid_client"


class InvalidGrantError(OAuthError):
    """``invalid_grant``: an assertion grant was refused."""

    error = "invalid_grant"


class InvalidScopeError(OAuthError):
    """``invalid_scope``: a scope beyond the parent's or the registration's."""

    error = "invalid_scope"


class InvalidTargetError(OAuthError):
    """``invalid_target``: an audience beyond the parent's or the registration's."""

    error = "invalid_target"


class UnauthorizedClientError(OAuthError):
    """``unauthorized_client``: the client may not use this grant."""

    error = "unauthorized_client"


class UnsupportedGrantTypeError(OAuthError):
    """``unsupported_grant_type``."""

    error = "unsupported_grant_type"


class DPoPProofRejectedError(OAuthError):
    """``invalid_dpop_proof`` at the token endpoint: a missing or bad proof, or
    a bound subject token without a proof of its key."""

    error = "invalid_dpop_proof"


_OAUTH_CLASSES: dict[str, type[OAuthError]] = {
    c.error: c
    for c in (
        InvalidRequestError,
        InvalidClientError,
        InvalidGrantError,
        InvalidScopeError,
        InvalidTargetError,
        UnauthorizedClientError,
        UnsupportedGrantTypeError,
        DPoPProofRejectedError,
    )
}


class DiscoveryError(MandateError):
    """RFC 8414 metadata could not be read, or names another issuer."""

    error = "invalid_metadata"


class WorkloadTokenError(MandateError):
    """A workload client's platform token could not be had: its file cannot
    be read (``path`` names it; the message says why, never what it holds),
    is empty or is no token, or the ``token`` callable returned none. Raised
    before anything is sent."""

    error = "workload_token_unavailable"

    def __init__(self, error_description: str = "", *, path: str | None = None) -> None:
        super().__init__(error_description)
        self.path = path


# ---------------------------------------------------------------------------
# Resource-server side: verdicts on a token


class TokenError(MandateError):
    """A verifier refused a token; ``verdict`` is its class (see ``VERDICTS``).
    ``error`` is what a resource server answers (RFC 6750 / RFC 9449)."""

    error = "invalid_token"
    verdict: ClassVar[str] = "invalid_token"
    status: ClassVar[int] = 401


class MalformedTokenError(TokenError):
    """Not a well-formed Mandate token: its encoding, a claim (a NumericDate
    beyond ±2^53 included), a missing claim, an act chain or lineage that breaks
    the chain invariants, the scope grammar, ``typ``, ``crit``, or a token over
    16 KiB."""

    verdict = "malformed"


class InvalidSignatureError(TokenError):
    """The signature does not verify, no published key has the ``kid``, or the
    algorithm is not the one the key fixes (``none`` and HMAC never are)."""

    verdict = "invalid_signature"


class WrongIssuerError(TokenError):
    """``iss`` is not the configured issuer."""

    verdict = "wrong_issuer"


class WrongAudienceError(TokenError):
    """``aud`` does not include this resource server."""

    verdict = "wrong_audience"


class NotYetValidError(TokenError):
    """``nbf`` or ``iat`` is in the future, beyond the leeway."""

    verdict = "not_yet_valid"


class ExpiredTokenError(TokenError):
    """``exp`` has passed, beyond the leeway."""

    verdict = "expired"


class RevokedTokenError(TokenError):
    """The token or one of its ancestors is revoked: ``jti`` says which, and
    ``ancestor`` whether it is an ancestor's."""

    verdict = "revoked"

    def __init__(self, jti: str, ancestor: bool) -> None:
        self.jti, self.ancestor = jti, ancestor
        desc = f"token has been revoked: ancestor {jti} is revoked" if ancestor else "token has been revoked"
        super().__init__(desc)


class SenderConstrainedError(TokenError):
    """A token bound to a key (``cnf.jkt``) was shown as a bearer token."""

    verdict = "sender_constrained"


class InvalidDPoPProofError(TokenError):
    """The DPoP proof is missing, malformed, for another request or key, stale,
    replayed, or the token is not bound (a bearer token sent as DPoP)."""

    error = "invalid_dpop_proof"
    verdict = "invalid_dpop_proof"


class UseDPoPNonceError(InvalidDPoPProofError):
    """The proof lacks the server's current nonce (RFC 9449 §9): answered
    ``use_dpop_nonce`` with a fresh nonce, which ``nonce`` carries."""

    error = "use_dpop_nonce"

    def __init__(self, nonce: str) -> None:
        self.nonce = nonce
        super().__init__("a fresh DPoP nonce is required")


class StaleRevocationsError(MandateError):
    """The verifier's revocation data is older than its bound, so it cannot
    vouch for any token (fail closed); a resource server answers 503."""

    error = "temporarily_unavailable"


class FeedCredentialsError(MandateError):
    """Mandate refused this resource server's credentials at the revocation feed
    (a configuration error: waiting does not fix it)."""

    error = "invalid_client"


class FeedAnswerError(MandateError, ValueError):
    """The revocation feed answered something that is not a page: an HTTP
    status other than 200, a body over 16 MiB, or a body that breaks the page
    grammar every Mandate follower shares (testdata/vectors/README.md, "Feed
    files"). Nothing of it applies; the next poll asks again from the same
    cursor. (A :class:`ValueError` too, as the feed's failures were before.)"""

    error = "invalid_feed_answer"


class InsufficientScopeError(MandateError):
    """A verified token may not do what the request asks (RFC 6750 §3.1):
    ``scope`` names the scope needed, when one is."""

    error = "insufficient_scope"
    status = 403

    def __init__(self, error_description: str, *, scope: str = "") -> None:
        super().__init__(error_description)
        self.scope = scope


class PolicyDeniedError(InsufficientScopeError):
    """A per-call Cedar decision denied the call; ``policies`` are the ids of
    the policies that determined it (empty for Cedar's default deny)."""

    def __init__(self, error_description: str, policies: list[str]) -> None:
        super().__init__(error_description)
        self.policies = policies


VERDICTS: tuple[str, ...] = (
    "ok",
    "malformed",
    "invalid_signature",
    "wrong_issuer",
    "wrong_audience",
    "not_yet_valid",
    "expired",
    "revoked",
    "sender_constrained",
    "invalid_dpop_proof",
)
"""Every verdict, in the order a verifier checks (a token with several faults
gets the first)."""


def excerpt(s: str) -> str:
    """Untrusted text made safe for an error or a log line: at most 64
    characters, control and non-ASCII characters as '?' (Go's jwt.Excerpt)."""
    cut = len(s) > 64
    s = s[:64]
    s = "".join(c if " " <= c <= "~" else "?" for c in s)
    return s + "…" if cut else s


def _safe(desc: str) -> str:
    # A server's description is printable already; bound it all the same.
    return "".join(c if c >= " " else "?" for c in desc[:1000])
