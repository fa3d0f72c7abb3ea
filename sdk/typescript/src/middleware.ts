/**
 * The verifier at the edge of a resource server, as the Go middleware
 * (chain/verifier/middleware.go): the token from "Authorization: Bearer" or
 * "Authorization: DPoP" with exactly one DPoP proof header (never from a
 * query string or a form body), the proof's htu checked against the
 * configured publicUrl plus the path the client sent (never the Host
 * header), and the answers of RFC 6750 / RFC 9449:
 *
 * - no token: 401 with a bare challenge;
 * - a malformed Authorization header: 400 invalid_request;
 * - stale revocation data: 503 with Retry-After (fail closed);
 * - a missing nonce: 401 use_dpop_nonce with a DPoP-Nonce header;
 * - a bad proof: 401 invalid_dpop_proof;
 * - any other refusal: 401 invalid_token with the reason, both challenges;
 * - a missing scope or a policy denial: 403 insufficient_scope.
 *
 * Two shapes: Node http / Express / Connect middleware `(req, res, next)`,
 * and a fetch-style wrapper `(Request) => Promise<Response>` (Hono, Next.js
 * route handlers, Bun, Deno, the MCP SDK's web transport...).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Chain } from './chain.js';
import {
  BadAuthorizationError,
  DPoPNonceError,
  InsufficientScopeError,
  InvalidDPoPProofError,
  MandateError,
  NoTokenError,
  StaleRevocationsError,
} from './errors.js';
import { requestPath } from './gourl.js';
import { uncovered } from './scope.js';
import type { Verifier } from './verifier.js';

/** The proof algorithms a resource server accepts (RFC 9449 §7.1). */
const DPOP_ALGS = 'EdDSA ES256 ES384 ES512 PS256 PS384 PS512 RS256 RS384 RS512';

/** A framework-neutral answer. */
export interface Rejection {
  status: number;
  headers: Array<[string, string]>;
  body: Record<string, unknown>;
}

/** The parts of a request the verifier reads. */
export interface RequestParts {
  method: string;
  /** The request target as the client sent it (path and query; or an absolute URL). */
  target: string;
  /** Every Authorization header value (normally one). */
  authorization: string[];
  /** Every DPoP header value. */
  dpop: string[];
}

/** Splits the Authorization header into its scheme (Bearer or DPoP) and token (Go's authorization()). */
export function parseAuthorization(values: readonly string[]): { scheme: 'Bearer' | 'DPoP'; token: string } {
  if (values.length > 1) throw new BadAuthorizationError("more than one Authorization header: use 'Bearer <token>'");
  const h = values[0] ?? '';
  if (h === '') throw new NoTokenError();
  const sp = h.indexOf(' ');
  const rawScheme = sp >= 0 ? h.slice(0, sp) : h;
  let tok = sp >= 0 ? h.slice(sp + 1) : '';
  let scheme: 'Bearer' | 'DPoP';
  if (rawScheme.toLowerCase() === 'bearer') scheme = 'Bearer';
  else if (rawScheme.toLowerCase() === 'dpop') scheme = 'DPoP';
  else throw new NoTokenError();
  tok = tok.replace(/^[ \t]+|[ \t]+$/g, ''); // HTTP's own white space, as Go and Python trim
  if (sp < 0 || tok === '' || /[ \t]/.test(tok)) throw new BadAuthorizationError("use 'Bearer <token>'");
  return { scheme, token: tok };
}

