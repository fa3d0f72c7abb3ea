/**
 * The pure rules of a Mandate token chain, as the Go reference (package
 * chain): the act/lineage structure, the claim checks in their one order
 * (structure, scope grammar, then exp required, iss, aud, nbf, iat, exp),
 * and the Chain a resource server sees. No I/O, no clock: the caller passes
 * `now` (seconds).
 */
import {
  ExpiredError,
  MalformedTokenError,
  NotYetValidError,
  WrongAudienceError,
  WrongIssuerError,
} from './errors.js';
import { type Actor, type Claims, actorPath, excerpt } from './jwt.js';
import { ScopeError, coveredBy, parseScope, uncovered } from './scope.js';

/** The most ancestors a token may have. */
export const MAX_DEPTH = 32;
/** The most clock-skew leeway a verifier may allow (seconds): no more than the feed's grace. */
export const MAX_LEEWAY_SECONDS = 60;
/** How long a revocation stays in the feed after its token expired (seconds). */
export const REVOCATION_GRACE_SECONDS = 60;
/** A token is at most 16 KiB. */
export const MAX_TOKEN_SIZE = 16 << 10;

/**
 * A checked Mandate token as a resource server sees it. Compare the pair
 * (subject, subjectIssuer), never subject alone. Treat it as read-only: a
 * Chain is shared between requests through the verifier's cache.
 */
export interface Chain {
  /** The token's own id. */
  readonly jti: string;
  /** On whose behalf the work is done (sub). */
  readonly subject: string;
  /** Who vouches for that name (sub_iss). */
  readonly subjectIssuer: string;
  /** The client presenting the token (client_id). */
  readonly holder: string;
  /** The RFC 8693 actor path, current holder first; empty for a client_credentials root. */
  readonly actors: readonly string[];
  /** The ancestors' jtis, root first; empty for a root. */
  readonly lineage: readonly string[];
  /** The task's root jti. */
  readonly root: string;
  /** The number of ancestors. */
  readonly depth: number;
  readonly scopes: readonly string[];
  readonly audiences: readonly string[];
  readonly issuedAt: Date;
  readonly expiresAt: Date;
  /** Seconds since the epoch (the claim as read). */
  readonly exp: number;
  /** The thumbprint of the key the token is bound to (RFC 9449), or '' for a bearer token. */
  readonly jkt: string;
}

/** Whether the chain grants scope (wildcard-aware). */
export function hasScope(c: Chain, scope: string): boolean {
  return coveredBy(c.scopes, scope);
}

/** Whether the chain grants every one of scopes. */
export function coversAll(c: Chain, ...scopes: string[]): boolean {
  return uncovered(c.scopes, scopes) === undefined;
}

/** The lineage followed by the token's own jti: every jti whose revocation cuts it off. */
export function ancestry(c: Chain): string[] {
  return [...c.lineage, c.jti];
}

/**
 * The invariants every Mandate token's chain satisfies (Go's
 * chain.CheckStructure); throws MalformedTokenError. maxDepth <= 0 skips the
 * depth bound.
 */
export function checkStructure(c: Claims, maxDepth: number): void {
  const bad = (why: string): never => {
    throw new MalformedTokenError(`malformed delegation chain: ${why}`);
  };
  if (c.jti === '' || c.sub === '' || c.client_id === '') bad('jti, sub and client_id are required');
  if (c.sub_iss === '') bad('sub_iss is required (the issuer of sub)');
  if (c.cnf !== null && c.cnf.jkt === '') bad('cnf without jkt');
  const lineage = c.lineage ?? [];
  if (maxDepth > 0 && lineage.length > maxDepth) bad(`lineage of ${lineage.length} exceeds max depth ${maxDepth}`);
  const seen = new Set<string>([c.jti]);
  for (const j of lineage) {
    if (j === '') bad('empty jti in lineage');
    if (seen.has(j)) bad('jti repeated in lineage');
    seen.add(j);
  }
  if (c.act === null) {
    if (c.client_id !== c.sub) bad(`no act claim but holder "${excerpt(c.client_id)}" is not the subject`);
    return;
  }
  if (c.act.sub !== c.client_id) {
    bad(`current actor "${excerpt(c.act.sub)}" is not the holder "${excerpt(c.client_id)}"`);
  }
  let d = 0;
  for (let a: Actor | null | undefined = c.act; a; a = a.act) {
    d++;
    if (d > lineage.length + 1) bad(`more actors than ancestors plus one (${lineage.length} ancestors)`);
  }
  for (let a: Actor | null | undefined = c.act; a; a = a.act) {
    if (a.sub === '') bad('actor without sub');
  }
}

