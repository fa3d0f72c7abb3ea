/**
 * The resource-server verifier, equal to the Go one (chain/verifier) in what
 * it accepts and refuses: signature against Mandate's published keys (the
 * key fixes the algorithm), then the chain rules (structure, scope grammar,
 * issuer, audience, time with bounded leeway), then revocation of the token
 * and every ancestor, then how it is presented (bearer, or DPoP with a proof
 * checked against the configured public URL, never the Host header).
 *
 * Two ways to make one: `Verifier.discover(config)` follows a running Mandate
 * (RFC 8414 discovery, the JWKS refetched on an unknown kid at most every
 * 10 s, the revocation feed long-polled, fail closed when stale);
 * `new Verifier(config, keys, revocations)` is offline, over any key set and
 * any revocation source (Go's verifier.New), so tests, tools and the
 * conformance vectors need no server.
 *
 * Repeated tokens are served from a bounded cache of verified chains, used
 * only while the key that verified them is still published; revocation,
 * expiry and staleness are checked on every call.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { type Chain, MAX_DEPTH, MAX_LEEWAY_SECONDS, ancestry, check, checkExpiry } from './chain.js';
import { VerifiedCache } from './cache.js';
import { ReplayCache, verifyDPoP } from './dpop.js';
import {
  ConfigError,
  DPoPNonceError,
  InvalidDPoPProofError,
  MalformedTokenError,
  ProtocolError,
  RevokedError,
  SenderConstrainedError,
} from './errors.js';
import { type FetchLike, basicAuth, getJSON } from './http.js';
import { TYPE_ACCESS_TOKEN, UnknownKeyError, verifyJWS } from './jws.js';
import { KeySet, type KeyResolver } from './keys.js';
import { parseClaimsJSON } from './jwt.js';
import { Feed, RemoteKeys, type RevocationSource, RevocationSet } from './revocation.js';
import {
  type NodeMiddleware,
  type ProtectedHandler,
  type Rejection,
  type RequestParts,
  authenticate,
  nodeMiddleware,
  nodeRequire,
  protect,
  rejection,
  requireScopes,
} from './middleware.js';

/** How a Verifier is configured. Times are in seconds unless the name says Ms. */
export interface VerifierConfig {
  /** Mandate's issuer URL: every token's iss, and where discover() finds the metadata. */
  issuer: string;
  /** This resource server's identifier: it must be among a token's audiences. */
  audience: string;
  /** Clock-skew leeway on exp, nbf and iat (default 5, at most 60). */
  leeway?: number;
  /** The most ancestors a token may have (default and at most 32). */
  maxDepth?: number;
  /** Entries in the cache of verified tokens (default 10,000; negative disables it). */
  cacheSize?: number;
  /** Memory bound of that cache (default 32 MiB). */
  cacheMaxBytes?: number;
  /** Go into WWW-Authenticate challenges. */
  realm?: string;
  resourceMetadataUrl?: string;
  /** How old a DPoP proof may be (default 60). */
  dpopMaxAge?: number;
  /** Proof jtis remembered against replay (default 262,144); when full, new proofs are refused. */
  dpopReplayCacheSize?: number;
  /** Require a server nonce in DPoP proofs (RFC 9449 §9). */
  dpopNonce?: boolean;
  /**
   * The scheme and host clients use to reach this server ("https://orders.example"):
   * a DPoP proof's htu must name it. Without it, DPoP-bound tokens are refused.
   */
  publicUrl?: string;
  /** The clock, in milliseconds (default Date.now). */
  now?: () => number;

  // For discover() only.
  /** A resource_server client's id and secret, for the revocation feed. */
  clientId?: string;
  clientSecret?: string;
  /** The fetch to use (default the platform's). */
  fetch?: FetchLike;
  /** How long tokens are accepted without a successful feed sync (default 30). */
  maxStaleness?: number;
  /** The least time between two JWKS fetches caused by an unknown kid (default 10). */
  jwksRefreshInterval?: number;
  /** How long a fetched JWKS is used before it is refetched anyway (default 300). */
  jwksMaxAge?: number;
  /** The long-poll wait asked of the feed (default 15; between 1 and half of maxStaleness). */
  feedWait?: number;
  /** The cap of the back-off between failed polls (default 5). */
  feedRetryMax?: number;
  /** Called after every feed round trip with its error (null on success). */
  onSync?: (err: Error | null) => void;
}

