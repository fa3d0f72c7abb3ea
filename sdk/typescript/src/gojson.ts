/**
 * JSON read the way the Go reference (encoding/json) reads it, so this SDK
 * accepts and refuses exactly the payloads the Go verifier does:
 *
 * - RFC 8259 syntax, nesting at most 10,000 deep (Go's limit), parsed
 *   iteratively (no recursion, so no stack overflow on crafted input);
 * - numbers kept as their source text (a NumericDate is read exactly, never
 *   through a float: 2^53+1 is out of range, not rounded into it);
 * - object members kept in order, duplicates included, so a struct decoder
 *   can apply Go's rules: a later member overwrites an earlier one, a key
 *   matches a field exactly or else case-insensitively (Go folds "EXP",
 *   "Exp" and even "ſub" onto the field), null leaves a string untouched;
 * - string escapes as Go unquotes them (a lone surrogate becomes U+FFFD).
 *
 * Errors are JSONError; callers turn them into their own typed errors.
 */

export class JSONError extends Error {}

/** A JSON number, as written. */
export class JNum {
  constructor(readonly raw: string) {}
}

/** A JSON object: its members in order, duplicates kept. */
export class JObj {
  readonly keys: string[] = [];
  readonly vals: JVal[] = [];
}

export type JVal = JObj | JVal[] | JNum | string | boolean | null;

const MAX_DEPTH = 10000;

