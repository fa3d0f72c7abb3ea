/**
 * Verification keys, as the Go reference (tokens/keys.go, tokens/jws.go):
 * keys come from a JWKS document, never from a token; each key fixes the
 * algorithms it may verify (its published "alg", else its type and curve);
 * "none", HMAC, and any algorithm that does not fit the key select nothing.
 * Signatures are checked with node:crypto's one-shot verify (the hot path of
 * every resource server).
 */
import { Buffer } from 'node:buffer';
import { type KeyObject, constants, createHash, createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { b64urlEncode } from './b64.js';

/** The JWS algorithms a Mandate verifier allows: asymmetric only. */
export const ALLOWED_ALGS = ['EdDSA', 'ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'] as const;
export type Alg = (typeof ALLOWED_ALGS)[number];

export function isAllowedAlg(a: string): a is Alg {
  return (ALLOWED_ALGS as readonly string[]).includes(a);
}

/** A public key ready to verify: its kind fixes the algorithms that fit it. */
export interface PublicKeyInfo {
  /** The kid it is published under ('' for a key from a proof header). */
  kid: string;
  /** The one algorithm the publisher fixed, or '' (then the key's type decides). */
  alg: string;
  key: KeyObject;
  kind: 'ed25519' | 'ec' | 'rsa';
  /** P-256, P-384 or P-521 for EC keys. */
  curve: string;
  /** RSA modulus size. */
  bits: number;
}

/** Finds a verification key by kid. Implementations never fetch a key a token names (jku, x5u, jwk). */
export interface KeyResolver {
  resolveKey(kid: string): PublicKeyInfo | undefined;
}

/** Whether alg can be used with the key's type and curve (Go's algFitsKey). */
export function algFitsKey(alg: string, k: PublicKeyInfo): boolean {
  switch (k.kind) {
    case 'ed25519':
      return alg === 'EdDSA';
    case 'ec':
      return (k.curve === 'P-256' && alg === 'ES256') || (k.curve === 'P-384' && alg === 'ES384') || (k.curve === 'P-521' && alg === 'ES512');
    case 'rsa':
      return /^(RS|PS)(256|384|512)$/.test(alg) && k.bits >= 2048 && k.bits <= 8192;
  }
  return false;
}

/** Whether some allowed algorithm fits the key. */
export function usableKey(k: PublicKeyInfo): boolean {
  return ALLOWED_ALGS.some((a) => algFitsKey(a, k));
}

const CURVES: Record<string, string> = { 'P-256': 'P-256', 'P-384': 'P-384', 'P-521': 'P-521' };

/**
 * Imports a JWK's public part (a private JWK yields its public key) into a
 * PublicKeyInfo, or undefined when it is not an asymmetric signature key this
 * package can use (oct, X25519, an EC point off its curve, malformed).
 */
export function importPublicJWK(jwk: Record<string, unknown>, kid = ''): PublicKeyInfo | undefined {
  const kty = jwk.kty;
  let pub: Record<string, unknown>;
  if (kty === 'OKP') {
    if (jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') return undefined;
    pub = { kty, crv: jwk.crv, x: jwk.x };
  } else if (kty === 'EC') {
    if (typeof jwk.crv !== 'string' || !CURVES[jwk.crv] || typeof jwk.x !== 'string' || typeof jwk.y !== 'string') return undefined;
    pub = { kty, crv: jwk.crv, x: jwk.x, y: jwk.y };
  } else if (kty === 'RSA') {
    if (typeof jwk.n !== 'string' || typeof jwk.e !== 'string') return undefined;
    pub = { kty, n: jwk.n, e: jwk.e };
  } else {
    return undefined;
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pub as never, format: 'jwk' });
  } catch {
    return undefined;
  }
  return describe(key, kid, '');
}

/** Describes a node public KeyObject; undefined for a type this package does not verify with. */
export function describe(key: KeyObject, kid: string, alg: string): PublicKeyInfo | undefined {
  const t = key.asymmetricKeyType;
  if (t === 'ed25519') return { kid, alg, key, kind: 'ed25519', curve: '', bits: 0 };
  if (t === 'ec') {
    const named = key.asymmetricKeyDetails?.namedCurve;
    const curve = named === 'prime256v1' ? 'P-256' : named === 'secp384r1' ? 'P-384' : named === 'secp521r1' ? 'P-521' : '';
    if (!curve) return undefined;
    return { kid, alg, key, kind: 'ec', curve, bits: 0 };
  }
  if (t === 'rsa') return { kid, alg, key, kind: 'rsa', curve: '', bits: key.asymmetricKeyDetails?.modulusLength ?? 0 };
  return undefined;
}

