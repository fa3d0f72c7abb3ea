/**
 * The parts of Go's net/url that decide whether a DPoP proof's htu names the
 * request's URL (tokens.sameHTU): url.Parse's reading of scheme, host and
 * escaped path, ported byte for byte, so a proof accepted or refused by the
 * Go verifier is accepted or refused here. WHATWG's URL parser would not do:
 * it resolves "/a/../b", turns '\' into '/', and encodes other characters.
 *
 * Strings are handled as byte strings (one char per UTF-8 byte), as Go does.
 */
import { Buffer } from 'node:buffer';
import { isIPv4, isIPv6 } from 'node:net';

const encodePath = 1;
const encodePathSegment = 2;
const encodeHost = 4;
const encodeZone = 8;
const encodeUserPassword = 16;
const encodeQueryComponent = 32;
const encodeFragment = 64;

function shouldEscapeRef(c: number, mode: number): boolean {
  if ((c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39)) return false;
  const ch = String.fromCharCode(c);
  if (mode === encodeHost || mode === encodeZone) {
    if ("!$&'()*+,;=:[]<>\"".includes(ch)) return false;
  }
  if ('-_.~'.includes(ch)) return false;
  if ('$&+,/:;=?@'.includes(ch)) {
    switch (mode) {
      case encodePath:
        return c === 0x3f;
      case encodePathSegment:
        return ch === '/' || ch === ';' || ch === ',' || ch === '?';
      case encodeUserPassword:
        return ch === '@' || ch === '/' || ch === '?' || ch === ':';
      case encodeQueryComponent:
        return true;
      case encodeFragment:
        return false;
    }
  }
  if (mode === encodeFragment && '!()*'.includes(ch)) return false;
  return true;
}

// The table Go generates from the reference function above.
const TABLE = new Uint8Array(256);
for (let c = 0; c < 256; c++) {
  for (const m of [encodePath, encodePathSegment, encodeHost, encodeZone, encodeUserPassword, encodeQueryComponent, encodeFragment]) {
    if (!shouldEscapeRef(c, m)) TABLE[c] |= m;
  }
}

function shouldEscape(c: number, mode: number): boolean {
  return (TABLE[c] & mode) === 0;
}

function ishex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
}

function unhex(c: number): number {
  return 9 * (c >> 6) + (c & 15);
}

class URLError extends Error {}

/** Go's unescape over a byte string; throws URLError. */
function unescape(s: string, mode: number): string {
  let n = 0;
  let hasPlus = false;
  for (let i = 0; i < s.length; ) {
    const c = s.charCodeAt(i);
    if (c === 0x25) {
      n++;
      if (i + 2 >= s.length || !ishex(s.charCodeAt(i + 1)) || !ishex(s.charCodeAt(i + 2))) throw new URLError('invalid URL escape');
      if (mode === encodeHost && unhex(s.charCodeAt(i + 1)) < 8 && s.slice(i, i + 3) !== '%25') throw new URLError('invalid URL escape');
      if (mode === encodeZone) {
        const v = (unhex(s.charCodeAt(i + 1)) << 4) | unhex(s.charCodeAt(i + 2));
        if (s.slice(i, i + 3) !== '%25' && v !== 0x20 && shouldEscape(v, encodeHost)) throw new URLError('invalid URL escape');
      }
      i += 3;
    } else if (c === 0x2b) {
      hasPlus = mode === encodeQueryComponent;
      i++;
    } else {
      if ((mode === encodeHost || mode === encodeZone) && c < 0x80 && shouldEscape(c, mode)) throw new URLError('invalid character in host name');
      i++;
    }
  }
  if (n === 0 && !hasPlus) return s;
  let t = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25) {
      t += String.fromCharCode((unhex(s.charCodeAt(i + 1)) << 4) | unhex(s.charCodeAt(i + 2)));
      i += 2;
    } else if (c === 0x2b) t += mode === encodeQueryComponent ? ' ' : '+';
    else t += s[i];
  }
  return t;
}

const UPPERHEX = '0123456789ABCDEF';

