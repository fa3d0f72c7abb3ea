/**
 * The payload of Mandate's tokens, read exactly as the Go reference
 * (tokens/jwt) reads it: the claims, the RFC 8693 actor chain, the lineage,
 * the RFC 7800 confirmation, and the one NumericDate — a JSON number within
 * ±2^53 seconds, a fraction read as its whole second (rounded down), zero or
 * null meaning absent, anything else malformed.
 */
import { Buffer } from 'node:buffer';
import { b64urlDecode } from './b64.js';
import { Fields, JNum, JObj, JSONError, type JVal, checkMembers, goString, goStringSlice, parseJSON } from './gojson.js';

/** 2^53: the largest magnitude a NumericDate may have. */
export const MAX_NUMERIC_DATE = 2 ** 53;

const MAX_BIG = 2n ** 53n;

/**
 * Reads a JSON number's text as a NumericDate (whole seconds), exactly as
 * Go's jwt.NumericDate does; throws JSONError when it is beyond ±2^53. The
 * cost is linear in the text, however long (a feed page may be 16 MiB).
 */
export function numericDateFromText(s: string): number {
  // Plain integers: the common case.
  if (/^-?(0|[1-9][0-9]*)$/.test(s)) {
    if (s.length <= 15) {
      const v = Number(s);
      if (v > MAX_NUMERIC_DATE || v < -MAX_NUMERIC_DATE) throw new JSONError('NumericDate is beyond ±2^53');
      return v === 0 ? 0 : v; // no -0
    }
    // Without leading zeros, 17 digits or more are at least 10^16 > 2^53.
    if (s.length - (s.startsWith('-') ? 1 : 0) > 16) throw new JSONError('NumericDate is beyond ±2^53');
    const b = BigInt(s);
    if (b > MAX_BIG || b < -MAX_BIG) throw new JSONError('NumericDate is beyond ±2^53');
    return Number(b);
  }
  return floorNumber(s);
}

/** The largest decimal exponent Go's big.Rat.SetString takes (its "excessively large exponents"). */
const MAX_RAT_EXP5 = 1_000_000;

/**
 * The floor of a JSON number with a fraction or an exponent, exactly, with
 * Go's floorNumber's verdicts: all zeros is 0; an exponent beyond 400 with a
 * shorter mantissa is out of range; one below -20000 gives 0 (or -1 when
 * negative) whatever the mantissa; a number whose exponent, less its
 * fraction's digits, is beyond ±10^6 is refused (big.Rat.SetString's
 * limit); else the exact value is compared with 2^53 and floored. Computed
 * on the digits (never a BigInt of the whole text), so linear in their length.
 */
function floorNumber(s: string): number {
  let mant = s;
  let exp = 0n;
  const ei = s.search(/[eE]/);
  if (ei >= 0) {
    mant = s.slice(0, ei);
    let es = s.slice(ei + 1);
    if (es.startsWith('+')) es = es.slice(1);
    // JSON grammar: digits, optional sign. Go reads an exponent too long
    // for an int64 as the int64 extreme of its sign.
    exp = es.length > 30 ? (es.startsWith('-') ? -(2n ** 63n) : 2n ** 63n - 1n) : BigInt(es);
    const maxI64 = 2n ** 63n - 1n;
    if (exp > maxI64) exp = maxI64;
    if (exp < -maxI64 - 1n) exp = -maxI64 - 1n;
  }
  const neg = mant.startsWith('-');
  if (!/[1-9]/.test(mant)) return 0; // all zeros (Go: nothing left once "-0." is trimmed)
  if (exp > 400n) {
    if (BigInt(mant.length) < exp) throw new JSONError('NumericDate is beyond ±2^53');
  } else if (exp < -20000n) {
    return neg ? -1 : 0;
  }
  // Here -20000 <= exp <= mant.length: a safe integer.
  const body = neg ? mant.slice(1) : mant;
  const dot = body.indexOf('.');
  const intPart = dot >= 0 ? body.slice(0, dot) : body;
  const frac = dot >= 0 ? body.slice(dot + 1) : '';
  const exp10 = Number(exp) - frac.length; // the value is digits × 10^exp10
  if (exp10 > MAX_RAT_EXP5 || exp10 < -MAX_RAT_EXP5) throw new JSONError('a NumericDate must be a number');
  let lead = 0;
  const all = intPart + frac;
  while (lead < all.length && all.charCodeAt(lead) === 0x30) lead++;
  const digits = all.slice(lead); // non-empty: the mantissa is not zero
  const whole = digits.length + exp10; // how many digits the integer part has
  if (whole > 16) throw new JSONError('NumericDate is beyond ±2^53'); // at least 10^16
  let ip = 0n;
  let rest = false; // a nonzero fraction is left
  if (whole <= 0) rest = true;
  else if (whole <= digits.length) {
    ip = BigInt(digits.slice(0, whole));
    rest = /[1-9]/.test(digits.slice(whole));
  } else ip = BigInt(digits) * 10n ** BigInt(whole - digits.length);
  if (ip > MAX_BIG || (ip === MAX_BIG && rest)) throw new JSONError('NumericDate is beyond ±2^53');
  const q = neg ? -ip - (rest ? 1n : 0n) : ip;
  const v = Number(q);
  return v === 0 ? 0 : v;
}

