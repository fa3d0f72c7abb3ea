/**
 * DPoP (RFC 9449): the keys agents prove possession of, the proofs they make,
 * and the checks a verifier applies to them — the same checks, in the same
 * order, as the Go reference (tokens/dpop.go): size and compact form, typ
 * dpop+jwt, no crit, an allowed algorithm, a public asymmetric jwk, the
 * key's thumbprint equal to the token's cnf.jkt (before any signature is
 * checked or jti recorded), the signature, jti/htm/htu/iat, the iat window,
 * ath, the nonce, and last the replay cache.
 *
 * Proofs are signed with node:crypto's one-shot sign over a header encoded
 * once per key: making one costs little more than the signature itself.
 */
import { Buffer } from 'node:buffer';
import {
  type JsonWebKey,
  type KeyObject,
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign as cryptoSign,
} from 'node:crypto';
import { b64urlDecode, b64urlEncode } from './b64.js';
import { DPoPNonceError, InvalidDPoPProofError } from './errors.js';
import { Fields, JObj, type JVal, checkMembers, goString, goStringSlice, parseJSON, stringMembers } from './gojson.js';
import { excerpt, goNumericDate } from './jwt.js';
import { type PublicKeyInfo, algFitsKey, importPublicJWK, isAllowedAlg, thumbprint, usableKey, verifySignature } from './keys.js';
import { sameHTU } from './gourl.js';

/** The typ of a DPoP proof (RFC 9449 §4.2). */
export const TYPE_DPOP = 'dpop+jwt';
/** The typ of an ephemeral agent's actor token (docs/dpop.md). */
export const TYPE_AGENT = 'agent+jwt';
/** A proof is at most 8 KiB. */
export const MAX_PROOF = 8 << 10;