/** Verifies the request's token: Bearer, or DPoP with exactly one proof for this request. */
export async function authenticate(v: Verifier, r: RequestParts): Promise<Chain> {
  const { scheme, token } = parseAuthorization(r.authorization);
  if (scheme === 'Bearer') return v.verify(token);
  if (r.dpop.length !== 1) throw new InvalidDPoPProofError(`exactly one DPoP header is required (got ${r.dpop.length})`);
  if (v.publicUrl === '') {
    throw new InvalidDPoPProofError(
      'this resource server does not accept DPoP-bound tokens (no publicUrl is configured to check the proof\'s htu against)',
    );
  }
  let path = requestPath(r.target);
  if (path === null) {
    const q = r.target.search(/[?#]/);
    path = q >= 0 ? r.target.slice(0, q) : r.target;
  }
  return v.verifyDPoP(token, r.dpop[0], r.method, v.publicUrl + path);
}

/** Keeps only the characters RFC 6750 §3 allows in a quoted auth-param (no escaping ever needed). */
function param(name: string, value: string): string {
  let out = '';
  for (const ch of value) {
    const c = ch.codePointAt(0) as number;
    if (c >= 0x20 && c <= 0x7e && ch !== '"' && ch !== '\\') out += ch;
  }
  return `${name}="${out}"`;
}

function challenge(v: Verifier, scheme: string, code: string, description: string, extra: Array<[string, string]>): string {
  const parts: string[] = [];
  const { realm } = v.challengeParams;
  if (realm) parts.push(param('realm', realm));
  if (code) {
    parts.push(param('error', code));
    if (description) parts.push(param('error_description', description));
  }
  for (const [n, val] of extra) if (val) parts.push(param(n, val));
  return parts.length === 0 ? scheme : `${scheme} ${parts.join(', ')}`;
}

function bearerChallenge(v: Verifier, code: string, description: string, scope = ''): string {
  return challenge(v, 'Bearer', code, description, [
    ['scope', scope],
    ['resource_metadata', v.challengeParams.resourceMetadataUrl],
  ]);
}

function dpopChallenge(v: Verifier, code: string, description: string): string {
  return challenge(v, 'DPoP', code, description, [['algs', DPOP_ALGS]]);
}

/** The answer to a failed authenticate or verify (Go's Verifier.Reject). Untyped errors answer 500. */
export function rejection(v: Verifier, err: unknown): Rejection {
  const noStore: Array<[string, string]> = [['Cache-Control', 'no-store']];
  if (err instanceof NoTokenError) {
    return {
      status: 401,
      headers: [['WWW-Authenticate', bearerChallenge(v, '', '')], ['WWW-Authenticate', dpopChallenge(v, '', '')], ...noStore],
      body: { error: 'unauthorized', error_description: 'a bearer token is required' },
    };
  }
  if (err instanceof BadAuthorizationError) {
    return {
      status: 400,
      headers: [['WWW-Authenticate', bearerChallenge(v, 'invalid_request', err.message)], ...noStore],
      body: { error: 'invalid_request', error_description: err.message },
    };
  }
  if (err instanceof StaleRevocationsError) {
    return { status: 503, headers: [['Retry-After', '1'], ...noStore], body: { error: 'temporarily_unavailable', error_description: err.message } };
  }
  if (err instanceof DPoPNonceError) {
    return {
      status: 401,
      headers: [['DPoP-Nonce', err.nonce || v.dpopNonce()], ['WWW-Authenticate', dpopChallenge(v, 'use_dpop_nonce', err.message)], ...noStore],
      body: { error: 'use_dpop_nonce', error_description: err.error_description },
    };
  }
  if (err instanceof InvalidDPoPProofError) {
    return {
      status: 401,
      headers: [['WWW-Authenticate', dpopChallenge(v, 'invalid_dpop_proof', err.error_description)], ...noStore],
      body: { error: 'invalid_dpop_proof', error_description: err.error_description },
    };
  }
  if (err instanceof InsufficientScopeError) {
    const body: Record<string, unknown> = { error: 'insufficient_scope' };
    if (err.scope !== undefined) body.scope = err.scope;
    else body.error_description = err.error_description;
    if (err.policies !== undefined) body.policies = err.policies;
    return {
      status: 403,
      headers: [['WWW-Authenticate', bearerChallenge(v, 'insufficient_scope', err.error_description, err.scope ?? '')], ...noStore],
      body,
    };
  }
  if (err instanceof MandateError) {
    const d = err.error_description;
    return {
      status: 401,
      headers: [['WWW-Authenticate', bearerChallenge(v, 'invalid_token', d)], ['WWW-Authenticate', dpopChallenge(v, 'invalid_token', d)], ...noStore],
      body: { error: 'invalid_token', error_description: d },
    };
  }
  return { status: 500, headers: noStore, body: { error: 'server_error', error_description: 'the token could not be checked' } };
}

/** The scope check behind requireScope: throws InsufficientScopeError naming the first missing scope. */
export function requireScopes(c: Chain, scopes: readonly string[]): void {
  const missing = uncovered(c.scopes, scopes);
  if (missing !== undefined) throw new InsufficientScopeError(`the token does not grant ${missing}`, missing);
}

// ---- Node http / Express / Connect ----

type Next = (err?: unknown) => void;
/** A Node http / Express / Connect middleware. */
export type NodeMiddleware = (req: IncomingMessage, res: ServerResponse, next: Next) => void;

const chains = new WeakMap<object, Chain>();

/** The chain the middleware verified for this request (also at req.mandate). */
export function chainOf(req: object): Chain | undefined {
  return chains.get(req);
}

function headerValues(req: IncomingMessage, name: string): string[] {
  const out: string[] = [];
  const raw = req.rawHeaders;
  if (Array.isArray(raw)) {
    for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i].toLowerCase() === name) out.push(raw[i + 1]);
    return out;
  }
  const h = req.headers[name];
  if (h === undefined) return out;
  return Array.isArray(h) ? h : [h];
}