/** The defaults Go's verifier names. */
export const DEFAULT_LEEWAY = 5;
export const DEFAULT_MAX_STALENESS = 30;
export const DEFAULT_FEED_WAIT = 15;

interface Verified {
  chain: Chain;
  kid: string;
  withdrawals: number;
  ancestry: string[];
}

interface Refresher {
  refresh(): Promise<boolean>;
}
interface Withdrawer {
  withdrawals(): number;
}

function isRefresher(k: unknown): k is Refresher {
  return typeof (k as Refresher).refresh === 'function';
}
function isWithdrawer(k: unknown): k is Withdrawer {
  return typeof (k as Withdrawer).withdrawals === 'function';
}

/** Normalized configuration (seconds). */
interface Resolved {
  issuer: string;
  audience: string;
  leeway: number;
  maxDepth: number;
  realm: string;
  resourceMetadataUrl: string;
  dpopMaxAge: number;
  publicUrl: string;
  nowMs: () => number;
}

function checkNames(cfg: VerifierConfig): void {
  if (!cfg.issuer || !cfg.audience) throw new ConfigError('verifier: config needs issuer and audience');
  if (cfg.audience.replace(/\/$/, '') === cfg.issuer.replace(/\/$/, '')) {
    throw new ConfigError(
      `verifier: audience "${cfg.audience}" is Mandate's own issuer, the audience of identity tokens (which grant nothing): use this resource server's own identifier`,
    );
  }
}

/** Verifies Mandate tokens locally; see the module documentation. */
export class Verifier {
  private readonly cfg: Resolved;
  private readonly auds: string[];
  private readonly keys: KeyResolver;
  private readonly wd: Withdrawer | null;
  private readonly revs: RevocationSource;
  private readonly cache: VerifiedCache<Verified>;
  private readonly replay: ReplayCache;
  private readonly nonceKey: Buffer | null;
  private readonly started: number; // seconds
  /** The feed this verifier follows (discover() only). */
  readonly feed: Feed | null;

