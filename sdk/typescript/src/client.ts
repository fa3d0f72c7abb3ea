/**
 * The client side: what an orchestrator and its agents use (the Go
 * delegation/client, in Promises).
 *
 * - `MandateClient.discover(issuer, options)` reads the RFC 8414 metadata and
 *   checks that it names the issuer asked for.
 * - Client authentication: client_secret_basic (id and secret form-urlencoded
 *   before Base64, RFC 6749 §2.3.1), private_key_jwt (RFC 7523, a fresh
 *   assertion per request, signed with jose), or a workload's platform token
 *   (a Kubernetes projected service-account token, a SPIFFE JWT-SVID, a CI
 *   job's OIDC token: no static secret), read afresh for every request from
 *   its file or function and sent as the client_assertion (RFC 7523 §2.2).
 * - `mint` (client_credentials; for a workload, the JWT bearer grant with
 *   its platform token as the assertion, RFC 7523 §2.1), `identity` (the
 *   identity token: audience = the issuer, the actor token naming this
 *   client), `exchange` (RFC 8693, to itself or to a registered agent named
 *   by its actor token), `spawnAgent` + `delegateToAgent` (an ephemeral
 *   agent: a fresh key and its agent+jwt), `redeemIdJag` (an enterprise
 *   IdP's ID-JAG through the JWT bearer grant: a root on behalf of its
 *   user), `revoke` (RFC 7009).
 * - DPoP on every request made with a key: proofs with htm, htu, iat, jti
 *   (and ath at resource servers); a server's use_dpop_nonce is answered by
 *   one retry with its nonce. Redirects are never followed (fetch with
 *   redirect: 'manual'): a token, a proof or a secret never goes where a
 *   server points.
 *
 * Refusals are OAuthError (its `error`, `error_description` and `status`);
 * no error of this module carries a secret or a whole token.
 */
import { Buffer } from 'node:buffer';
import { type KeyObject, type JsonWebKey, randomBytes, webcrypto } from 'node:crypto';
import { open } from 'node:fs/promises';

type CryptoKey = webcrypto.CryptoKey;
import { SignJWT, importJWK } from 'jose';
import { DPoPKey, TYPE_AGENT } from './dpop.js';
import { MandateError, OAuthError, ProtocolError } from './errors.js';
import { type FetchLike, basicAuth, deadline, isRedirect, readLimited, safeURL } from './http.js';
import { MAX_TOKEN_SIZE } from './chain.js';
import { type TokenView, excerpt } from './jwt.js';
import { metadataURL } from './verifier.js';
import { decodeToken } from './view.js';

/** RFC 8693 and RFC 7523 identifiers. */
export const GRANT_CLIENT_CREDENTIALS = 'client_credentials';
export const GRANT_TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const GRANT_JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
export const TOKEN_TYPE_ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
export const TOKEN_TYPE_JWT = 'urn:ietf:params:oauth:token-type:jwt';
export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** A private key for private_key_jwt: its registered kid and algorithm. */
export interface ClientKey {
  /** A KeyObject, a CryptoKey, or a private JWK. */
  key: KeyObject | CryptoKey | JsonWebKey;
  /** The kid under which the key is in the client's registered JWKS. */
  kid: string;
  /** EdDSA (default for Ed25519 keys), ES256, ...; taken from a JWK's alg when there. */
  alg?: string;
}

/**
 * How a client authenticates: exactly one of clientSecret, privateKey,
 * workloadTokenFile and workloadToken.
 */
export interface ClientOptions {
  /**
   * The client's id. Required with clientSecret and privateKey. Optional
   * with a workload token, whose issuer's rules name the client: given, it
   * is sent as client_id and Mandate refuses a token that maps to another
   * identity; absent, it is learnt from the client_id of the tokens issued
   * to the client itself (all but those delegated to an actor).
   */
  clientId?: string;
  /** client_secret_basic. */
  clientSecret?: string;
  /** private_key_jwt, instead of a secret. */
  privateKey?: ClientKey;
  /**
   * The file holding the workload's platform token (a Kubernetes projected
   * service-account token, say /var/run/secrets/tokens/mandate, or a JWT-SVID
   * written by the SPIFFE helper), for a Mandate with a matching
   * workload_issuers entry. It is read again for every request, so a token
   * the platform rotates is picked up, and trimmed of surrounding white
   * space. Its token is never put in an error.
   */
  workloadTokenFile?: string;
  /**
   * The workload's platform token, asked for at every request (from the
   * platform's API, an environment variable, ...), trimmed as a file's.
   */
  workloadToken?: () => string | Promise<string>;
  /** Binds the tokens the client obtains for itself to this key (DPoP). */
  dpopKey?: DPoPKey;
  /** The fetch to use (default the platform's). */
  fetch?: FetchLike;
  /** The clock, in milliseconds (default Date.now): proofs and expiry are dated by it. */
  now?: () => number;
  /** The deadline of each request to Mandate (default 30 s). */
  timeoutMs?: number;
}