/** Go's NumericDate.UnmarshalJSON: null keeps prev; a number within ±2^53; anything else is an error. */
export function goNumericDate(v: JVal, prev: number): number {
  if (v === null) return prev;
  if (!(v instanceof JNum)) throw new JSONError('a NumericDate must be a number');
  return numericDateFromText(v.raw);
}

/** Go's Audience.UnmarshalJSON: a string, an array of strings, or null. */
export function goAudience(v: JVal): string[] | null {
  if (typeof v === 'string') return [v];
  if (v === null) return null;
  try {
    return goStringSlice(v);
  } catch {
    throw new JSONError('"aud" must be a string or an array of strings');
  }
}

/** One link of the RFC 8693 §4.1 actor chain: `sub` acts here, `act` the link before (older). */
export interface Actor {
  sub: string;
  iss?: string;
  act?: Actor | null;
}

/** The RFC 7800 "cnf" claim; jkt is the RFC 9449 JWK thumbprint of the key the token is bound to. */
export interface Confirmation {
  jkt: string;
}

/** The payload of a Mandate token, as decoded (0 for an absent date, null for an absent list or object). */
export interface Claims {
  iss: string;
  sub: string;
  sub_iss: string;
  aud: string[] | null;
  client_id: string;
  scope: string;
  iat: number;
  nbf: number;
  exp: number;
  jti: string;
  act: Actor | null;
  lineage: string[] | null;
  cnf: Confirmation | null;
  may_act: Actor | null;
}

const claimFields = new Fields([
  'iss', 'sub', 'sub_iss', 'aud', 'client_id', 'scope', 'iat', 'nbf', 'exp', 'jti', 'act', 'lineage', 'cnf', 'may_act',
] as const);
const actorFields = new Fields(['sub', 'iss', 'act'] as const);
const cnfFields = new Fields(['jkt'] as const);

/**
 * Decodes an Actor member into target (Go decodes a struct pointer that is
 * already set in place, so a repeated "act" merges into the earlier one).
 * Iterative: a crafted chain thousands deep costs no stack.
 */
function decodeActorInto(target: Actor, obj: JObj): void {
  const work: Array<{ obj: JObj; target: Actor; i: number }> = [{ obj, target, i: 0 }];
  while (work.length > 0) {
    const w = work[work.length - 1];
    if (w.i >= w.obj.keys.length) {
      work.pop();
      continue;
    }
    const k = w.i++;
    const f = actorFields.lookup(w.obj.keys[k]);
    const v = w.obj.vals[k];
    if (f === 'sub') w.target.sub = goString(v, w.target.sub);
    else if (f === 'iss') w.target.iss = goString(v, w.target.iss ?? '');
    else if (f === 'act') {
      if (v === null) w.target.act = null;
      else if (v instanceof JObj) {
        if (!w.target.act) w.target.act = { sub: '' };
        work.push({ obj: v, target: w.target.act, i: 0 });
      } else throw new JSONError('act must be an object');
    }
  }
}

function decodeActor(v: JVal, prev: Actor | null): Actor | null {
  if (v === null) return null;
  if (!(v instanceof JObj)) throw new JSONError('an actor must be an object');
  const a = prev ?? { sub: '' };
  decodeActorInto(a, v);
  return a;
}

function decodeCnf(v: JVal, prev: Confirmation | null): Confirmation | null {
  if (v === null) return null;
  if (!(v instanceof JObj)) throw new JSONError('cnf must be an object');
  const c = prev ?? { jkt: '' };
  for (let k = 0; k < v.keys.length; k++) {
    if (cnfFields.lookup(v.keys[k]) === 'jkt') c.jkt = goString(v.vals[k], c.jkt);
  }
  return c;
}

/**
 * A []string field as Go's decoder fills it when the member comes more than
 * once: the second array is decoded into the first one's backing array, so
 * a null element keeps what that array held at its index (within its
 * capacity, which grows as Go's append does).
 */
class GoStringSlice {
  private backing: string[] = [];
  private len = 0;

  decode(v: JVal): string[] | null {
    if (v === null) {
      this.backing = [];
      this.len = 0;
      return null;
    }
    if (!Array.isArray(v)) throw new JSONError('expected an array of strings');
    let i = 0;
    for (; i < v.length; i++) {
      if (i >= this.backing.length) {
        const cap = nextCap(i + 1, this.backing.length);
        const grown = this.backing.slice(0, i);
        while (grown.length < cap) grown.push('');
        this.backing = grown;
      }
      if (i >= this.len) this.len = i + 1;
      const e = v[i];
      if (typeof e === 'string') this.backing[i] = e;
      else if (e !== null) throw new JSONError('expected an array of strings');
    }
    if (i < this.len) this.len = i;
    if (i === 0) {
      this.backing = [];
      this.len = 0;
    }
    return this.backing.slice(0, this.len);
  }
}

