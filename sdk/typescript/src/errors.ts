/**
 * Errors. Every error this package throws on purpose is a MandateError: it
 * carries an OAuth-style `error` code and an `error_description` that never
 * holds a whole token or a secret (untrusted text goes through excerpt()).
 *
 * - OAuthError: the authorization server refused a request (its `error`,
 *   `error_description` and HTTP `status`, as sent).
 * - VerificationError and its subclasses: a resource-server verifier refused
 *   a token. `verdict` is the cross-language class (the vectors' "expect"),
 *   the same classes as the Go verifier's sentinel errors, in check order:
 *   malformed, invalid_signature, wrong_issuer, wrong_audience,
 *   not_yet_valid, expired, revoked, sender_constrained, invalid_dpop_proof.
 * - StaleRevocationsError, NoTokenError, BadAuthorizationError,
 *   DPoPNonceError, FeedCredentialsError: the verifier's other outcomes.
 */

/** The verdict classes of the shared vectors, in the order a verifier checks them. */
export type Verdict =
  | 'malformed'
  | 'invalid_signature'
  | 'wrong_issuer'
  | 'wrong_audience'
  | 'not_yet_valid'
  | 'expired'
  | 'revoked'
  | 'sender_constrained'
  | 'invalid_dpop_proof';

export const VERDICTS: readonly Verdict[] = [
  'malformed',
  'invalid_signature',
  'wrong_issuer',
  'wrong_audience',
  'not_yet_valid',
  'expired',
  'revoked',
  'sender_constrained',
  'invalid_dpop_proof',
];

/** The base of every error this package throws on purpose. */
export class MandateError extends Error {
  /** The OAuth error code (RFC 6749 §5.2, RFC 6750 §3.1, RFC 9449). */
  readonly error: string;
  /** A human-readable description; never a whole token or secret. */
  readonly error_description: string;

  constructor(error: string, description: string, options?: { cause?: unknown }) {
    super(description ? `${error}: ${description}` : error, options);
    this.name = new.target.name;
    this.error = error;
    this.error_description = description;
  }
}

/** A refusal by the authorization server: its error response (RFC 6749 §5.2). */
export class OAuthError extends MandateError {
  /** The HTTP status of the answer. */
  readonly status: number;
  constructor(error: string, description: string, status: number) {
    super(error, description);
    this.status = status;
  }
}

/**
 * A failure that is not the server's OAuth answer: the network, a document
 * that is not what the protocol says (metadata naming another issuer, a body
 * that is not JSON), a redirect where credentials were sent.
 */
export class ProtocolError extends MandateError {
  readonly status?: number;
  constructor(description: string, status?: number, options?: { cause?: unknown }) {
    super('protocol_error', description, options);
    this.status = status;
  }
}

/** A token refused by a verifier; `verdict` says why (the vectors' classes). */
export class VerificationError extends MandateError {
  readonly verdict: Verdict;
  /** The HTTP status a resource server answers with. */
  readonly status: number = 401;
  constructor(verdict: Verdict, description: string, error = 'invalid_token') {
    super(error, description);
    this.verdict = verdict;
  }
}

/** Not a well-formed Mandate token: encoding, size, claims, act/lineage structure, scope grammar. */
export class MalformedTokenError extends VerificationError {
  constructor(description: string) {
    super('malformed', description ? `malformed token: ${description}` : 'malformed token');
  }
}

/** The signature does not verify, its algorithm is not allowed for the key, or no published key has its kid. */
export class InvalidSignatureError extends VerificationError {
  constructor(description: string) {
    super('invalid_signature', description ? `invalid token signature: ${description}` : 'invalid token signature');
  }
}

/** iss is not the configured issuer. */
export class WrongIssuerError extends VerificationError {
  constructor(description: string) {
    super('wrong_issuer', description ? `token from another issuer: ${description}` : 'token from another issuer');
  }
}