  /**
   * An offline verifier (Go's verifier.New): tokens are verified against keys
   * (a KeySet over a JWKS document, say) and revocations come from revocations
   * (a RevocationSet, say). It does no I/O.
   */
  constructor(config: VerifierConfig, keys: KeyResolver, revocations: RevocationSource) {
    checkNames(config);
    if (!keys || !revocations) throw new ConfigError('verifier: a key set and a revocation source are required');
    const leeway = config.leeway !== undefined && config.leeway > 0 ? config.leeway : DEFAULT_LEEWAY;
    if (leeway > MAX_LEEWAY_SECONDS) throw new ConfigError(`verifier: leeway ${leeway}s exceeds the maximum ${MAX_LEEWAY_SECONDS}s`);
    let publicUrl = '';
    if (config.publicUrl) {
      let u: URL | null = null;
      try {
        u = new URL(config.publicUrl);
      } catch {
        u = null;
      }
      if (!u || (u.protocol !== 'https:' && u.protocol !== 'http:') || !u.host || u.pathname.replace(/\//g, '') !== '' || u.search || u.username || u.password) {
        throw new ConfigError(`verifier: publicUrl "${config.publicUrl}" must be a scheme and host, such as https://orders.example`);
      }
      publicUrl = `${u.protocol}//${u.host}`;
    }
    const maxDepth = config.maxDepth && config.maxDepth > 0 && config.maxDepth <= MAX_DEPTH ? config.maxDepth : MAX_DEPTH;
    this.cfg = {
      issuer: config.issuer,
      audience: config.audience,
      leeway,
      maxDepth,
      realm: config.realm ?? '',
      resourceMetadataUrl: config.resourceMetadataUrl ?? '',
      dpopMaxAge: config.dpopMaxAge && config.dpopMaxAge > 0 ? config.dpopMaxAge : 60,
      publicUrl,
      nowMs: config.now ?? Date.now,
    };
    this.auds = [config.audience];
    this.keys = keys;
    this.wd = isWithdrawer(keys) ? keys : null;
    this.revs = revocations;
    this.feed = revocations instanceof Feed ? revocations : null;
    const size = config.cacheSize === undefined || config.cacheSize === 0 ? 10000 : config.cacheSize;
    this.cache = new VerifiedCache<Verified>(size, config.cacheMaxBytes ?? 0);
    this.replay = new ReplayCache(config.dpopReplayCacheSize ?? 0);
    this.nonceKey = config.dpopNonce ? randomBytes(32) : null;
    this.started = this.cfg.nowMs() / 1000;
  }

  /**
   * An offline verifier over a JWKS document and a list of revoked jtis: the
   * shortest way to Go's verifier.New(cfg, tokens.NewSetResolver(jwks), NewRevocationSet(...)).
   */
  static offline(config: VerifierConfig, jwks: unknown, revoked: Iterable<string> = []): Verifier {
    return new Verifier(config, KeySet.fromJWKS(jwks), new RevocationSet(revoked));
  }

  /**
   * A verifier that follows a running Mandate: discovers its metadata (RFC
   * 8414, issuer checked), fetches the JWKS, syncs the revocation feed once
   * and follows it in the background (close() stops it). Fails when
   * discovery or the JWKS fail, and when the feed refuses the credentials
   * (FeedCredentialsError); any other failed first sync is not fatal (verify
   * fails closed until a sync succeeds).
   */
  static async discover(config: VerifierConfig): Promise<Verifier> {
    checkNames(config);
    if (!config.clientId || !config.clientSecret) {
      throw new ConfigError('verifier: config needs a resource_server clientId and clientSecret for the revocation feed');
    }
    const fetchFn = config.fetch ?? globalThis.fetch;
    const nowMs = config.now ?? Date.now;
    const md = await discoverMetadata(config.issuer, fetchFn);
    const keys = new RemoteKeys(md.jwks_uri, fetchFn, nowMs, (config.jwksRefreshInterval ?? 10) * 1000, (config.jwksMaxAge ?? 300) * 1000);
    await keys.start();
    const maxStalenessMs = (config.maxStaleness && config.maxStaleness > 0 ? config.maxStaleness : DEFAULT_MAX_STALENESS) * 1000;
    let waitMs = (config.feedWait && config.feedWait > 0 ? config.feedWait : DEFAULT_FEED_WAIT) * 1000;
    waitMs = Math.min(Math.max(waitMs, 1000), maxStalenessMs / 2);
    const feed = new Feed(
      {
        url: md.revocation_feed_endpoint,
        clientId: config.clientId,
        clientSecret: config.clientSecret,
        fetch: fetchFn,
        nowMs,
        leewaySeconds: config.leeway && config.leeway > 0 ? config.leeway : DEFAULT_LEEWAY,
        maxStalenessMs,
        waitMs,
        retryMaxMs: (config.feedRetryMax && config.feedRetryMax > 0 ? config.feedRetryMax : 5) * 1000,
        onSync: config.onSync,
        afterPoll: () => keys.refreshStale(),
        onRevokedKeys: (kids) => keys.revoke(kids),
      },
      basicAuth(config.clientId, config.clientSecret),
    );
    const v = new Verifier(config, keys, feed);
    await feed.start();
    return v;
  }

  /** Stops following the feed (discover() only). A closed verifier soon refuses everything as stale. */
  async close(): Promise<void> {
    await this.feed?.close();
  }

  /** The size of the cache of verified tokens. */
  cacheStats(): { entries: number; bytes: number } {
    return { entries: this.cache.size, bytes: this.cache.byteSize };
  }

  /** Whether the verifier currently knows jti to be revoked. */
  revoked(jti: string): boolean {
    return this.revs.firstRevoked([jti]) !== undefined;
  }

  /** This resource server's identifier: the audience every token it accepts carries. */
  get audience(): string {
    return this.cfg.audience;
  }

  /** The configured public URL (scheme and host), or ''. */
  get publicUrl(): string {
    return this.cfg.publicUrl;
  }

  /** The realm and resource metadata URL for challenges. */
  get challengeParams(): { realm: string; resourceMetadataUrl: string } {
    return { realm: this.cfg.realm, resourceMetadataUrl: this.cfg.resourceMetadataUrl };
  }

  /**
   * Checks a bearer token and returns its chain, or throws a typed error
   * (VerificationError with its verdict, or StaleRevocationsError). A token
   * bound to a key is refused (SenderConstrainedError): only verifyDPoP
   * accepts it, with a proof of that key.
   */
  async verify(token: string): Promise<Chain> {
    const c = await this.verifyToken(token);
    if (c.jkt !== '') throw new SenderConstrainedError();
    return c;
  }

  /** verify without any network: an unknown kid is refused at once (no JWKS refresh). */
  verifySync(token: string): Chain {
    const c = this.verifyTokenSync(token);
    if (c.jkt !== '') throw new SenderConstrainedError();
    return c;
  }

  /**
   * Checks a DPoP-bound token presented with a proof for the request (method,
   * URL): the token as verify does, then the proof (htm, htu, iat window, ath,
   * jti replay, the nonce when required) and that it is made with the key the
   * token is bound to. The URL must be built from configuration (publicUrl),
   * never from the request's Host header.
   */
  async verifyDPoP(token: string, proof: string, method: string, url: string): Promise<Chain> {
    return this.checkProof(await this.verifyToken(token), token, proof, method, url);
  }

  /** verifyDPoP without any network. */
  verifyDPoPSync(token: string, proof: string, method: string, url: string): Chain {
    return this.checkProof(this.verifyTokenSync(token), token, proof, method, url);
  }

  /** The nonce clients must currently put in their proofs ('' when nonces are not required). */
  dpopNonce(): string {
    return this.nonceKey ? this.nonceAt(Math.floor(this.cfg.nowMs() / 60000)) : '';
  }

  private nonceAt(window: number): string {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt.asUintN(64, BigInt(window)));
    const mac = createHmac('sha256', this.nonceKey as Buffer).update(b).digest().subarray(0, 16);
    return Buffer.concat([b, mac]).toString('base64url');
  }