/** Go's escape over a byte string. */
function escape(s: string, mode: number): string {
  let t = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x20 && mode === encodeQueryComponent) t += '+';
    else if (shouldEscape(c, mode)) t += '%' + UPPERHEX[c >> 4] + UPPERHEX[c & 15];
    else t += s[i];
  }
  return t;
}

function validEncoded(s: string, mode: number): boolean {
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if ("!$&'()*+,;=:@[]%".includes(ch)) continue;
    if (shouldEscape(s.charCodeAt(i), mode)) return false;
  }
  return true;
}

function validOptionalPort(port: string): boolean {
  if (port === '') return true;
  if (port[0] !== ':') return false;
  for (let i = 1; i < port.length; i++) {
    const c = port.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

function parseHost(scheme: string, host: string): string {
  const open = host.lastIndexOf('[');
  if (open > 0) throw new URLError('invalid IP-literal');
  if (open === 0) {
    const close = host.lastIndexOf(']');
    if (close < 0) throw new URLError("missing ']' in host");
    const colonPort = host.slice(close + 1);
    if (!validOptionalPort(colonPort)) throw new URLError('invalid port');
    const unescapedColonPort = unescape(colonPort, encodeHost);
    const hostname = host.slice(1, close);
    let unescapedHostname: string;
    const zoneIdx = hostname.indexOf('%25');
    if (zoneIdx >= 0) {
      unescapedHostname = unescape(hostname.slice(0, zoneIdx), encodeHost) + unescape(hostname.slice(zoneIdx), encodeZone);
    } else {
      unescapedHostname = unescape(hostname, encodeHost);
    }
    const pct = unescapedHostname.indexOf('%');
    const addr = pct >= 0 ? unescapedHostname.slice(0, pct) : unescapedHostname;
    if (isIPv4(addr) || !isIPv6(addr)) throw new URLError('invalid IP-literal');
    if (pct >= 0 && pct === unescapedHostname.length - 1) throw new URLError('invalid IP-literal'); // empty zone
    return '[' + unescapedHostname + ']' + unescapedColonPort;
  }
  let i = host.indexOf(':');
  if (i !== -1) {
    const last = host.lastIndexOf(':');
    if (last !== i && scheme !== 'http' && scheme !== 'https') i = last;
    if (!validOptionalPort(host.slice(i))) throw new URLError('invalid port');
  }
  return unescape(host, encodeHost);
}

function validUserinfo(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39)) continue;
    if ("-._:~!$&'()*+,;=%@".includes(s[i])) continue;
    return false;
  }
  return true;
}

function getScheme(raw: string): [string, string] {
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if ((c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a)) continue;
    if ((c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2d || c === 0x2e) {
      if (i === 0) return ['', raw];
      continue;
    }
    if (c === 0x3a) {
      if (i === 0) throw new URLError('missing protocol scheme');
      return [raw.slice(0, i), raw.slice(i + 1)];
    }
    return ['', raw];
  }
  return ['', raw];
}

/** The parts of a parsed URL that sameHTU needs (byte strings). */
export interface GoURL {
  scheme: string;
  host: string;
  path: string;
  rawPath: string;
}

function setPath(u: GoURL, p: string): void {
  u.path = unescape(p, encodePath);
  u.rawPath = escape(u.path, encodePath) === p ? '' : p;
}

/** Go's URL.EscapedPath. */
export function escapedPath(u: GoURL): string {
  if (u.rawPath !== '' && validEncoded(u.rawPath, encodePath)) {
    try {
      if (unescape(u.rawPath, encodePath) === u.path) return u.rawPath;
    } catch {
      // fall through
    }
  }
  if (u.path === '*') return '*';
  return escape(u.path, encodePath);
}