/** Whether c is white space JSON allows between tokens (RFC 8259 §2): space, tab, LF, CR — nothing more. */
export function isWS(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

function hex4(s: string, i: number): number {
  if (i + 4 > s.length) return -1;
  let v = 0;
  for (let k = 0; k < 4; k++) {
    const c = s.charCodeAt(i + k);
    let d: number;
    if (c >= 0x30 && c <= 0x39) d = c - 0x30;
    else if (c >= 0x41 && c <= 0x46) d = c - 0x37;
    else if (c >= 0x61 && c <= 0x66) d = c - 0x57;
    else return -1;
    v = v * 16 + d;
  }
  return v;
}

type Frame = { obj: JObj; key: string | null } | { arr: JVal[] };

/** Parses a whole JSON text (surrounding whitespace allowed); throws JSONError. */
export function parseJSON(s: string): JVal {
  const n = s.length;
  let i = 0;
  const stack: Frame[] = [];

  const skip = (): void => {
    while (i < n && isWS(s.charCodeAt(i))) i++;
  };

  const str = (): string => {
    // s[i] is the opening quote
    i++;
    const start = i;
    // fast path: no escapes
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c === 0x22) {
        const out = s.slice(start, i);
        i++;
        return out;
      }
      if (c === 0x5c) break;
      if (c < 0x20) throw new JSONError('control character in string');
      i++;
    }
    let out = s.slice(start, i);
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return out;
      }
      if (c < 0x20) throw new JSONError('control character in string');
      if (c !== 0x5c) {
        out += s[i];
        i++;
        continue;
      }
      i++;
      if (i >= n) break;
      const e = s.charCodeAt(i);
      i++;
      switch (e) {
        case 0x22: out += '"'; break;
        case 0x5c: out += '\\'; break;
        case 0x2f: out += '/'; break;
        case 0x62: out += '\b'; break;
        case 0x66: out += '\f'; break;
        case 0x6e: out += '\n'; break;
        case 0x72: out += '\r'; break;
        case 0x74: out += '\t'; break;
        case 0x75: {
          const u = hex4(s, i);
          if (u < 0) throw new JSONError('bad \\u escape');
          i += 4;
          if (u >= 0xd800 && u < 0xe000) {
            // A surrogate: a valid high+low pair is one character; anything else is U+FFFD.
            if (u < 0xdc00 && s.charCodeAt(i) === 0x5c && s.charCodeAt(i + 1) === 0x75) {
              const lo = hex4(s, i + 2);
              if (lo >= 0xdc00 && lo < 0xe000) {
                out += String.fromCharCode(u, lo);
                i += 6;
                break;
              }
            }
            out += '\ufffd';
            break;
          }
          out += String.fromCharCode(u);
          break;
        }
        default:
          throw new JSONError('bad escape');
      }
    }
    throw new JSONError('unterminated string');
  };

  const num = (): JNum => {
    const start = i;
    if (s.charCodeAt(i) === 0x2d) i++;
    let c = s.charCodeAt(i);
    if (c === 0x30) {
      i++;
    } else if (c >= 0x31 && c <= 0x39) {
      while (i < n && (c = s.charCodeAt(i)) >= 0x30 && c <= 0x39) i++;
    } else {
      throw new JSONError('bad number');
    }
    if (s.charCodeAt(i) === 0x2e) {
      i++;
      const f = i;
      while (i < n && (c = s.charCodeAt(i)) >= 0x30 && c <= 0x39) i++;
      if (i === f) throw new JSONError('bad number');
    }
    c = s.charCodeAt(i);
    if (c === 0x65 || c === 0x45) {
      i++;
      c = s.charCodeAt(i);
      if (c === 0x2b || c === 0x2d) i++;
      const f = i;
      while (i < n && (c = s.charCodeAt(i)) >= 0x30 && c <= 0x39) i++;
      if (i === f) throw new JSONError('bad number');
    }
    return new JNum(s.slice(start, i));
  };

  const lit = (word: string, v: boolean | null): boolean | null => {
    if (s.startsWith(word, i)) {
      i += word.length;
      return v;
    }
    throw new JSONError('invalid literal');
  };

  let result: JVal = null;
  let done = false;

  // Attach a completed value to the container on top (or finish).
  const attach = (v: JVal): void => {
    const top = stack[stack.length - 1];
    if (top === undefined) {
      result = v;
      done = true;
      return;
    }
    if ('arr' in top) top.arr.push(v);
    else {
      top.obj.keys.push(top.key as string);
      top.obj.vals.push(v);
      top.key = null;
    }
  };

  // expectValue: parse one value start; containers push frames.
  for (;;) {
    skip();
    if (i >= n) throw new JSONError('unexpected end of input');
    const c = s.charCodeAt(i);
    let v: JVal | undefined;
    if (c === 0x7b) {
      i++;
      if (stack.length >= MAX_DEPTH) throw new JSONError('exceeded max depth');
      const obj = new JObj();
      skip();
      if (s.charCodeAt(i) === 0x7d) {
        i++;
        v = obj;
      } else {
        if (s.charCodeAt(i) !== 0x22) throw new JSONError('expected a member name');
        const key = str();
        skip();
        if (s.charCodeAt(i) !== 0x3a) throw new JSONError("expected ':'");
        i++;
        stack.push({ obj, key });
        continue;
      }
    } else if (c === 0x5b) {
      i++;
      if (stack.length >= MAX_DEPTH) throw new JSONError('exceeded max depth');
      skip();
      if (s.charCodeAt(i) === 0x5d) {
        i++;
        v = [];
      } else {
        stack.push({ arr: [] });
        continue;
      }
    } else if (c === 0x22) v = str();
    else if (c === 0x74) v = lit('true', true);
    else if (c === 0x66) v = lit('false', false);
    else if (c === 0x6e) v = lit('null', null);
    else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) v = num();
    else throw new JSONError('invalid character');

    // Completed a value: attach it, then close as many containers as end here.
    let val: JVal = v;
    for (;;) {
      attach(val);
      if (done) {
        skip();
        if (i !== n) throw new JSONError('invalid character after top-level value');
        return result;
      }
      skip();
      const top = stack[stack.length - 1] as Frame;
      const d = s.charCodeAt(i);
      if (d === 0x2c) {
        i++;
        if (!('arr' in top)) {
          skip();
          if (s.charCodeAt(i) !== 0x22) throw new JSONError('expected a member name');
          top.key = str();
          skip();
          if (s.charCodeAt(i) !== 0x3a) throw new JSONError("expected ':'");
          i++;
        }
        break; // next value
      }
      if ('arr' in top ? d === 0x5d : d === 0x7d) {
        i++;
        stack.pop();
        val = 'arr' in top ? top.arr : top.obj;
        continue;
      }
      throw new JSONError('expected , or a closing bracket');
    }
  }
}

/**
 * Go's folding of a member name (encoding/json foldName): ASCII letters
 * upper-cased; any other character becomes the smallest rune of its simple
 * case-folding orbit. Field names here are ASCII, so only the non-ASCII
 * characters whose orbit holds an ASCII letter matter: 'ſ' (U+017F, with
 * s and S) → S and 'K' (U+212A, the Kelvin sign, with k and K) → K. Any other
 * non-ASCII character can match no field.
 */
export function foldName(key: string): string {
  let out = '';
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c < 0x80) {
      out += c >= 0x61 && c <= 0x7a ? String.fromCharCode(c - 0x20) : key[i];
      continue;
    }
    if (c === 0x017f) out += 'S';
    else if (c === 0x212a) out += 'K';
    else out += '\u0000'; // matches no ASCII field name
  }
  return out;
}