  private checkProof(c: Chain, token: string, proof: string, method: string, url: string): Chain {
    if (c.jkt === '') throw new InvalidDPoPProofError('the token is not bound to a key; send it as a Bearer token');
    const nowMs = this.cfg.nowMs();
    const check = {
      method,
      url,
      accessToken: token,
      now: nowMs / 1000,
      maxAge: this.cfg.dpopMaxAge,
      jkt: c.jkt,
      notBefore: this.started,
      nonce: undefined as string | undefined,
    };
    let p;
    if (this.nonceKey === null) {
      p = verifyDPoP(proof, check, this.replay);
    } else {
      const w = Math.floor(nowMs / 60000);
      const nonces = [this.nonceAt(w), this.nonceAt(w - 1)];
      let last: unknown = null;
      for (const n of nonces) {
        check.nonce = n;
        try {
          p = verifyDPoP(proof, check, this.replay);
          last = null;
          break;
        } catch (e) {
          last = e;
          if (!(e instanceof DPoPNonceError)) break;
        }
      }
      if (last instanceof DPoPNonceError) throw new DPoPNonceError(nonces[0]);
      if (last !== null) throw last;
    }
    if (!p || p.jkt !== c.jkt) throw new InvalidDPoPProofError('the proof is not made with the key the token is bound to');
    return c;
  }

  /** Verifies a request's token (Bearer, or DPoP with its proof): what the middleware calls. */
  authenticate(parts: RequestParts): Promise<Chain> {
    return authenticate(this, parts);
  }

  /** The answer (status, headers, JSON body) to a refusal, as the middleware writes it. */
  reject(err: unknown): Rejection {
    return rejection(this, err);
  }

  /**
   * Node http / Express / Connect middleware: verifies every request's token
   * and puts its Chain at req.mandate (and chainOf(req)); a refusal is
   * answered and never reaches next.
   */
  middleware(): NodeMiddleware {
    return nodeMiddleware(this);
  }

  /** Node middleware (after middleware()) that lets a request through only when its chain grants every scope: else 403 insufficient_scope. */
  requireScope(...scopes: string[]): NodeMiddleware {
    return nodeRequire(this, (c) => requireScopes(c, scopes));
  }

  /** A fetch-style handler `(Request) => Promise<Response>` that verifies the token (and scopes) before calling handler with the chain. */
  protect(
    handler: ProtectedHandler,
    opts: { scopes?: readonly string[]; check?: (c: Chain, request: Request) => void | Promise<void> } = {},
  ): (request: Request) => Promise<Response> {
    return protect(this, handler, opts);
  }

