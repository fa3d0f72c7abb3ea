/**
 * The HTTP plumbing shared by the client and the verifier: the platform
 * fetch with redirects never followed (credentials and proofs must not go
 * where a server points), bounded bodies, deadlines, and client_secret_basic
 * with RFC 6749 §2.3.1 form-urlencoding.
 */
import { Buffer } from 'node:buffer';
import { ProtocolError } from './errors.js';
import { excerpt } from './jwt.js';

export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** application/x-www-form-urlencoded encoding of one value (RFC 6749 §2.3.1, Appendix B). */
export function formEncode(s: string): string {
  return new URLSearchParams({ v: s }).toString().slice(2);
}

/** The Authorization value of client_secret_basic: id and secret form-urlencoded before Base64. */
export function basicAuth(id: string, secret: string): string {
  return 'Basic ' + Buffer.from(`${formEncode(id)}:${formEncode(secret)}`, 'utf8').toString('base64');
}

/** Reads a response body of at most limit bytes (a larger one is a ProtocolError). */
export async function readLimited(resp: Response, limit: number): Promise<Buffer> {
  if (!resp.body) return Buffer.alloc(0);
  const reader = resp.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => undefined);
      throw new ProtocolError(`${new URL(resp.url || 'http://x').pathname}: document larger than ${limit} bytes`, resp.status);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

/** Combines abort signals (the caller's and a deadline) without AbortSignal.any (Node 20.0). */
export function deadline(ms: number, outer?: AbortSignal): { signal: AbortSignal; done: () => void } {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(new ProtocolError(`no answer within ${ms} ms`)), ms);
  const onAbort = (): void => ctl.abort(outer?.reason);
  if (outer) {
    if (outer.aborted) ctl.abort(outer.reason);
    else outer.addEventListener('abort', onAbort, { once: true });
  }
  return {
    signal: ctl.signal,
    done: () => {
      clearTimeout(timer);
      outer?.removeEventListener('abort', onAbort);
    },
  };
}

/** A redirect answered to a request: never followed. */
export function isRedirect(status: number): boolean {
  return status >= 300 && status < 400;
}

export interface GetJSONOptions {
  fetch: FetchLike;
  authorization?: string;
  limit: number;
  timeoutMs: number;
  signal?: AbortSignal;
}

/**
 * GETs a document of at most limit bytes: its status and its body as text
 * (UTF-8), whatever the status. A failure to connect, a deadline or a broken
 * body is a ProtocolError, never another exception.
 */
export async function getText(url: string, o: GetJSONOptions): Promise<{ status: number; body: string }> {
  const d = deadline(o.timeoutMs, o.signal);
  try {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (o.authorization) headers.authorization = o.authorization;
    let resp: Response;
    try {
      resp = await o.fetch(url, { method: 'GET', headers, redirect: 'manual', signal: d.signal });
    } catch (e) {
      throw new ProtocolError(`${safeURL(url)}: ${e instanceof Error ? e.message : String(e)}`, undefined, { cause: e });
    }
    let raw: Buffer;
    try {
      raw = await readLimited(resp, o.limit);
    } catch (e) {
      if (e instanceof ProtocolError) throw e;
      throw new ProtocolError(`${safeURL(url)}: ${e instanceof Error ? e.message : String(e)}`, resp.status, { cause: e });
    }
    return { status: resp.status, body: raw.toString('utf8') };
  } finally {
    d.done();
  }
}

/** GETs a JSON document; throws ProtocolError (with the status) on anything but 200 JSON. */
export async function getJSON(url: string, o: GetJSONOptions): Promise<{ status: number; body: unknown }> {
  const r = await getText(url, o);
  if (r.status !== 200) return r;
  try {
    return { status: 200, body: JSON.parse(r.body) };
  } catch {
    throw new ProtocolError(`${safeURL(url)}: the answer is not JSON`, 200);
  }
}

/** A URL for an error message: without query (a cursor is harmless, but keep messages short). */
export function safeURL(url: string): string {
  try {
    const u = new URL(url);
    return u.origin + u.pathname;
  } catch {
    return excerpt(url);
  }
}