/** The request parts of a Node request: the target as the client sent it (Express's originalUrl survives mounting). */
export function nodeRequestParts(req: IncomingMessage): RequestParts {
  const target = (req as IncomingMessage & { originalUrl?: string }).originalUrl ?? req.url ?? '/';
  return { method: req.method ?? 'GET', target, authorization: headerValues(req, 'authorization'), dpop: headerValues(req, 'dpop') };
}

/** Writes a Rejection to a Node response. */
export function writeRejection(res: ServerResponse, r: Rejection): void {
  const grouped = new Map<string, string[]>();
  for (const [k, v] of r.headers) grouped.set(k, [...(grouped.get(k) ?? []), v]);
  for (const [k, v] of grouped) res.setHeader(k, v.length === 1 ? v[0] : v);
  res.setHeader('Content-Type', 'application/json');
  res.statusCode = r.status;
  res.end(JSON.stringify(r.body) + '\n');
}

/** Node middleware: verifies every request's token and puts its Chain at req.mandate (and chainOf(req)). */
export function nodeMiddleware(v: Verifier): NodeMiddleware {
  return (req, res, next) => {
    authenticate(v, nodeRequestParts(req)).then(
      (c) => {
        chains.set(req, c);
        (req as IncomingMessage & { mandate?: Chain }).mandate = c;
        next();
      },
      (err) => writeRejection(res, rejection(v, err)),
    );
  };
}

/** Node middleware running a check on the verified chain (after nodeMiddleware): a refusal is answered, never passed on. */
export function nodeRequire(v: Verifier, checkFn: (c: Chain, req: IncomingMessage) => void | Promise<void>): NodeMiddleware {
  return (req, res, next) => {
    const c = chains.get(req);
    if (!c) {
      writeRejection(res, rejection(v, new NoTokenError()));
      return;
    }
    Promise.resolve()
      .then(() => checkFn(c, req))
      .then(
        () => next(),
        (err) => writeRejection(res, rejection(v, err)),
      );
  };
}

// ---- fetch-style handlers ----

/** A fetch-style handler that receives the verified chain. */
export type ProtectedHandler = (request: Request, chain: Chain) => Response | Promise<Response>;

/** The Response of a Rejection. */
export function rejectionResponse(r: Rejection): Response {
  const headers = new Headers();
  for (const [k, val] of r.headers) headers.append(k, val);
  headers.set('Content-Type', 'application/json');
  return new Response(JSON.stringify(r.body) + '\n', { status: r.status, headers });
}

/** The request parts of a fetch Request (its URL's path as the target). */
export function fetchRequestParts(request: Request): RequestParts {
  const u = new URL(request.url);
  const split = (name: string): string[] => {
    const h = request.headers.get(name);
    return h === null ? [] : [h];
  };
  return { method: request.method, target: u.pathname + u.search, authorization: split('authorization'), dpop: split('dpop') };
}

/**
 * Wraps a fetch-style handler: `(Request) => Promise<Response>` that verifies
 * the token (and the scopes and checks given) before calling handler with
 * the chain, and answers refusals itself.
 */
export function protect(
  v: Verifier,
  handler: ProtectedHandler,
  opts: { scopes?: readonly string[]; check?: (c: Chain, request: Request) => void | Promise<void> } = {},
): (request: Request) => Promise<Response> {
  return async (request) => {
    let c: Chain;
    try {
      c = await authenticate(v, fetchRequestParts(request));
      if (opts.scopes && opts.scopes.length > 0) requireScopes(c, opts.scopes);
      if (opts.check) await opts.check(c, request);
    } catch (err) {
      return rejectionResponse(rejection(v, err));
    }
    return handler(request, c);
  };
}
