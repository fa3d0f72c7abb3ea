/** A decoded view of a token, read without verifying it (for display and a holder's bookkeeping). */
import { MalformedTokenError } from './errors.js';
import { type TokenView, actorPath, unverifiedClaims } from './jwt.js';
import { parseScope } from './scope.js';

/**
 * Decodes a token's claims WITHOUT checking its signature: who it is for
 * (sub, sub_iss), its holder, act chain, lineage, scopes, audiences, expiry.
 * Never decide anything on it: a Verifier does. Throws MalformedTokenError
 * when the token cannot be decoded.
 */
export function decodeToken(token: string): TokenView {
  let c;
  try {
    c = unverifiedClaims(token);
  } catch (e) {
    throw new MalformedTokenError(e instanceof Error ? e.message : 'cannot be decoded');
  }
  let scopes: string[];
  try {
    scopes = parseScope(c.scope);
  } catch {
    scopes = c.scope.split(' ').filter((s) => s !== '');
  }
  const lineage = c.lineage ?? [];
  return {
    jti: c.jti,
    sub: c.sub,
    subIss: c.sub_iss,
    holder: c.client_id,
    actors: actorPath(c.act),
    lineage,
    root: lineage.length > 0 ? lineage[0] : c.jti,
    depth: lineage.length,
    scopes,
    audiences: c.aud ?? [],
    issuer: c.iss,
    issuedAt: c.iat ? new Date(c.iat * 1000) : null,
    expiresAt: c.exp ? new Date(c.exp * 1000) : null,
    jkt: c.cnf?.jkt ?? '',
    bound: c.cnf !== null,
    claims: c,
  };
}