/** The RFC 7638 SHA-256 thumbprint of a public key, base64url (its canonical JWK members). */
export function thumbprint(key: KeyObject): string {
  const j = key.export({ format: 'jwk' }) as Record<string, string>;
  let canon: string;
  if (j.kty === 'OKP') canon = `{"crv":"${j.crv}","kty":"OKP","x":"${j.x}"}`;
  else if (j.kty === 'EC') canon = `{"crv":"${j.crv}","kty":"EC","x":"${j.x}","y":"${j.y}"}`;
  else if (j.kty === 'RSA') canon = `{"e":"${j.e}","kty":"RSA","n":"${j.n}"}`;
  else throw new TypeError(`thumbprint: unsupported key type ${String(j.kty)}`);
  return b64urlEncode(createHash('sha256').update(canon).digest());
}

/** Verifies a JWS signature with a key the algorithm fits; false on any failure (never throws). */
export function verifySignature(alg: string, k: PublicKeyInfo, signingInput: string, sig: Uint8Array): boolean {
  try {
    const data = Buffer.from(signingInput, 'utf8');
    switch (alg) {
      case 'EdDSA':
        if (sig.length !== 64) return false;
        return cryptoVerify(null, data, k.key, sig);
      case 'ES256':
      case 'ES384':
      case 'ES512': {
        const size = alg === 'ES256' ? 32 : alg === 'ES384' ? 48 : 66;
        if (sig.length !== 2 * size) return false;
        return cryptoVerify(hashOf(alg), data, { key: k.key, dsaEncoding: 'ieee-p1363' }, sig);
      }
      case 'RS256':
      case 'RS384':
      case 'RS512':
        return cryptoVerify(hashOf(alg), data, { key: k.key, padding: constants.RSA_PKCS1_PADDING }, sig);
      case 'PS256':
      case 'PS384':
      case 'PS512':
        return cryptoVerify(hashOf(alg), data, { key: k.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, sig);
    }
  } catch {
    return false;
  }
  return false;
}

function hashOf(alg: string): string {
  return alg.endsWith('256') ? 'sha256' : alg.endsWith('384') ? 'sha384' : 'sha512';
}

/**
 * A set of keys from a JWKS document (Go's tokens.SetResolver): keys without
 * a kid, of use "enc", symmetric, malformed or too weak, or whose "alg" does
 * not fit them are skipped; a set with none left is an error.
 */
export class KeySet implements KeyResolver {
  private readonly keys: Map<string, PublicKeyInfo>;

  private constructor(keys: Map<string, PublicKeyInfo>) {
    this.keys = keys;
  }

  /** Parses a JWKS document (an object or its JSON text). Throws TypeError when no usable key is left. */
  static fromJWKS(jwks: unknown): KeySet {
    let doc = jwks;
    if (typeof doc === 'string') doc = JSON.parse(doc);
    const list = doc && typeof doc === 'object' && Array.isArray((doc as { keys?: unknown }).keys) ? (doc as { keys: unknown[] }).keys : null;
    if (!list) throw new TypeError('parse JWKS: not a JWK set (an object with "keys")');
    const keys = new Map<string, PublicKeyInfo>();
    for (const raw of list) {
      if (!raw || typeof raw !== 'object') continue;
      const jwk = raw as Record<string, unknown>;
      const kid = typeof jwk.kid === 'string' ? jwk.kid : '';
      if (kid === '' || jwk.use === 'enc' || jwk.kty === 'oct') continue;
      const k = importPublicJWK(jwk, kid);
      if (!k) continue;
      const alg = typeof jwk.alg === 'string' ? jwk.alg : '';
      if (alg !== '') {
        if (!isAllowedAlg(alg) || !algFitsKey(alg, k)) continue;
        k.alg = alg;
      } else if (!usableKey(k)) continue;
      keys.set(kid, k);
    }
    if (keys.size === 0) throw new TypeError('JWKS has no usable signature key');
    return new KeySet(keys);
  }

  resolveKey(kid: string): PublicKeyInfo | undefined {
    return this.keys.get(kid);
  }

  has(kid: string): boolean {
    return this.keys.has(kid);
  }

  /** The kids of the set. */
  kids(): string[] {
    return [...this.keys.keys()];
  }

  /** The set less the keys of kids (keys withdrawn as compromised). */
  without(kids: ReadonlySet<string>): KeySet {
    const m = new Map<string, PublicKeyInfo>();
    for (const [kid, k] of this.keys) if (!kids.has(kid)) m.set(kid, k);
    return new KeySet(m);
  }

  /** Whether some key of this set is absent from next. */
  withdrawn(next: KeySet): boolean {
    for (const kid of this.keys.keys()) if (!next.has(kid)) return true;
    return false;
  }
}