/** aud does not include this resource server. */
export class WrongAudienceError extends VerificationError {
  constructor(description: string) {
    super('wrong_audience', description ? `token not meant for this audience: ${description}` : 'token not meant for this audience');
  }
}

/** nbf or iat is in the future, beyond the leeway. */
export class NotYetValidError extends VerificationError {
  constructor(description = '') {
    super('not_yet_valid', description ? `token is not valid yet: ${description}` : 'token is not valid yet');
  }
}

/** exp has passed, beyond the leeway. */
export class ExpiredError extends VerificationError {
  constructor(description = '') {
    super('expired', description ? `token has expired: ${description}` : 'token has expired');
  }
}

/** The token or one of its ancestors is revoked. */
export class RevokedError extends VerificationError {
  /** The revoked jti that cut the token off. */
  readonly jti: string;
  /** Whether it is an ancestor's (the whole task or subtree was revoked). */
  readonly ancestor: boolean;
  constructor(jti: string, ancestor: boolean) {
    super('revoked', ancestor ? `token has been revoked: ancestor ${jti} is revoked` : 'token has been revoked');
    this.jti = jti;
    this.ancestor = ancestor;
  }
}

/** A token bound to a key (cnf.jkt) shown as a bearer token. */
export class SenderConstrainedError extends VerificationError {
  constructor(description = 'it can only be used with a proof of its key (DPoP)') {
    super('sender_constrained', `token is sender-constrained: ${description}`);
  }
}

/** The DPoP proof is missing, malformed, for another request or key, stale or replayed. */
export class InvalidDPoPProofError extends VerificationError {
  constructor(description: string) {
    super('invalid_dpop_proof', description ? `invalid DPoP proof: ${description}` : 'invalid DPoP proof', 'invalid_dpop_proof');
  }
}

/**
 * The proof lacks the current server nonce (RFC 9449 §9): answered 401
 * use_dpop_nonce with a fresh nonce. Its verdict is invalid_dpop_proof.
 */
export class DPoPNonceError extends VerificationError {
  readonly nonce: string;
  constructor(nonce: string) {
    super('invalid_dpop_proof', 'a fresh DPoP nonce is required', 'use_dpop_nonce');
    this.nonce = nonce;
  }
}

/** The verifier's revocation data is older than its bound: it fails closed (503). */
export class StaleRevocationsError extends MandateError {
  readonly status = 503;
  constructor(description: string) {
    super('temporarily_unavailable', `revocation data is stale: ${description}`);
  }
}

/** The request carries no token (answered with a bare 401 challenge). */
export class NoTokenError extends MandateError {
  readonly status = 401;
  constructor() {
    super('unauthorized', 'a bearer token is required');
  }
}

/** The Authorization header is malformed (400 invalid_request). */
export class BadAuthorizationError extends MandateError {
  readonly status = 400;
  constructor(description: string) {
    super('invalid_request', `malformed Authorization header: ${description}`);
  }
}

/** A verified token that lacks a scope, or that a call policy denies (403). */
export class InsufficientScopeError extends MandateError {
  readonly status = 403;
  /** The missing scope, when a scope is what is missing. */
  readonly scope?: string;
  /** The ids of the policies that decided a denial. */
  readonly policies?: string[];
  constructor(description: string, scope?: string, policies?: string[]) {
    super('insufficient_scope', description);
    this.scope = scope;
    this.policies = policies;
  }
}

/** Mandate refused the resource server's credentials at the revocation feed (401/403). */
export class FeedCredentialsError extends MandateError {
  constructor(description: string) {
    super(
      'invalid_client',
      `the revocation feed refused this resource server's credentials (clientId/clientSecret of a resource_server client): ${description}`,
    );
  }
}

/** A call policy could not be loaded or used (Cedar). */
export class PolicyError extends MandateError {
  constructor(description: string, options?: { cause?: unknown }) {
    super('policy_error', description, options);
  }
}

/** Bad configuration given to a constructor of this package. */
export class ConfigError extends MandateError {
  constructor(description: string) {
    super('invalid_configuration', description);
  }
}