/** Go's slice growth for 16-byte elements (runtime.nextslicecap, rounded up to a size class). */
function nextCap(newLen: number, oldCap: number): number {
  const double = oldCap + oldCap;
  if (newLen > double) return newLen <= 1 ? 1 : 2 ** Math.ceil(Math.log2(newLen));
  if (oldCap < 256) return double;
  let c = oldCap;
  while (c < newLen) c += (c + 3 * 256) >> 2;
  return c;
}

/** Decodes a payload's JSON text into Claims (Go's jwt.Parse); throws JSONError. */
export function parseClaimsJSON(text: string): Claims {
  const root = parseJSON(text);
  checkMembers(root);
  if (root === null) return emptyClaims(); // Go: null into a struct is a no-op
  if (!(root instanceof JObj)) throw new JSONError('claims must be a JSON object');
  const c = emptyClaims();
  const lineage = new GoStringSlice();
  for (let k = 0; k < root.keys.length; k++) {
    const f = claimFields.lookup(root.keys[k]);
    if (f === undefined) continue;
    const v = root.vals[k];
    switch (f) {
      case 'iss': c.iss = goString(v, c.iss); break;
      case 'sub': c.sub = goString(v, c.sub); break;
      case 'sub_iss': c.sub_iss = goString(v, c.sub_iss); break;
      case 'client_id': c.client_id = goString(v, c.client_id); break;
      case 'scope': c.scope = goString(v, c.scope); break;
      case 'jti': c.jti = goString(v, c.jti); break;
      case 'aud': c.aud = goAudience(v); break;
      case 'iat': c.iat = goNumericDate(v, c.iat); break;
      case 'nbf': c.nbf = goNumericDate(v, c.nbf); break;
      case 'exp': c.exp = goNumericDate(v, c.exp); break;
      case 'lineage': c.lineage = lineage.decode(v); break;
      case 'act': c.act = decodeActor(v, c.act); break;
      case 'may_act': c.may_act = decodeActor(v, c.may_act); break;
      case 'cnf': c.cnf = decodeCnf(v, c.cnf); break;
    }
  }
  return c;
}

function emptyClaims(): Claims {
  return {
    iss: '', sub: '', sub_iss: '', aud: null, client_id: '', scope: '', iat: 0, nbf: 0, exp: 0, jti: '',
    act: null, lineage: null, cnf: null, may_act: null,
  };
}

/** The actor subjects newest first: the current actor, then the earlier ones. */
export function actorPath(a: Actor | null | undefined): string[] {
  const out: string[] = [];
  for (let x = a; x; x = x.act) out.push(x.sub);
  return out;
}

/**
 * Makes untrusted text safe for an error description or a log line: at most
 * 64 bytes, control and non-ASCII characters as '?' (Go's jwt.Excerpt).
 */
export function excerpt(s: string): string {
  const b = Buffer.from(s, 'utf8');
  const cut = b.length > 64;
  const bytes = cut ? b.subarray(0, 64) : b;
  let out = '';
  // Go maps runes of the cut UTF-8 (a cut rune reads as U+FFFD, one '?').
  const text = bytes.toString('utf8');
  for (const ch of text) {
    const c = ch.codePointAt(0) as number;
    out += c < 0x20 || c > 0x7e ? '?' : ch;
  }
  return cut ? out + '…' : out;
}

/** A decoded view of a token, read WITHOUT verifying it: for display and a holder's bookkeeping. */
export interface TokenView {
  /** The token's own id. */
  jti: string;
  /** On whose behalf (sub) and who vouches for that name (sub_iss). */
  sub: string;
  subIss: string;
  /** The holder (client_id). */
  holder: string;
  /** The actor chain, current holder first. */
  actors: string[];
  /** The ancestors' jtis, root first. */
  lineage: string[];
  /** The task's root jti. */
  root: string;
  depth: number;
  scopes: string[];
  audiences: string[];
  issuer: string;
  issuedAt: Date | null;
  expiresAt: Date | null;
  /** The thumbprint of the key a DPoP-bound token is bound to ('' for bearer). */
  jkt: string;
  bound: boolean;
  /** The raw claims. */
  claims: Claims;
}

/**
 * Decodes a compact token's claims WITHOUT checking its signature (Go's
 * jwt.Unverified): never decide anything on them, a Verifier does. Throws
 * JSONError when the token cannot be decoded.
 */
export function unverifiedClaims(token: string): Claims {
  const d1 = token.indexOf('.');
  const d2 = d1 < 0 ? -1 : token.indexOf('.', d1 + 1);
  if (d1 < 0 || d2 < 0) throw new JSONError('not a compact JWS');
  const raw = b64urlDecode(token.slice(d1 + 1, d2));
  if (raw === null) throw new JSONError('payload is not base64url');
  return parseClaimsJSON(raw.toString('utf8'));
}