/** What a resource server expects of a token's claims (Go's chain.Expect, as a verifier fills it). */
export interface Expect {
  issuer: string;
  /** The token's aud must include at least one of these. */
  audiences: readonly string[];
  /** The reader's clock, in seconds (may carry a fraction). */
  now: number;
  /** How far the maker's clock may run ahead: nbf and iat may be up to this after now (seconds). */
  leeway: number;
  /** How long after exp the token is still accepted (seconds, at most MAX_LEEWAY_SECONDS). */
  expiryLeeway: number;
  /** The most ancestors (MAX_DEPTH when 0 or more than it). */
  maxDepth: number;
}

/** exp has passed (beyond the expiry leeway): the one check that changes with time. */
export function checkExpiry(exp: number, now: number, expiryLeeway: number): void {
  if (!(now < exp + Math.min(expiryLeeway, MAX_LEEWAY_SECONDS))) throw new ExpiredError();
}

/** The registered claims, in the order every verifier reports faults (Go's CheckRegistered). */
export function checkRegistered(c: Claims, e: Expect): void {
  if (c.exp === 0) throw new MalformedTokenError('exp is required');
  if (e.issuer !== '' && c.iss !== e.issuer) throw new WrongIssuerError(`iss "${excerpt(c.iss)}"`);
  if (e.audiences.length > 0) {
    const aud = c.aud ?? [];
    if (!e.audiences.some((a) => aud.includes(a))) {
      throw new WrongAudienceError(`aud does not include ${e.audiences.map((a) => JSON.stringify(a)).join(' nor ')}`);
    }
  }
  const latest = e.now + e.leeway;
  if (c.nbf > latest) throw new NotYetValidError();
  if (c.iat > latest) throw new NotYetValidError();
  checkExpiry(c.exp, e.now, e.expiryLeeway);
}

/**
 * Every rule of a Mandate token that needs neither a key nor revocation data,
 * for claims whose signature verified: structure, scope grammar, registered
 * claims. Returns the Chain or throws a VerificationError.
 */
export function check(c: Claims, e: Expect): Chain {
  const depth = e.maxDepth <= 0 || e.maxDepth > MAX_DEPTH ? MAX_DEPTH : e.maxDepth;
  checkStructure(c, depth);
  let scopes: string[];
  try {
    scopes = parseScope(c.scope);
  } catch (err) {
    if (err instanceof ScopeError) throw new MalformedTokenError(err.message);
    throw err;
  }
  checkRegistered(c, e);
  return newChain(c, scopes);
}

function newChain(c: Claims, scopes: string[]): Chain {
  const lineage = c.lineage ?? [];
  return Object.freeze({
    jti: c.jti,
    subject: c.sub,
    subjectIssuer: c.sub_iss,
    holder: c.client_id,
    actors: Object.freeze(actorPath(c.act)),
    lineage: Object.freeze(lineage.slice()),
    root: lineage.length > 0 ? lineage[0] : c.jti,
    depth: lineage.length,
    scopes: Object.freeze(scopes),
    audiences: Object.freeze((c.aud ?? []).slice()),
    issuedAt: new Date(c.iat * 1000),
    expiresAt: new Date(c.exp * 1000),
    exp: c.exp,
    jkt: c.cnf ? c.cnf.jkt : '',
  });
}