/** The RFC 8414 metadata a client reads. */
export interface ServerMetadata {
  issuer: string;
  token_endpoint: string;
  revocation_endpoint?: string;
  introspection_endpoint?: string;
  jwks_uri?: string;
  revocation_feed_endpoint?: string;
  grant_types_supported?: string[];
  token_endpoint_auth_methods_supported?: string[];
  dpop_signing_alg_values_supported?: string[];
  [k: string]: unknown;
}

const MAX_ANSWER = 1 << 20;
const AGENT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * An access token with what its holder needs to use it. Its string forms
 * (String(t), util.inspect, JSON.stringify) never show the token itself:
 * read `value` explicitly where it must go.
 */
export class Token {
  /** The compact JWS. */
  readonly value: string;
  /** "Bearer" or "DPoP". */
  readonly type: 'Bearer' | 'DPoP';
  /** The scope string the server granted. */
  readonly scope: string;
  readonly expiresAt: Date;
  /** The key a DPoP token is bound to, when this side holds it (the holder's own tokens). */
  key: DPoPKey | null;
  readonly #now: () => number;
  readonly #fetch: FetchLike;

  constructor(init: { value: string; type: string; scope?: string; expiresAt: Date; key?: DPoPKey | null; now?: () => number; fetch?: FetchLike }) {
    this.value = init.value;
    this.type = init.type.toLowerCase() === 'dpop' ? 'DPoP' : 'Bearer';
    this.scope = init.scope ?? '';
    this.expiresAt = init.expiresAt;
    this.key = this.type === 'DPoP' ? (init.key ?? null) : null;
    this.#now = init.now ?? Date.now;
    this.#fetch = init.fetch ?? globalThis.fetch;
  }

  /** Whether the token is bound to a key (DPoP). */
  get bound(): boolean {
    return this.type === 'DPoP';
  }

  /** The scopes the server granted. */
  get scopes(): string[] {
    return this.scope === '' ? [] : this.scope.split(' ');
  }

  /** Whether it has expired at now (ms, default the clock). */
  expired(nowMs = this.#now()): boolean {
    return nowMs >= this.expiresAt.getTime();
  }

  /** A decoded view (sub, holder, act chain, lineage, scopes, audiences, exp), read without verifying. */
  decode(): TokenView {
    return decodeToken(this.value);
  }