function parse(raw: string, viaRequest: boolean): GoURL {
  for (let i = 0; i < raw.length; i++) {
    const b = raw.charCodeAt(i);
    if (b < 0x20 || b === 0x7f) throw new URLError('invalid control character in URL');
  }
  if (raw === '' && viaRequest) throw new URLError('empty url');
  const u: GoURL = { scheme: '', host: '', path: '', rawPath: '' };
  if (raw === '*') {
    u.path = '*';
    return u;
  }
  let [scheme, rest] = getScheme(raw);
  u.scheme = scheme.toLowerCase();
  if (rest.endsWith('?') && rest.indexOf('?') === rest.length - 1) rest = rest.slice(0, -1);
  else {
    const q = rest.indexOf('?');
    if (q >= 0) rest = rest.slice(0, q);
  }
  if (!rest.startsWith('/')) {
    if (u.scheme !== '') return u; // opaque
    if (viaRequest) throw new URLError('invalid URI for request');
    const slash = rest.indexOf('/');
    const segment = slash >= 0 ? rest.slice(0, slash) : rest;
    if (segment.includes(':')) throw new URLError('first path segment in URL cannot contain colon');
  }
  if ((u.scheme !== '' || (!viaRequest && !rest.startsWith('///'))) && rest.startsWith('//')) {
    let authority = rest.slice(2);
    rest = '';
    const i = authority.indexOf('/');
    if (i >= 0) {
      rest = authority.slice(i);
      authority = authority.slice(0, i);
    }
    const at = authority.lastIndexOf('@');
    u.host = parseHost(u.scheme, at < 0 ? authority : authority.slice(at + 1));
    if (at >= 0) {
      const userinfo = authority.slice(0, at);
      if (!validUserinfo(userinfo)) throw new URLError('invalid userinfo');
      const colon = userinfo.indexOf(':');
      if (colon < 0) unescape(userinfo, encodeUserPassword);
      else {
        unescape(userinfo.slice(0, colon), encodeUserPassword);
        unescape(userinfo.slice(colon + 1), encodeUserPassword);
      }
    }
  }
  setPath(u, rest);
  return u;
}

function toBytes(s: string): string {
  // A byte string: each char one UTF-8 byte of s.
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return Buffer.from(s, 'utf8').toString('latin1');
  return s;
}

/** Go's url.Parse (scheme, host, path); null where Go returns an error. */
export function goParseURL(raw: string): GoURL | null {
  try {
    const s = toBytes(raw);
    const hash = s.indexOf('#');
    const u = parse(hash >= 0 ? s.slice(0, hash) : s, false);
    if (hash >= 0) {
      const frag = s.slice(hash + 1);
      if (frag !== '') unescape(frag, encodeFragment);
    }
    return u;
  } catch (e) {
    if (e instanceof URLError) return null;
    throw e;
  }
}

/** Go's url.ParseRequestURI's escaped path of a request target; null where Go errs. */
export function requestPath(requestURI: string): string | null {
  try {
    return escapedPath(parse(toBytes(requestURI), true));
  } catch (e) {
    if (e instanceof URLError) return null;
    throw e;
  }
}

function lowerHost(host: string): string {
  // Go lower-cases the host as UTF-8 text.
  let ascii = true;
  for (let i = 0; i < host.length; i++) if (host.charCodeAt(i) >= 0x80) ascii = false;
  if (ascii) return host.toLowerCase();
  return Buffer.from(Buffer.from(host, 'latin1').toString('utf8').toLowerCase(), 'utf8').toString('latin1');
}

function norm(u: GoURL): string {
  let host = lowerHost(u.host);
  const scheme = u.scheme.toLowerCase();
  if ((scheme === 'https' && host.endsWith(':443')) || (scheme === 'http' && host.endsWith(':80'))) {
    host = host.slice(0, host.lastIndexOf(':'));
  }
  let path = escapedPath(u);
  if (path === '') path = '/';
  return scheme + '://' + host + path;
}

/**
 * Whether a proof's htu names the request URL (Go's tokens.sameHTU): query
 * and fragment ignored, scheme and host case-insensitive, default ports
 * implied, the paths compared in their escaped form.
 */
export function sameHTU(htu: string, target: string): boolean {
  const a = goParseURL(htu);
  const b = goParseURL(target);
  if (a === null || b === null || a.host === '') return false;
  return norm(a) === norm(b);
}
