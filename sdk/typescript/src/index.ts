/**
 * Mandate's TypeScript SDK: the client side (discovery, client_credentials,
 * token exchange to registered and ephemeral agents, DPoP on every request,
 * revocation; a workload's platform token or an enterprise IdP's ID-JAG
 * instead of a secret, through the JWT bearer grant) and the resource-server
 * side (a Verifier equal to the Go one, Node and fetch-style middleware,
 * per-call Cedar decisions in `@mandate-auth/sdk/cedar`).
 */
export * from './errors.js';
export { type Chain, MAX_DEPTH, MAX_LEEWAY_SECONDS, MAX_TOKEN_SIZE, ancestry, coversAll, hasScope } from './chain.js';
export {
  MAX_SCOPES,
  MAX_SCOPE_LENGTH,
  MAX_SCOPE_STRING,
  ScopeError,
  covers,
  coveredBy,
  formatScope,
  intersect,
  parseScope,
  uncovered,
  wildcard,
} from './scope.js';
export { type Actor, type Claims, type Confirmation, type TokenView, MAX_NUMERIC_DATE, excerpt } from './jwt.js';
export { decodeToken } from './view.js';
export { ALLOWED_ALGS, KeySet, type KeyResolver, type PublicKeyInfo } from './keys.js';
export { DPoPKey, ReplayCache, TYPE_AGENT, TYPE_DPOP, accessTokenHash, type DPoPCheck, type DPoPProof, verifyDPoP } from './dpop.js';
export { Feed, RevocationSet, type RevocationSource } from './revocation.js';
export { DEFAULT_FEED_WAIT, DEFAULT_LEEWAY, DEFAULT_MAX_STALENESS, Verifier, type VerifierConfig, metadataURL } from './verifier.js';
export {
  type NodeMiddleware,
  type ProtectedHandler,
  type Rejection,
  type RequestParts,
  chainOf,
  parseAuthorization,
  rejectionResponse,
  writeRejection,
} from './middleware.js';
export { type FetchLike } from './http.js';
export * from './client.js';
