/**
 * The strict compact-JWS verifier of Mandate tokens (Go's tokens.Verify), in
 * its order: size, compact form, header (base64url, a JSON object), an
 * allowed algorithm, a kid naming a known key, the key's own algorithm, the
 * signature, no crit/b64, the typ, and a payload that is a JSON object.
 * Encoding faults are MalformedTokenError; key and algorithm faults and a bad
 * signature are InvalidSignatureError (UnknownKeyError for an unknown kid, on
 * which a verifier may refresh its keys once).
 */
import { Buffer } from 'node:buffer';
import { b64urlDecode } from './b64.js';
import { MAX_TOKEN_SIZE } from './chain.js';
import { InvalidSignatureError, MalformedTokenError } from './errors.js';
import { Fields, JObj, JSONError, type JVal, checkMembers, goBoolPtr, goString, goStringSlice, parseJSON } from './gojson.js';
import { excerpt } from './jwt.js';
import { type KeyResolver, algFitsKey, isAllowedAlg, verifySignature } from './keys.js';

/** The typ of every Mandate token (RFC 9068 §2.1). */
export const TYPE_ACCESS_TOKEN = 'at+jwt';

/** No key has the token's kid (or it has none): a verifier may refresh its key set once. */
export class UnknownKeyError extends InvalidSignatureError {}

export interface VerifiedJWS {
  payload: Buffer;
  kid: string;
  alg: string;
  typ: string;
}

const headerFields = new Fields(['alg', 'kid', 'typ', 'crit', 'b64'] as const);

interface ProtectedHeader {
  alg: string;
  kid: string;
  typ: string;
  crit: string[] | null;
  b64: boolean | null;
}

/** Decodes a protected header's JSON as Go decodes it into its fixed struct; throws JSONError. */
function parseHeader(text: string): ProtectedHeader {
  const h: ProtectedHeader = { alg: '', kid: '', typ: '', crit: null, b64: null };
  const root = parseJSON(text);
  if (root !== null && !(root instanceof JObj)) throw new JSONError('header is not a JSON object');
  decodeHeader(root, h);
  checkMembers(root); // after decoding, as Go checks after json.Unmarshal
  return h;
}

function decodeHeader(root: JVal, h: ProtectedHeader): void {
  if (root === null) return;
  if (!(root instanceof JObj)) throw new JSONError('header is not a JSON object');
  for (let k = 0; k < root.keys.length; k++) {
    const f = headerFields.lookup(root.keys[k]);
    const v = root.vals[k];
    switch (f) {
      case 'alg': h.alg = goString(v, h.alg); break;
      case 'kid': h.kid = goString(v, h.kid); break;
      case 'typ': h.typ = goString(v, h.typ); break;
      case 'crit': h.crit = goStringSlice(v); break;
      case 'b64': h.b64 = goBoolPtr(v); break;
    }
  }
}

/** Whether two typ values name the same media type ("at+jwt" = "application/AT+JWT"). */
export function sameType(got: string, want: string): boolean {
  const g = got.toLowerCase();
  const w = want.toLowerCase();
  return (g.startsWith('application/') ? g.slice(12) : g) === (w.startsWith('application/') ? w.slice(12) : w);
}

/** Verifies a compact JWS against keys; returns its payload or throws (see the module doc). */
export function verifyJWS(token: string, keys: KeyResolver, wantType: string): VerifiedJWS {
  if (token.length > MAX_TOKEN_SIZE || (token.length * 3 > MAX_TOKEN_SIZE && Buffer.byteLength(token, 'utf8') > MAX_TOKEN_SIZE)) {
    throw new MalformedTokenError(`longer than ${MAX_TOKEN_SIZE} bytes`);
  }
  const dot1 = token.indexOf('.');
  const dot2 = token.lastIndexOf('.');
  if (dot1 <= 0 || dot2 === dot1 || token.indexOf('.', dot1 + 1) !== dot2) {
    throw new MalformedTokenError('not a JWS compact serialization');
  }
  const rawHeader = b64urlDecode(token.slice(0, dot1));
  if (rawHeader === null) throw new MalformedTokenError('header is not base64url');
  let h: ProtectedHeader;
  try {
    h = parseHeader(rawHeader.toString('utf8'));
  } catch {
    throw new MalformedTokenError('header is not a JSON object');
  }
  if (!isAllowedAlg(h.alg)) throw new InvalidSignatureError(`signature algorithm not allowed: "${excerpt(h.alg)}"`);
  if (h.kid === '') throw new UnknownKeyError('unknown signing key: no kid in header');
  const k = keys.resolveKey(h.kid);
  if (!k) throw new UnknownKeyError(`unknown signing key: kid "${excerpt(h.kid)}"`);
  if (k.alg !== '' && k.alg !== h.alg) {
    throw new InvalidSignatureError(`signature algorithm not allowed: key "${excerpt(k.kid)}" is for ${k.alg}, token says ${h.alg}`);
  }
  if (!algFitsKey(h.alg, k)) throw new InvalidSignatureError(`signature algorithm not allowed: ${h.alg} does not fit key "${excerpt(k.kid)}"`);
  const sig = b64urlDecode(token.slice(dot2 + 1));
  if (sig === null) throw new MalformedTokenError('signature is not base64url');
  if (!verifySignature(h.alg, k, token.slice(0, dot2), sig)) throw new InvalidSignatureError('');
  if ((h.crit !== null && h.crit.length > 0) || h.b64 !== null) {
    throw new MalformedTokenError('wrong token type: unsupported critical header or b64 option');
  }
  if (wantType !== '' && !sameType(h.typ, wantType)) {
    throw new MalformedTokenError(`wrong token type: typ "${excerpt(h.typ)}", want "${wantType}"`);
  }
  const payload = b64urlDecode(token.slice(dot1 + 1, dot2));
  if (payload === null) throw new MalformedTokenError('payload is not base64url');
  if (payload.length === 0 || payload[0] !== 0x7b) throw new MalformedTokenError('payload is not a JSON object');
  return { payload, kid: h.kid, alg: h.alg, typ: h.typ };
}