/** The ath of a proof for token: base64url(SHA-256(token)). */
export function accessTokenHash(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

/**
 * A key an agent proves possession of: it signs DPoP proofs (and an
 * ephemeral agent's actor token). Its thumbprint (jkt) is what tokens are
 * bound to. The private key stays in this object unless the caller exports
 * it (exportPrivateJWK).
 */
export class DPoPKey {
  /** EdDSA (Ed25519) or ES256 (P-256). */
  readonly alg: 'EdDSA' | 'ES256';
  /** The RFC 7638 SHA-256 thumbprint of the public key. */
  readonly jkt: string;
  /** The public key as a JWK (what proofs carry in their header). */
  readonly publicJWK: Readonly<JsonWebKey>;
  readonly #priv: KeyObject;
  readonly #headers = new Map<string, string>();

  private constructor(priv: KeyObject) {
    const t = priv.asymmetricKeyType;
    if (t === 'ed25519') this.alg = 'EdDSA';
    else if (t === 'ec' && priv.asymmetricKeyDetails?.namedCurve === 'prime256v1') this.alg = 'ES256';
    else throw new TypeError('DPoP keys are Ed25519 (EdDSA) or ECDSA P-256 (ES256)');
    this.#priv = priv;
    const pub = createPublicKey(priv);
    const j = pub.export({ format: 'jwk' }) as JsonWebKey;
    this.publicJWK = Object.freeze(
      j.kty === 'OKP' ? { kty: 'OKP', crv: j.crv, x: j.x } : { kty: 'EC', crv: j.crv, x: j.x, y: j.y },
    );
    this.jkt = thumbprint(pub);
  }

  /** A fresh key pair (EdDSA by default). */
  static generate(alg: 'EdDSA' | 'ES256' = 'EdDSA'): DPoPKey {
    if (alg === 'EdDSA') return new DPoPKey(generateKeyPairSync('ed25519').privateKey);
    if (alg === 'ES256') return new DPoPKey(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    throw new TypeError(`DPoP key algorithm "${String(alg)}" is not supported (use EdDSA or ES256)`);
  }

  /** Wraps an existing private key (a KeyObject, a private JWK, or PEM text), for an agent that keeps its key. */
  static fromPrivateKey(key: KeyObject | JsonWebKey | string): DPoPKey {
    if (typeof key === 'string') return new DPoPKey(createPrivateKey(key));
    if (isKeyObject(key)) {
      if (key.type !== 'private') throw new TypeError('a DPoP key needs the private key');
      return new DPoPKey(key);
    }
    return new DPoPKey(createPrivateKey({ key: key as never, format: 'jwk' }));
  }

  /** Exports the private key as a JWK: the one way it leaves this object. */
  exportPrivateJWK(): JsonWebKey {
    return this.#priv.export({ format: 'jwk' }) as JsonWebKey;
  }

  /** Signs bytes with the key (raw JWS signature: Ed25519, or P-256 r||s). */
  signBytes(data: Uint8Array): Buffer {
    if (this.alg === 'EdDSA') return cryptoSign(null, data, this.#priv);
    return cryptoSign('sha256', data, { key: this.#priv, dsaEncoding: 'ieee-p1363' });
  }

  /** Signs claims as a compact JWS with typ and the public jwk in the protected header. */
  signJWT(typ: string, claims: Record<string, unknown>): string {
    let h = this.#headers.get(typ);
    if (h === undefined) {
      h = b64urlEncode(JSON.stringify({ typ, alg: this.alg, jwk: this.publicJWK }));
      if (this.#headers.size < 8) this.#headers.set(typ, h);
    }
    const input = h + '.' + b64urlEncode(JSON.stringify(claims));
    return input + '.' + this.signBytes(Buffer.from(input, 'latin1')).toString('base64url');
  }

  /**
   * A DPoP proof for a request (method, URL): for accessToken when calling a
   * resource server (ath), without at the token endpoint; with the server's
   * nonce when it asked for one. now is in seconds (default: the clock).
   */
  proof(method: string, url: string | URL, opts: { accessToken?: string; nonce?: string; now?: number } = {}): string {
    const claims: Record<string, unknown> = {
      jti: randomBytes(16).toString('base64url'),
      htm: method,
      htu: htuOf(url),
      iat: Math.floor(opts.now ?? Date.now() / 1000),
    };
    if (opts.accessToken) claims.ath = accessTokenHash(opts.accessToken);
    if (opts.nonce) claims.nonce = opts.nonce;
    return this.signJWT(TYPE_DPOP, claims);
  }
}

function isKeyObject(k: unknown): k is KeyObject {
  return typeof k === 'object' && k !== null && typeof (k as KeyObject).export === 'function' && typeof (k as KeyObject).type === 'string';
}

const htuCache = new Map<string, string>();

/** The htu of a request URL: without query, fragment and credentials (as fetch sends it). */
export function htuOf(url: string | URL): string {
  const s = typeof url === 'string' ? url : url.href;
  let h = htuCache.get(s);
  if (h === undefined) {
    const u = new URL(s);
    u.search = '';
    u.hash = '';
    u.username = '';
    u.password = '';
    h = u.href;
    if (htuCache.size >= 1024) htuCache.clear();
    htuCache.set(s, h);
  }
  return h;
}

/**
 * Remembers proof jtis until their proofs would be too old anyway. Bounded:
 * when full of live entries it refuses new ones (seen reports true), failing
 * closed rather than forgetting a jti it must remember.
 */
export class ReplayCache {
  private readonly max: number;
  private readonly m = new Map<string, number>();
  private lastPurge = -Infinity;

  /** At most max entries (default 262,144). */
  constructor(max = 0) {
    this.max = max > 0 ? max : 1 << 18;
  }

  /** Records key until expires (seconds) and reports whether it was already there, or the cache is full. */
  seen(key: string, expires: number, now: number): boolean {
    const exp = this.m.get(key);
    if (exp !== undefined && now < exp) return true;
    if (this.m.size >= this.max && now - this.lastPurge >= 1) {
      for (const [k, e] of this.m) if (!(now < e)) this.m.delete(k);
      this.lastPurge = now;
    }
    if (this.m.size >= this.max) return true;
    this.m.set(key, expires);
    return false;
  }

  get size(): number {
    return this.m.size;
  }
}

/** What a proof must match. Times in seconds. */
export interface DPoPCheck {
  /** The request's method (htm). */
  method: string;
  /** The request's URL; query and fragment are ignored (htu). */
  url: string;
  /** When set, the token the proof must be made for (ath). */
  accessToken?: string;
  /** When set, the proof's nonce must be this. */
  nonce?: string;
  /** When set, the only key thumbprint the proof may be made with (the token's cnf.jkt). */
  jkt?: string;
  now: number;
  /** How old a proof may be (default 60 s); 5 s in the future are tolerated. */
  maxAge?: number;
  /** When the replay cache started remembering: older proofs (beyond 5 s of skew) are refused. */
  notBefore?: number;
}

/** A verified proof: the thumbprint of the key that signed it, and its jti. */
export interface DPoPProof {
  jkt: string;
  jti: string;
}

const proofHeaderFields = new Fields(['typ', 'alg', 'jwk', 'crit'] as const);
const proofClaimFields = new Fields(['jti', 'htm', 'htu', 'iat', 'ath', 'nonce'] as const);

/** A proof's jwk, imported, with its thumbprint; bounded memo (a client reuses one key). */
const jwkMemo = new Map<string, { info: PublicKeyInfo; jkt: string } | null>();
const JWK_STRICT = ['kty', 'crv', 'x', 'y', 'n', 'e', 'd', 'kid', 'alg', 'use'] as const;

/** Parses a proof's jwk header: an asymmetric public key, never private or symmetric (Go's publicJWK). */
export function publicJWK(raw: JVal | undefined): { info: PublicKeyInfo; jkt: string } {
  if (raw === undefined) throw new InvalidDPoPProofError('no jwk header');
  const m = stringMembers(raw, JWK_STRICT);
  if (m === null || typeof m.kty !== 'string') throw new InvalidDPoPProofError('jwk header is not a JWK');
  if ((raw as JObj).keys.includes('d') || m.kty === 'oct') throw new InvalidDPoPProofError('jwk header must be a public asymmetric key');
  const memoKey = `${m.kty}|${m.crv ?? ''}|${m.x ?? ''}|${m.y ?? ''}|${m.n ?? ''}|${m.e ?? ''}`;
  let r = jwkMemo.get(memoKey);
  if (r === undefined) {
    const info = importPublicJWK(m);
    r = info && usableKey(info) ? { info, jkt: thumbprint(info.key) } : null;
    if (jwkMemo.size >= 4096) jwkMemo.clear();
    jwkMemo.set(memoKey, r);
  }
  if (r === null) throw new InvalidDPoPProofError('jwk header is not a usable key');
  return r;
}

/**
 * Checks a DPoP proof against c and records its jti in replay (a replayed
 * proof is refused). Throws InvalidDPoPProofError, or DPoPNonceError when
 * only the nonce is missing or stale.
 */
export function verifyDPoP(proof: string, c: DPoPCheck, replay: ReplayCache | null): DPoPProof {
  const maxAge = c.maxAge && c.maxAge > 0 ? c.maxAge : 60;
  const bad = (why: string): never => {
    throw new InvalidDPoPProofError(why);
  };
  if (Buffer.byteLength(proof, 'utf8') > MAX_PROOF || proof.split('.').length !== 3) bad('not a compact JWS');
  const dot1 = proof.indexOf('.');
  const dot2 = proof.lastIndexOf('.');
  const rawHeader = b64urlDecode(proof.slice(0, dot1));
  if (rawHeader === null) bad('header is not base64url');
  let typ = '';
  let alg = '';
  let jwk: JVal | undefined;
  let crit: string[] | null = null;
  try {
    const root = parseJSON((rawHeader as Buffer).toString('utf8'));
    if (root !== null && !(root instanceof JObj)) throw new Error('not an object');
    if (root instanceof JObj) {
      for (let k = 0; k < root.keys.length; k++) {
        const f = proofHeaderFields.lookup(root.keys[k]);
        const v = root.vals[k];
        if (f === 'typ') typ = goString(v, typ);
        else if (f === 'alg') alg = goString(v, alg);
        else if (f === 'jwk') jwk = v;
        else if (f === 'crit') crit = goStringSlice(v);
      }
    }
    checkMembers(root);
  } catch {
    bad('header is not a JSON object');
  }
  if (typ !== TYPE_DPOP) bad(`typ must be ${TYPE_DPOP}`);
  if (crit !== null) bad('crit names extensions this verifier does not understand');
  if (!isAllowedAlg(alg)) bad(`algorithm "${excerpt(alg)}" not allowed`);
  const { info, jkt } = publicJWK(jwk);
  if (c.jkt && jkt !== c.jkt) bad('the proof is not made with the key the token is bound to');
  if (!algFitsKey(alg, info)) bad(`${alg} does not fit the proof's key`);
  const sig = b64urlDecode(proof.slice(dot2 + 1));
  if (sig === null || !verifySignature(alg, info, proof.slice(0, dot2), sig)) bad('signature does not verify');
  const payload = b64urlDecode(proof.slice(dot1 + 1, dot2));
  if (payload === null) bad('payload is not base64url');
  const p = { jti: '', htm: '', htu: '', iat: 0, ath: '', nonce: '' };
  try {
    const root = parseJSON((payload as Buffer).toString('utf8'));
    checkMembers(root);
    if (root !== null && !(root instanceof JObj)) throw new Error('not an object');
    if (root instanceof JObj) {
      for (let k = 0; k < root.keys.length; k++) {
        const f = proofClaimFields.lookup(root.keys[k]);
        const v = root.vals[k];
        if (f === 'iat') p.iat = goNumericDate(v, p.iat);
        else if (f !== undefined) p[f] = goString(v, p[f]);
      }
    }
  } catch {
    bad('claims are malformed');
  }
  if (p.jti === '' || Buffer.byteLength(p.jti, 'utf8') > 256 || p.iat === 0) bad('claims must be a JSON object with jti, htm, htu and iat');
  if (p.htm !== c.method) bad(`htm "${excerpt(p.htm)}" is not the request's method ${excerpt(c.method)}`);
  if (!sameHTU(p.htu, c.url)) bad(`htu "${excerpt(p.htu)}" is not the request's URL`);
  if (p.iat < c.now - maxAge || p.iat > c.now + 5) bad('proof too old or from the future');
  if (c.notBefore !== undefined && p.iat < c.notBefore - 5) {
    bad('proof made before this server started, so it could be a replay its cache never saw: make a new one');
  }
  if (c.accessToken && p.ath !== accessTokenHash(c.accessToken)) bad('ath does not match the access token');
  if (c.nonce && p.nonce !== c.nonce) throw new DPoPNonceError('');
  if (replay !== null && replay.seen(jkt + '/' + p.jti, p.iat + maxAge + 5, c.now)) bad('proof replayed');
  return { jkt, jti: p.jti };
}