  private async verifyToken(token: string): Promise<Chain> {
    try {
      return this.verifyTokenSync(token);
    } catch (e) {
      if (e instanceof UnknownKeyError && isRefresher(this.keys) && (await this.keys.refresh())) {
        return this.verifyTokenSync(token);
      }
      throw e;
    }
  }

  /** Everything about a token but how it is presented. */
  private verifyTokenSync(token: string): Chain {
    if (typeof token !== 'string') throw new MalformedTokenError('not a string');
    const nowMs = this.cfg.nowMs();
    const now = nowMs / 1000;
    this.revs.current(nowMs);
    const e = this.cache.get(token, now);
    if (e !== undefined && this.stillPublished(e)) {
      checkExpiry(e.chain.exp, now, this.cfg.leeway);
      this.checkRevoked(e.chain, e.ancestry);
      return e.chain;
    }
    const withdrawalsBefore = this.wd ? this.wd.withdrawals() : 0;
    const jws = verifyJWS(token, this.keys, TYPE_ACCESS_TOKEN);
    let claims;
    try {
      claims = parseClaimsJSON(jws.payload.toString('utf8'));
    } catch (err) {
      throw new MalformedTokenError(`claims: ${err instanceof Error ? err.message : 'malformed'}`);
    }
    const c = check(claims, {
      issuer: this.cfg.issuer,
      audiences: this.auds,
      now,
      leeway: this.cfg.leeway,
      expiryLeeway: this.cfg.leeway,
      maxDepth: this.cfg.maxDepth,
    });
    const anc = ancestry(c);
    this.checkRevoked(c, anc);
    this.cache.put(token, { chain: c, kid: jws.kid, withdrawals: withdrawalsBefore, ancestry: anc }, c.exp + this.cfg.leeway + 1, now);
    return c;
  }

  private stillPublished(e: Verified): boolean {
    if (this.wd) return this.wd.withdrawals() === e.withdrawals;
    return this.keys.resolveKey(e.kid) !== undefined;
  }

  private checkRevoked(c: Chain, anc: readonly string[]): void {
    const jti = this.revs.firstRevoked(anc);
    if (jti !== undefined) throw new RevokedError(jti, jti !== c.jti);
  }
}

/** RFC 8414 metadata, as a verifier needs it. */
interface VerifierMetadata {
  issuer: string;
  jwks_uri: string;
  revocation_feed_endpoint: string;
}

/** The RFC 8414 metadata URL of an issuer: the well-known segment between host and path (§3.1). */
export function metadataURL(issuer: string): string {
  let u: URL;
  try {
    u = new URL(issuer);
  } catch {
    throw new ConfigError(`issuer "${issuer}" is not a URL`);
  }
  if (!u.host) throw new ConfigError(`issuer "${issuer}" is not a URL`);
  const path = u.pathname.replace(/\/$/, '');
  return `${u.protocol}//${u.host}/.well-known/oauth-authorization-server${path}`;
}

async function discoverMetadata(issuer: string, fetchFn: FetchLike): Promise<VerifierMetadata> {
  const r = await getJSON(metadataURL(issuer), { fetch: fetchFn, limit: 1 << 20, timeoutMs: 10000 });
  if (r.status !== 200) throw new ProtocolError(`verifier: discovery: HTTP ${r.status}`, r.status);
  const md = r.body as Partial<VerifierMetadata> | null;
  if (!md || typeof md !== 'object') throw new ProtocolError('verifier: discovery: the metadata is not a JSON object');
  if (md.issuer !== issuer) throw new ProtocolError(`verifier: discovery: metadata names issuer "${String(md.issuer)}", not "${issuer}"`);
  if (typeof md.jwks_uri !== 'string' || !md.jwks_uri) throw new ProtocolError('verifier: discovery: metadata has no jwks_uri');
  if (typeof md.revocation_feed_endpoint !== 'string' || !md.revocation_feed_endpoint) {
    throw new ProtocolError('verifier: discovery: the issuer offers no revocation_feed_endpoint');
  }
  return md as VerifierMetadata;
}