/**
 * The JSON member names Mandate reads from a JWT's header or payload (its own
 * tokens, DPoP proofs, agent tokens, client assertions, external tokens).
 */
export const MEMBER_NAMES = [
  'act', 'alg', 'ath', 'aud', 'b64', 'client_id', 'cnf', 'crit', 'exp', 'htm', 'htu', 'iat', 'iss', 'jkt',
  'jti', 'jwk', 'kid', 'lineage', 'may_act', 'nbf', 'nonce', 'scope', 'sub', 'sub_iss', 'typ',
] as const;
const FOLDED_MEMBERS = new Map<string, string>(MEMBER_NAMES.map((n) => [foldName(n), n]));

/**
 * Refuses a JWT header or payload that Go's encoding/json would read
 * differently from a strict decoder (Go's jwt.CheckMembers): in any object, a
 * member given twice, or a member named like one Mandate reads but spelt
 * otherwise ("EXP", "ſub"). Every Mandate verifier refuses such a document as
 * malformed, so no token means one thing to one language and another to
 * the next. Throws JSONError.
 */
export function checkMembers(root: JVal): void {
  const work: JVal[] = [root];
  while (work.length > 0) {
    const v = work.pop() as JVal;
    if (Array.isArray(v)) {
      for (const e of v) if (e !== null && typeof e === 'object') work.push(e);
      continue;
    }
    if (!(v instanceof JObj)) continue;
    const keys = v.keys;
    const seen = keys.length > 16 ? new Set<string>() : null;
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i];
      if (seen) {
        if (seen.has(k)) throw new JSONError('ambiguous JSON member: a member appears twice');
        seen.add(k);
      } else {
        for (let j = 0; j < i; j++) if (keys[j] === k) throw new JSONError('ambiguous JSON member: a member appears twice');
      }
      const named = FOLDED_MEMBERS.get(foldName(k));
      if (named !== undefined && named !== k) throw new JSONError(`ambiguous JSON member: a member is named like "${named}" but spelt otherwise`);
      const x = v.vals[i];
      if (x !== null && typeof x === 'object') work.push(x);
    }
  }
}

/** The fields of a Go struct: member name → field, exact first, then folded. */
export class Fields<F extends string> {
  private readonly exact = new Map<string, F>();
  private readonly folded = new Map<string, F>();
  constructor(names: readonly F[]) {
    for (const n of names) {
      this.exact.set(n, n);
      if (!this.folded.has(foldName(n))) this.folded.set(foldName(n), n);
    }
  }
  /** The field a member name selects, as Go's decoder picks it. */
  lookup(key: string): F | undefined {
    const f = this.exact.get(key);
    if (f !== undefined) return f;
    // Cheap rejection: a name that cannot fold onto any field.
    return this.folded.get(foldName(key));
  }
}

/** Go's decoding of a JSON value into a string field: null leaves it; anything but a string is a type error. */
export function goString(v: JVal, prev: string): string {
  if (v === null) return prev;
  if (typeof v !== 'string') throw new JSONError('expected a string');
  return v;
}

/** Go's decoding into []string: null → null; an array of strings (a null element reads as ""). */
export function goStringSlice(v: JVal): string[] | null {
  if (v === null) return null;
  if (!Array.isArray(v)) throw new JSONError('expected an array of strings');
  const out: string[] = new Array(v.length);
  for (let k = 0; k < v.length; k++) {
    const e = v[k];
    if (e === null) out[k] = '';
    else if (typeof e === 'string') out[k] = e;
    else throw new JSONError('expected an array of strings');
  }
  return out;
}

/** Go's decoding into *bool: null → null; true/false; anything else is a type error. */
export function goBoolPtr(v: JVal): boolean | null {
  if (v === null) return null;
  if (typeof v !== 'boolean') throw new JSONError('expected a boolean');
  return v;
}

/**
 * The string members of an object (a JWK), last duplicate winning, names
 * matched exactly (as the JOSE library Go uses reads a JWK). Null when v is
 * not an object, or when a member named in `strict` is not a string; other
 * members of other types are left out.
 */
export function stringMembers(v: JVal, strict: readonly string[]): Record<string, string> | null {
  if (!(v instanceof JObj)) return null;
  const o: Record<string, string> = Object.create(null);
  for (let k = 0; k < v.keys.length; k++) {
    const x = v.vals[k];
    const name = v.keys[k];
    if (typeof x === 'string') o[name] = x;
    else if (strict.includes(name)) return null;
    else delete o[name];
  }
  return o;
}