  /**
   * The headers that present the token for a request: "Authorization:
   * Bearer", or for a bound token "Authorization: DPoP" and a fresh proof
   * for this method and URL (with the server's nonce when it asked for one).
   */
  authorize(method: string, url: string | URL, nonce?: string): Record<string, string> {
    if (!this.bound) return { authorization: `Bearer ${this.value}` };
    if (!this.key) throw new MandateError('invalid_request', "this DPoP-bound token's key is not here (adopt it with the holder's client or agent)");
    return {
      authorization: `DPoP ${this.value}`,
      dpop: this.key.proof(method, url, { accessToken: this.value, nonce, now: Math.floor(this.#now() / 1000) }),
    };
  }

  /**
   * Calls a protected API with the token (fetch semantics): Authorization
   * (and a fresh DPoP proof) set; a 401 with a DPoP-Nonce is retried once
   * with that nonce; redirects are returned, never followed. A body that
   * cannot be sent twice (a stream) is not retried.
   */
  async fetch(url: string | URL, init: RequestInit = {}): Promise<Response> {
    const method = (init.method ?? 'GET').toUpperCase();
    const send = (nonce?: string): Promise<Response> => {
      const headers = new Headers(init.headers);
      for (const [k, v] of Object.entries(this.authorize(method, url, nonce))) headers.set(k, v);
      return this.#fetch(url, { ...init, method, headers, redirect: 'manual' });
    };
    const resp = await send();
    const nonce = resp.headers.get('dpop-nonce');
    const replayable = init.body === undefined || init.body === null || typeof init.body === 'string' || init.body instanceof URLSearchParams || ArrayBuffer.isView(init.body) || init.body instanceof ArrayBuffer;
    if (resp.status !== 401 || !nonce || !this.bound || !replayable) return resp;
    await resp.body?.cancel().catch(() => undefined);
    return send(nonce);
  }

  toString(): string {
    return `Token(${this.type}, expires ${this.expiresAt.toISOString()})`;
  }

  toJSON(): Record<string, unknown> {
    return { type: this.type, scope: this.scope, expiresAt: this.expiresAt.toISOString(), bound: this.bound };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}

/**
 * An ephemeral agent: a name in its owner's namespace ("<owner>/<name>") and
 * a fresh key, with no registration of its own. Give the agent its Agent (or
 * at least its key) and the token delegated to it; nobody else can use that
 * token.
 */
export class Agent {
  readonly name: string;
  readonly key: DPoPKey;
  readonly owner: string;
  readonly #now: () => number;
  readonly #fetch: FetchLike;

  constructor(owner: string, name: string, key: DPoPKey, now: () => number = Date.now, fetchFn: FetchLike = globalThis.fetch) {
    this.owner = owner;
    this.name = `${owner}/${name}`;
    this.key = key;
    this.#now = now;
    this.#fetch = fetchFn;
  }

  /** The agent's self-signed actor token (agent+jwt, docs/dpop.md) for an exchange at issuer, valid for ttl seconds (at most 600). */
  actorToken(issuer: string, ttlSeconds = 120, nowSeconds = Math.floor(this.#now() / 1000)): string {
    return this.key.signJWT(TYPE_AGENT, {
      iss: this.owner,
      sub: this.name,
      aud: issuer,
      iat: nowSeconds,
      exp: nowSeconds + Math.min(ttlSeconds, 600),
      jti: randomBytes(12).toString('base64url'),
    });
  }

  /** Wraps a token delegated to the agent (received as a string) with the agent's key. */
  adopt(value: string): Token {
    return adopt(value, this.key, this.#now, this.#fetch);
  }
}

function adopt(value: string, key: DPoPKey | null, now: () => number, fetchFn: FetchLike): Token {
  let type = 'Bearer';
  let scope = '';
  let expiresAt = new Date(0);
  try {
    const v = decodeToken(value);
    scope = v.scopes.join(' ');
    if (v.expiresAt) expiresAt = v.expiresAt;
    if (v.bound) type = 'DPoP';
  } catch {
    // an undecodable token stays an opaque bearer token; the server decides
  }
  return new Token({ value, type, scope, expiresAt, key, now, fetch: fetchFn });
}

/** Whether endpoint has issuer's scheme and host (with port). */
function sameOrigin(endpoint: string, issuer: string): boolean {
  try {
    return new URL(endpoint).origin === new URL(issuer).origin;
  } catch {
    return false;
  }
}

/** Options of an exchange. */
export interface ExchangeOptions {
  /**
   * The actor_token naming the new holder: a registered agent's identity
   * token (its identity()) or a token bound to its key, or an ephemeral
   * agent's agent+jwt. Omitted: the token stays with this client (down-scoping).
   */
  actor?: string | Token;
  /** Narrower scopes (a string or a list); absent: the parent's, within the new holder's ceiling. */
  scope?: string | readonly string[];
  /** Narrower audiences; absent: the parent's, within the new holder's ceiling. */
  audience?: string | readonly string[];
}

/** Adds a request's narrowing to its form: scope (space-separated), when given and not empty, then one audience parameter per audience. */
function narrow(form: URLSearchParams, o: { scope?: string | readonly string[]; audience?: string | readonly string[] }): void {
  const scope = o.scope === undefined ? '' : typeof o.scope === 'string' ? o.scope : o.scope.join(' ');
  if (scope) form.set('scope', scope);
  for (const a of o.audience === undefined ? [] : typeof o.audience === 'string' ? [o.audience] : o.audience) form.append('audience', a);
}

/**
 * A client of one Mandate server, authenticating as one registered client,
 * or as the workload its platform token names.
 */
export class MandateClient {
  readonly issuer: string;
  readonly metadata: Readonly<ServerMetadata>;
  /** The key the client's own tokens are bound to, or null. */
  readonly dpopKey: DPoPKey | null;
  #clientId: string | null;
  readonly #clientIdGiven: boolean;
  readonly #secret: string | undefined;
  readonly #privateKey: ClientKey | undefined;
  /** The workload's platform token, read afresh (file or function); null for a registered client's secret or key. */
  readonly #workloadToken: (() => Promise<string>) | null;
  #signingKey: Promise<{ key: KeyObject | CryptoKey | Uint8Array; alg: string }> | null = null;
  readonly #fetch: FetchLike;
  readonly #now: () => number;
  readonly #timeoutMs: number;

  private constructor(issuer: string, md: ServerMetadata, o: ClientOptions) {
    this.issuer = issuer;
    this.metadata = Object.freeze({ ...md });
    this.#clientId = o.clientId || null;
    this.#clientIdGiven = !!o.clientId;
    this.dpopKey = o.dpopKey ?? null;
    this.#secret = o.clientSecret;
    this.#privateKey = o.privateKey;
    this.#workloadToken = workloadReader(o);
    this.#fetch = o.fetch ?? globalThis.fetch;
    this.#now = o.now ?? Date.now;
    this.#timeoutMs = o.timeoutMs ?? 30000;
  }

  /**
   * The client's id: the one given, or, for a workload client given none,
   * the holder of the latest token issued to it (mint, identity,
   * redeemIdJag, an exchange without an actor, exchangeForDownstream: all
   * but a delegation to an actor) — null before the first. A platform token
   * that rotates to another identity is followed from its next such token.
   */
  get clientId(): string | null {
    return this.#clientId;
  }

  /** Whether the client authenticates with a workload's platform token (workloadTokenFile or workloadToken). */
  get workload(): boolean {
    return this.#workloadToken !== null;
  }

  /**
   * Discovers the server's endpoints from its issuer URL (RFC 8414) and
   * returns a client authenticating as options.clientId, or as the workload
   * its platform token names (workloadTokenFile, workloadToken: the server
   * must advertise the JWT bearer grant). The metadata must name exactly
   * this issuer (RFC 8414 §3.3).
   */
  static async discover(issuer: string, options: ClientOptions): Promise<MandateClient> {
    const given = (['clientSecret', 'privateKey', 'workloadTokenFile', 'workloadToken'] as const).filter((k) => options[k] !== undefined);
    if (given.length !== 1) {
      throw new MandateError(
        'invalid_request',
        'give exactly one of clientSecret (client_secret_basic), privateKey (private_key_jwt), workloadTokenFile and workloadToken (a workload\'s platform token)',
      );
    }
    const workload = given[0] === 'workloadTokenFile' || given[0] === 'workloadToken';
    if (!workload && !options.clientId) throw new MandateError('invalid_request', 'a clientId is required');
    if (given[0] === 'clientSecret' && !options.clientSecret) throw new MandateError('invalid_request', 'clientSecret is empty');
    if (given[0] === 'workloadTokenFile' && (typeof options.workloadTokenFile !== 'string' || options.workloadTokenFile === '')) {
      throw new MandateError('invalid_request', 'workloadTokenFile must be the path of a file');
    }
    if (given[0] === 'workloadToken' && typeof options.workloadToken !== 'function') {
      throw new MandateError('invalid_request', 'workloadToken must be a function returning the token (or a Promise of it)');
    }
    const fetchFn = options.fetch ?? globalThis.fetch;
    const d = deadline(options.timeoutMs ?? 30000);
    let md: ServerMetadata;
    try {
      let resp: Response;
      try {
        resp = await fetchFn(metadataURL(issuer), { headers: { accept: 'application/json' }, redirect: 'manual', signal: d.signal });
      } catch (e) {
        throw new ProtocolError(`mandate discovery: ${e instanceof Error ? e.message : String(e)}`, undefined, { cause: e });
      }
      const body = await readLimited(resp, MAX_ANSWER);
      if (resp.status !== 200) throw new ProtocolError(`mandate discovery: no metadata at ${safeURL(issuer)} (HTTP ${resp.status})`, resp.status);
      try {
        md = JSON.parse(body.toString('utf8')) as ServerMetadata;
      } catch {
        throw new ProtocolError(`mandate discovery: the metadata at ${safeURL(issuer)} is not JSON`, 200);
      }
    } finally {
      d.done();
    }
    if (!md || typeof md !== 'object') throw new ProtocolError('mandate discovery: the metadata is not a JSON object');
    if (md.issuer !== issuer) {
      throw new ProtocolError(`mandate discovery: metadata names issuer "${excerpt(String(md.issuer))}", not "${excerpt(issuer)}"`);
    }
    if (typeof md.token_endpoint !== 'string' || !md.token_endpoint) throw new ProtocolError('mandate discovery: metadata has no token_endpoint');
    for (const e of [md.token_endpoint, md.revocation_endpoint]) {
      // Credentials go to the server discovered, nowhere else (the Go and
      // Python clients refuse the same).
      if (typeof e === 'string' && e && !sameOrigin(e, issuer)) {
        throw new ProtocolError(`mandate discovery: endpoint ${safeURL(e)} is not on the issuer's origin`);
      }
    }
    if (workload && Array.isArray(md.grant_types_supported) && !md.grant_types_supported.includes(GRANT_JWT_BEARER)) {
      throw new ProtocolError(`mandate discovery: ${safeURL(issuer)} does not accept workload tokens (its grant_types_supported lacks ${GRANT_JWT_BEARER}: no workload_issuers are configured)`);
    }
    return new MandateClient(issuer, md, options);
  }

  /** Wraps a token this client was given by another (a delegation to it) with the client's key, so it can use and exchange it. */
  adopt(value: string): Token {
    return adopt(value, this.dpopKey, this.#now, this.#fetch);
  }

  /**
   * A root token for the client itself (client_credentials): scope and
   * audiences absent mean everything it is registered for. Bound to the
   * client's DPoP key when it has one.
   *
   * A workload client mints with the JWT bearer grant (RFC 7523 §2.1): its
   * platform token, read afresh, is the assertion and the only
   * authentication; the root's sub and holder are the identity the token
   * maps to (a registered client, or a generated name such as
   * k8s/agents/researcher), within that identity's ceiling, and it never
   * outlives the platform token. A refused platform token is an OAuthError
   * invalid_grant.
   */
  mint(opts: { scope?: string | readonly string[]; audience?: string | readonly string[] } = {}): Promise<Token> {
    const form = new URLSearchParams({ grant_type: this.workload ? GRANT_JWT_BEARER : GRANT_CLIENT_CREDENTIALS });
    narrow(form, opts);
    return this.token(form, this.dpopKey, this.dpopKey, this.workload);
  }

  /**
   * Redeems an enterprise IdP's Identity Assertion JWT Authorization Grant
   * (an ID-JAG, typ oauth-id-jag+jwt, made for this client by an IdP in
   * Mandate's id_jag_issuers) through the JWT bearer grant, authenticated as
   * this client: a root on behalf of the IdP's user (sub the user, sub_iss
   * the IdP, holder this client), with scope = the requested ∩ the ID-JAG's
   * ∩ the client's registration and audiences within the ID-JAG's resource.
   * The client's registration must list the jwt_bearer grant. An ID-JAG is
   * single-use: Mandate refuses it a second time (invalid_grant). Bound to
   * the client's DPoP key when it has one; delegate from it as from any root.
   */
  redeemIdJag(idJag: string, opts: { scope?: string | readonly string[]; audience?: string | readonly string[] } = {}): Promise<Token> {
    if (typeof idJag !== 'string' || idJag.trim() === '') {
      return Promise.reject(new MandateError('invalid_request', 'an ID-JAG (the IdP\'s oauth-id-jag+jwt) is required'));
    }
    const form = new URLSearchParams({ grant_type: GRANT_JWT_BEARER, assertion: idJag.trim() });
    narrow(form, opts);
    return this.token(form, this.dpopKey, this.dpopKey);
  }

  /**
   * The client's identity token (client_credentials with audience = the
   * issuer): no scope, Mandate's audience alone, a few minutes. Hand it to
   * whoever delegates to this client, as the actor token naming it; it is
   * useless at every resource server. Bound to the client's key when it has
   * one, and so are the tokens delegated with it.
   */
  identity(): Promise<Token> {
    const form = new URLSearchParams({ grant_type: GRANT_CLIENT_CREDENTIALS, audience: this.issuer });
    return this.token(form, this.dpopKey, this.dpopKey);
  }

  /**
   * Trades subject for a narrower child (RFC 8693): to itself (no actor), or
   * to the agent the actor token names. A bound subject is exchanged with a
   * proof of its key.
   */
  exchange(subject: Token | string, opts: ExchangeOptions = {}): Promise<Token> {
    const subj = typeof subject === 'string' ? this.adopt(subject) : subject;
    const form = new URLSearchParams({
      grant_type: GRANT_TOKEN_EXCHANGE,
      subject_token: subj.value,
      subject_token_type: TOKEN_TYPE_ACCESS_TOKEN,
    });
    const actor = opts.actor === undefined ? '' : typeof opts.actor === 'string' ? opts.actor : opts.actor.value;
    if (actor) {
      form.set('actor_token', actor);
      form.set('actor_token_type', TOKEN_TYPE_JWT);
    }
    narrow(form, opts);
    const proofKey = subj.key ?? this.dpopKey;
    let childKey: DPoPKey | null = null;
    if (!actor || holderOf(actor) === this.#clientId) childKey = proofKey; // the holder stays: the same key
    return this.token(form, proofKey, childKey);
  }

  /**
   * The audience exchange, for a resource server registered with `serves`
   * (an MCP server, say): trades received, a token a caller sent to it (for
   * an audience it serves, verified on the way in), for a token of its own
   * to call the downstream API `audience` on the caller's behalf — instead
   * of forwarding the caller's token. The new token keeps the caller's
   * subject, adds this client to its actor chain and descends from received
   * (revoking it revokes the new one); scope narrows it further (absent:
   * everything received grants within this client's registration). No proof
   * of received's key is needed; with a key (dpopKey) this client proves its
   * own and the new token is bound to it, as it must be when received is
   * bound. An empty audience is refused before any request (Go's
   * ExchangeForDownstream).
   */
  exchangeForDownstream(received: Token | string, audience: string, opts: { scope?: string | readonly string[] } = {}): Promise<Token> {
    if (typeof audience !== 'string' || audience === '') {
      return Promise.reject(new MandateError('invalid_request', 'an audience exchange names the downstream API (audience)'));
    }
    const form = new URLSearchParams({
      grant_type: GRANT_TOKEN_EXCHANGE,
      subject_token: typeof received === 'string' ? received : received.value,
      subject_token_type: TOKEN_TYPE_ACCESS_TOKEN,
      audience,
    });
    narrow(form, { scope: opts.scope }); // the audience is the downstream API alone
    return this.token(form, this.dpopKey, this.dpopKey);
  }

  /**
   * Makes an ephemeral agent "<clientId>/<name>" with a fresh key (EdDSA by
   * default). The name is 1–64 letters, digits and ._-, starting with a
   * letter or digit, not ending with a dot. A workload client given no
   * clientId learns it first (mint or identity).
   */
  spawnAgent(name: string, alg: 'EdDSA' | 'ES256' = 'EdDSA'): Agent {
    if (!AGENT_NAME.test(name) || name.endsWith('.')) {
      throw new MandateError('invalid_request', `agent name "${excerpt(name)}" must be 1-64 letters, digits and ._- (starting with a letter or digit, not ending with a dot)`);
    }
    if (this.#clientId === null) {
      throw new MandateError('invalid_request', 'this workload client does not know its client id yet: mint() or identity() first, or give clientId');
    }
    return new Agent(this.#clientId, name, DPoPKey.generate(alg), this.#now, this.#fetch);
  }

  /** Hands subject on to an ephemeral agent: the child is held by the agent's name and bound to its key, which only the agent has. */
  async delegateToAgent(subject: Token | string, agent: Agent, opts: Omit<ExchangeOptions, 'actor'> = {}): Promise<Token> {
    const actor = agent.actorToken(this.issuer, 120, Math.floor(this.#now() / 1000));
    const t = await this.exchange(subject, { ...opts, actor });
    t.key = agent.key;
    return t;
  }

  /**
   * Revokes a token this client holds, or one delegated from such a token,
   * and with it everything delegated from it (RFC 7009). (A workload client,
   * as in every request but its mint, authenticates with its platform token
   * as the client_assertion.)
   */
  async revoke(token: Token | string): Promise<void> {
    const url = this.metadata.revocation_endpoint;
    if (typeof url !== 'string' || !url) throw new ProtocolError('mandate: the metadata names no revocation_endpoint');
    const form = new URLSearchParams({ token: typeof token === 'string' ? token : token.value });
    await this.post(url, form, null);
  }

  /**
   * Posts a token request, proving proofKey when set; the token is bound to
   * childKey when the server bound it. grant: the workload's JWT bearer
   * grant (its platform token as the assertion, no client authentication).
   * A workload client given no clientId learns its id from the holder of
   * every token issued to itself (every one but a delegation to an actor).
   */
  private async token(form: URLSearchParams, proofKey: DPoPKey | null, childKey: DPoPKey | null, grant = false): Promise<Token> {
    const body = (await this.post(this.metadata.token_endpoint, form, proofKey, grant)) as Record<string, unknown>;
    if (!body || typeof body.access_token !== 'string' || typeof body.token_type !== 'string') {
      throw new ProtocolError('mandate: the token endpoint answered without access_token and token_type', 200);
    }
    if (this.#workloadToken && !this.#clientIdGiven && !form.has('actor_token')) {
      const holder = holderOf(body.access_token);
      if (holder) this.#clientId = holder;
    }
    const expiresIn = typeof body.expires_in === 'number' ? body.expires_in : 0;
    return new Token({
      value: body.access_token,
      type: body.token_type,
      scope: typeof body.scope === 'string' ? body.scope : '',
      expiresAt: new Date(this.#now() + expiresIn * 1000),
      key: childKey,
      now: this.#now,
      fetch: this.#fetch,
    });
  }

  /**
   * Client authentication: Basic, a fresh private_key_jwt assertion in the
   * form, or the workload's platform token read afresh — as the
   * client_assertion, or, for the workload's JWT bearer grant (grant), as
   * the assertion with no client authentication. Returns the platform token
   * sent (to be kept out of errors), else ''.
   */
  private async authenticate(form: URLSearchParams, headers: Record<string, string>, grant: boolean): Promise<string> {
    if (this.#workloadToken) {
      const token = await this.#workloadToken();
      if (this.#clientIdGiven) form.set('client_id', this.#clientId as string);
      if (grant) {
        form.set('assertion', token);
      } else {
        form.set('client_assertion_type', CLIENT_ASSERTION_TYPE);
        form.set('client_assertion', token);
      }
      return token;
    }
    const clientId = this.#clientId as string;
    if (this.#secret !== undefined) {
      headers.authorization = basicAuth(clientId, this.#secret);
      return '';
    }
    const k = this.#privateKey as ClientKey;
    if (!this.#signingKey) {
      this.#signingKey = (async () => {
        const raw = k.key as { kty?: unknown; alg?: unknown };
        if (typeof raw === 'object' && raw !== null && typeof raw.kty === 'string') {
          const alg = k.alg ?? (typeof raw.alg === 'string' ? raw.alg : raw.kty === 'OKP' ? 'EdDSA' : 'ES256');
          return { key: await importJWK(raw as never, alg), alg };
        }
        const ko = k.key as KeyObject;
        const alg = k.alg ?? (ko.asymmetricKeyType === 'ed25519' ? 'EdDSA' : 'ES256');
        return { key: k.key as KeyObject | CryptoKey, alg };
      })();
    }
    const { key, alg } = await this.#signingKey;
    const now = Math.floor(this.#now() / 1000);
    const assertion = await new SignJWT({})
      .setProtectedHeader({ alg, kid: k.kid, typ: 'JWT' })
      .setIssuer(clientId)
      .setSubject(clientId)
      .setAudience(this.issuer)
      .setIssuedAt(now)
      .setExpirationTime(now + 60)
      .setJti(randomBytes(16).toString('base64url'))
      .sign(key);
    form.set('client_id', clientId);
    form.set('client_assertion_type', CLIENT_ASSERTION_TYPE);
    form.set('client_assertion', assertion);
    return '';
  }

  /**
   * POSTs a form to Mandate (a DPoP proof when proofKey is set; one nonce
   * retry); a refusal is an OAuthError. grant: the workload's JWT bearer
   * grant (see authenticate).
   */
  private async post(url: string, form: URLSearchParams, proofKey: DPoPKey | null, grant = false): Promise<unknown> {
    let nonce: string | undefined;
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
      const f = new URLSearchParams(form);
      const platformToken = await this.authenticate(f, headers, grant);
      if (proofKey) headers.dpop = proofKey.proof('POST', url, { nonce, now: Math.floor(this.#now() / 1000) });
      const d = deadline(this.#timeoutMs);
      let resp: Response;
      let raw: Buffer;
      try {
        try {
          resp = await this.#fetch(url, { method: 'POST', headers, body: f.toString(), redirect: 'manual', signal: d.signal });
        } catch (e) {
          throw new ProtocolError(`mandate: ${safeURL(url)}: ${e instanceof Error ? e.message : String(e)}`, undefined, { cause: e });
        }
        raw = await readLimited(resp, MAX_ANSWER);
      } finally {
        d.done();
      }
      if (isRedirect(resp.status)) throw new ProtocolError(`mandate: ${safeURL(url)} answered a redirect (HTTP ${resp.status}), not followed`, resp.status);
      let body: unknown = null;
      if (raw.length > 0) {
        try {
          body = JSON.parse(raw.toString('utf8'));
        } catch {
          body = null;
        }
      }
      if (resp.status === 200) {
        if (raw.length > 0 && body === null) throw new ProtocolError(`mandate: ${safeURL(url)}: the answer is not JSON`, 200);
        return body;
      }
      const e = body as { error?: unknown; error_description?: unknown } | null;
      const serverNonce = resp.headers.get('dpop-nonce');
      if (e && e.error === 'use_dpop_nonce' && serverNonce && proofKey && attempt === 0) {
        nonce = serverNonce;
        continue;
      }
      if (e && typeof e.error === 'string' && e.error) {
        let description = typeof e.error_description === 'string' ? e.error_description : '';
        if (platformToken) description = description.split(platformToken).join('[the workload token]');
        throw new OAuthError(e.error, description, resp.status);
      }
      throw new ProtocolError(`mandate: ${safeURL(url)}: HTTP ${resp.status}`, resp.status);
    }
  }
}

/**
 * The reader of a workload's platform token (options.workloadTokenFile or
 * options.workloadToken), or null: every call reads it afresh and trims it.
 * Its errors name the file, never its contents.
 */
function workloadReader(o: ClientOptions): (() => Promise<string>) | null {
  if (o.workloadTokenFile !== undefined) {
    const path = o.workloadTokenFile;
    const where = `the workload token file ${JSON.stringify(path)}`;
    return async () => checkedToken(await readTokenFile(path, where), where);
  }
  const fn = o.workloadToken;
  if (fn === undefined) return null;
  return async () => {
    let v: unknown;
    try {
      v = await fn();
    } catch (e) {
      throw new MandateError('invalid_client', 'the workloadToken function failed', { cause: e });
    }
    if (typeof v !== 'string') throw new MandateError('invalid_client', 'the workloadToken function returned no string');
    return checkedToken(v, 'the workloadToken function');
  };
}

/** Reads a token file of at most MAX_TOKEN_SIZE bytes; a failure names it (where) and the system's code, never the contents. */
async function readTokenFile(path: string, where: string): Promise<string> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw new MandateError('invalid_client', `cannot read ${where}: ${errnoCode(e)}`, { cause: e });
  }
  try {
    const buf = Buffer.alloc(MAX_TOKEN_SIZE + 1);
    let n = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, null);
      if (bytesRead === 0) break;
      n += bytesRead;
      if (n > MAX_TOKEN_SIZE) throw new MandateError('invalid_client', `${where} holds more than a token's ${MAX_TOKEN_SIZE} bytes`);
    }
    return buf.subarray(0, n).toString('utf8');
  } catch (e) {
    if (e instanceof MandateError) throw e;
    throw new MandateError('invalid_client', `cannot read ${where}: ${errnoCode(e)}`, { cause: e });
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** A file system error's code (ENOENT, EACCES, EISDIR, ...): the message of a read error holds the path at most, but the code is enough. */
function errnoCode(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'read failed';
}

/** The token trimmed of surrounding white space; empty, too large, or not one compact token (printable ASCII) is refused naming where it came from. */
function checkedToken(raw: string, where: string): string {
  const t = raw.trim();
  if (t === '') throw new MandateError('invalid_client', `${where} holds no token`);
  if (Buffer.byteLength(t, 'utf8') > MAX_TOKEN_SIZE) throw new MandateError('invalid_client', `${where} holds more than a token's ${MAX_TOKEN_SIZE} bytes`);
  if (!/^[\x21-\x7e]+$/.test(t)) throw new MandateError('invalid_client', `${where} holds no token: a token is printable ASCII without white space`);
  return t;
}

/** The holder an actor token names (client_id, or an agent+jwt's sub), read without verifying: only to know whether the child stays here. */
function holderOf(actor: string): string {
  try {
    const v = decodeToken(actor);
    return v.holder || '';
  } catch {
    return '';
  }
}

/**
 * Calls a protected API with a token: the same as token.fetch(url, init).
 * (A function for those who keep tokens as values.)
 */
export function dpopFetch(token: Token, url: string | URL, init?: RequestInit): Promise<Response> {
  return token.fetch(url, init);
}
