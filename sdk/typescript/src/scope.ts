/**
 * The scope grammar and coverage, as the Go reference (chain/scope.go):
 * a scope string is RFC 6749 §3.3 tokens separated by single spaces
 * (printable ASCII but space, '"' and '\\'), at most 64 tokens of at most 256
 * bytes in at most 4 KiB; duplicates keep their first occurrence. Parent p
 * covers child c iff p == c, or p == "*", or p ends in ":*" and c starts
 * with p minus its "*". Only a trailing ":*" or a lone "*" is a wildcard.
 */

export const MAX_SCOPES = 64;
export const MAX_SCOPE_LENGTH = 256;
export const MAX_SCOPE_STRING = 4 << 10;

/** A scope string that breaks the grammar (its message says which rule). */
export class ScopeError extends Error {}

/** Splits a scope string into its tokens; throws ScopeError. The empty string has no scopes. */
export function parseScope(s: string): string[] {
  if (s === '') return [];
  // Byte lengths: any non-ASCII character is refused below anyway, so the
  // UTF-16 length is a lower bound that only matters when all are ASCII.
  if (utf8Length(s) > MAX_SCOPE_STRING) throw new ScopeError(`malformed scope: longer than ${MAX_SCOPE_STRING} bytes`);
  const parts = s.split(' ');
  if (parts.length > MAX_SCOPES) throw new ScopeError(`malformed scope: more than ${MAX_SCOPES} scopes`);
  const out: string[] = [];
  for (const p of parts) {
    if (p === '') throw new ScopeError('malformed scope: empty scope token (scopes are separated by single spaces)');
    if (utf8Length(p) > MAX_SCOPE_LENGTH) throw new ScopeError(`malformed scope: a scope is longer than ${MAX_SCOPE_LENGTH} bytes`);
    for (let i = 0; i < p.length; i++) {
      const c = p.charCodeAt(i);
      if (c < 0x21 || c === 0x22 || c === 0x5c || c > 0x7e) {
        throw new ScopeError('malformed scope: a scope has a character outside RFC 6749 §3.3');
      }
    }
    if (!out.includes(p)) out.push(p);
  }
  return out;
}

function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** Joins scope tokens with single spaces (the wire form). */
export function formatScope(scopes: readonly string[]): string {
  return scopes.join(' ');
}

/** The one reading of a wildcard: "*" → prefix "", "a:b:*" → "a:b:"; anything else is a literal. */
export function wildcard(scope: string): { prefix: string; wild: boolean } {
  if (scope === '*') return { prefix: '', wild: true };
  if (scope.endsWith(':*')) return { prefix: scope.slice(0, -1), wild: true };
  return { prefix: '', wild: false };
}

/** Whether holding scope p grants scope c. */
export function covers(p: string, c: string): boolean {
  if (p === c) return true;
  const { prefix, wild } = wildcard(p);
  return wild && c.startsWith(prefix);
}

/** Whether some scope of set covers c. */
export function coveredBy(set: readonly string[], c: string): boolean {
  for (const p of set) if (covers(p, c)) return true;
  return false;
}

/** The first scope of want that no scope of have covers, or undefined when all are covered. */
export function uncovered(have: readonly string[], want: readonly string[]): string | undefined {
  for (const c of want) if (!coveredBy(have, c)) return c;
  return undefined;
}

/** The scopes granted by both a and b, wildcard-aware and minimal (Go's chain.Intersect). */
export function intersect(a: readonly string[], b: readonly string[]): string[] {
  const out: string[] = [];
  for (const x of a) {
    for (const y of b) {
      let n: string;
      if (covers(x, y)) n = y;
      else if (covers(y, x)) n = x;
      else continue;
      if (!out.includes(n)) out.push(n);
    }
  }
  return out.filter((c, i) => !out.some((p, j) => i !== j && p !== c && covers(p, c)));
}
