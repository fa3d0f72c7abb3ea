/**
 * Strict base64url without padding, as Go's base64.RawURLEncoding.Strict():
 * only the URL-safe alphabet, no '=', no stray trailing bits (so one value has
 * one string form), and, as Go's decoder does, '\r' and '\n' skipped.
 */
import { Buffer } from 'node:buffer';

const ALPHABET = new Int8Array(128).fill(-1);
{
  const a = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  for (let i = 0; i < a.length; i++) ALPHABET[a.charCodeAt(i)] = i;
}

/** Decodes strict base64url; null when the input is not canonical base64url. */
export function b64urlDecode(s: string): Buffer | null {
  let clean = s;
  if (s.indexOf('\n') >= 0 || s.indexOf('\r') >= 0) clean = s.replace(/[\r\n]/g, '');
  const n = clean.length;
  if (n % 4 === 1) return null;
  for (let i = 0; i < n; i++) {
    const c = clean.charCodeAt(i);
    if (c >= 128 || ALPHABET[c] < 0) return null;
  }
  if (n > 0) {
    const last = ALPHABET[clean.charCodeAt(n - 1)];
    if (n % 4 === 2 && (last & 0x0f) !== 0) return null;
    if (n % 4 === 3 && (last & 0x03) !== 0) return null;
  }
  return Buffer.from(clean, 'base64url');
}

/** Encodes bytes (or a string's UTF-8) as base64url without padding. */
export function b64urlEncode(data: Uint8Array | string): string {
  return (typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data.buffer, data.byteOffset, data.byteLength)).toString('base64url');
}
