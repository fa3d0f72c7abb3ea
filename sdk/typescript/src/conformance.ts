/**
 * The conformance runner (DESIGN.md, "Cross-language test vectors"): reads
 * one vector file — verification (jwks), scope (covers), MCP requests
 * (server), per-call Cedar (policies) or revocation feed
 * (max_staleness_seconds) — and answers each
 * case as this SDK decides it, one result per case, {"name", "verdict"}. `bin/conformance.js FILE` prints them as JSON
 * lines; comparing them with "expect" is the tests' business.
 */
import { Buffer } from 'node:buffer';
import { readFile } from 'node:fs/promises';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { covers } from './scope.js';
import { KeySet } from './keys.js';
import { Feed, RevocationSet } from './revocation.js';
import { DEFAULT_FEED_WAIT, DEFAULT_LEEWAY, DEFAULT_MAX_STALENESS, Verifier } from './verifier.js';
import { MandateError, StaleRevocationsError, VerificationError } from './errors.js';
import { basicAuth } from './http.js';
import type { MCPChain } from './mcpdecide.js';

export interface Result {
  name: string;
  verdict: string | boolean;
}

/** The verdict of a verifier outcome: "ok", a verdict class, or "error: …" for anything else. */
export function verdictOf(err: unknown): string {
  if (err === null || err === undefined) return 'ok';
  if (err instanceof VerificationError) return err.verdict;
  return 'error: ' + (err instanceof Error ? err.message : String(err));
}

interface VerifyFile {
  now: number;
  issuer: string;
  audience: string;
  leeway_seconds?: number;
  jwks: unknown;
  revoked?: string[] | null;
  public_url?: string;
  cases: Array<{ name: string; token: string; dpop?: { proof: string; method: string; url: string } | null; expect?: string }>;
}

/** Verifies every case of a verification file, in order, with one offline verifier configured as it says. */
export function runVerify(f: VerifyFile): Result[] {
  const nowMs = f.now * 1000;
  const v = new Verifier(
    {
      issuer: f.issuer,
      audience: f.audience,
      leeway: f.leeway_seconds ?? 0,
      publicUrl: f.public_url || undefined,
      now: () => nowMs,
    },
    KeySet.fromJWKS(f.jwks),
    new RevocationSet(f.revoked ?? []),
  );
  const out: Result[] = [];
  for (const c of f.cases) {
    let err: unknown = null;
    try {
      if (c.dpop) v.verifyDPoPSync(c.token, c.dpop.proof, c.dpop.method, c.dpop.url);
      else v.verifySync(c.token);
    } catch (e) {
      err = e;
    }
    out.push({ name: c.name, verdict: verdictOf(err) });
  }
  return out;
}

/** Answers every coverage question of a scope file. */
export function runScope(f: { covers: unknown[] }): Result[] {
  return f.covers.map((q, i) => {
    if (!Array.isArray(q) || q.length !== 3 || typeof q[0] !== 'string' || typeof q[1] !== 'string') {
      throw new TypeError(`vectors: covers[${i}]: want [parent, child, bool]`);
    }
    return { name: `${q[0]} ⊇ ${q[1]}`, verdict: covers(q[0], q[1]) };
  });
}

interface CallFile {
  policies: Array<{ name: string; source: string }>;
  cases: Array<{
    name: string;
    groups?: string[] | null;
    action: string;
    resource: { type: string; id: string };
    chain: {
      subject: string;
      sub_iss: string;
      holder: string;
      actors?: string[] | null;
      depth: number;
      scopes?: string[] | null;
      audiences?: string[] | null;
      root: string;
      lineage?: string[] | null;
      bound: boolean;
    };
  }>;
}

/** A vector case's chain as a decision reads it (call and MCP files; an absent list is empty). */
function vectorChain(ch: CallFile['cases'][number]['chain']): MCPChain {
  return {
    holder: ch.holder,
    subject: ch.subject,
    subjectIssuer: ch.sub_iss,
    actors: ch.actors ?? [],
    depth: ch.depth,
    scopes: ch.scopes ?? [],
    audiences: ch.audiences ?? [],
    root: ch.root,
    lineage: ch.lineage ?? [],
    bound: ch.bound,
  };
}

/** A result with the ids of the policies that determined it (call and MCP files). */
export interface DetailedResult extends Result {
  policies: string[];
}

/** Decides every case of a per-call Cedar file (needs @cedar-policy/cedar-wasm). */
export async function runCall(f: CallFile): Promise<Result[]> {
  return (await runCallDetailed(f)).map(({ name, verdict }) => ({ name, verdict }));
}

/** runCall, with each decision's policies. options.allContext: see CallPolicy.parse. */
export async function runCallDetailed(f: CallFile, options: { allContext?: boolean } = {}): Promise<DetailedResult[]> {
  const { CallPolicy } = await import('./cedar.js');
  const set = await CallPolicy.parse(f.policies.map((p) => ({ name: p.name, source: p.source })), options);
  return f.cases.map((c) => {
    const d = set.authorizeCall({ ...vectorChain(c.chain), groups: c.groups ?? [], action: c.action, resource: c.resource });
    return { name: c.name, verdict: d.allow ? 'allow' : 'deny', policies: [...d.policies] };
  });
}

interface MCPFile {
  server: string;
  policies: Array<{ name: string; source: string }>;
  cases: Array<{
    name: string;
    groups?: string[] | null;
    method: string;
    params?: { name?: string | null; uri?: string | null; arguments?: string | null } | null;
    chain: CallFile['cases'][number]['chain'];
  }>;
}

/**
 * Decides every case of an MCP file (testdata/vectors/README.md, "MCP
 * files") with the guard's own decision (decideMCP): insufficient_scope,
 * invalid_arguments, allow or deny. Needs @cedar-policy/cedar-wasm.
 */
export async function runMCP(f: MCPFile): Promise<Result[]> {
  return (await runMCPDetailed(f)).map(({ name, verdict }) => ({ name, verdict }));
}

/** runMCP, with each decision's policies. options.allContext: see CallPolicy.parse. */
export async function runMCPDetailed(f: MCPFile, options: { allContext?: boolean } = {}): Promise<DetailedResult[]> {
  const { CallPolicy } = await import('./cedar.js');
  const { decideMCP } = await import('./mcpdecide.js');
  if (typeof f.server !== 'string' || !Array.isArray(f.cases)) throw new TypeError('vectors: an MCP file has server (a string) and cases');
  const set = await CallPolicy.parse(f.policies.map((p) => ({ name: p.name, source: p.source })), options);
  const opt = (v: string | null | undefined): string | undefined => (typeof v === 'string' ? wellFormed(v) : undefined);
  return f.cases.map((c) => {
    const d = decideMCP(set, {
      server: wellFormed(f.server),
      method: wellFormed(c.method),
      name: opt(c.params?.name),
      uri: opt(c.params?.uri),
      arguments: opt(c.params?.arguments),
      groups: c.groups ?? [],
      chain: vectorChain(c.chain),
    });
    return { name: c.name, verdict: d.verdict, policies: [...d.policies] };
  });
}

/** One answer of the scripted feed: the cursor the poll must send ("" for none), the status and the body, verbatim. */
interface FeedVectorPage {
  since?: string;
  status?: number;
  body?: string;
}

interface FeedVectorFile {
  leeway_seconds?: number;
  max_staleness_seconds: number;
  cases: Array<{
    name: string;
    steps: Array<{ at: number; sync?: FeedVectorPage[] | null; check?: string[] | null }>;
    expect?: string;
  }>;
}

/** A string as UTF-8 carries it (a lone surrogate becomes U+FFFD, as Go reads the file). */
function wellFormed(s: string): string {
  return Buffer.from(s, 'utf8').toString('utf8');
}

/** Whether an Authorization header is Basic credentials (Go's Request.BasicAuth). */
function hasBasicAuth(h: string | undefined): boolean {
  if (!h || h.length < 6 || h.slice(0, 6).toLowerCase() !== 'basic ') return false;
  const b = h.slice(6);
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(b)) return false;
  return Buffer.from(b, 'base64').toString('latin1').includes(':');
}

function feedFileError(where: string, want: string): never {
  throw new TypeError(`vectors: ${where}: ${want}`);
}

/** Checks a feed file's shape (as Go's strict decoding would refuse it); throws TypeError. */
function checkFeedFile(f: FeedVectorFile): void {
  const int = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v);
  if (!int(f.max_staleness_seconds)) feedFileError('max_staleness_seconds', 'want an integer');
  if (f.leeway_seconds != null && !int(f.leeway_seconds)) feedFileError('leeway_seconds', 'want an integer');
  if (!Array.isArray(f.cases)) feedFileError('cases', 'want an array');
  f.cases.forEach((c, ci) => {
    if (!c || typeof c !== 'object' || !Array.isArray(c.steps)) feedFileError(`cases[${ci}]`, 'want an object with steps');
    c.steps.forEach((st, si) => {
      const where = `cases[${ci}].steps[${si}]`;
      if (!st || typeof st !== 'object' || !int(st.at)) feedFileError(where, 'want an object with at (Unix seconds)');
      if ((st.sync == null) === (st.check == null)) feedFileError(where, 'a step has either sync or check');
      if (st.check != null && (!Array.isArray(st.check) || !st.check.every((j) => typeof j === 'string'))) {
        feedFileError(`${where}.check`, 'want an array of strings');
      }
      if (st.sync != null) {
        if (!Array.isArray(st.sync)) feedFileError(`${where}.sync`, 'want an array of pages');
        st.sync.forEach((p, pi) => {
          if (
            !p || typeof p !== 'object' || (p.since != null && typeof p.since !== 'string') ||
            (p.status != null && !int(p.status)) || (p.body != null && typeof p.body !== 'string')
          ) {
            feedFileError(`${where}.sync[${pi}]`, 'want {since, status, body}');
          }
        });
      }
    });
  });
}

/**
 * The feed of a feed file's sync step, served on loopback: it answers the
 * step's pages in order and records whether each poll sent the page's
 * cursor and whether the follower polled past the pages.
 */
class ScriptedFeed {
  pages: FeedVectorPage[] = [];
  next = 0;
  wrong = false;
  extra = false;

  play(pages: FeedVectorPage[]): void {
    this.pages = pages;
    this.next = 0;
    this.wrong = false;
    this.extra = false;
  }

  serve(req: IncomingMessage, res: ServerResponse): void {
    if (!hasBasicAuth(req.headers.authorization)) {
      res.writeHead(401, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('credentials required\n');
      return;
    }
    if (this.next >= this.pages.length) {
      this.extra = true;
      res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('no page scripted\n');
      return;
    }
    const p = this.pages[this.next++];
    const since = new URL(req.url ?? '/', 'http://127.0.0.1').searchParams.get('since') ?? '';
    if (since !== wellFormed(p.since ?? '')) this.wrong = true;
    try {
      res.writeHead(p.status ?? 0, { 'content-type': 'application/json' });
      res.end(Buffer.from(p.body ?? '', 'utf8'));
    } catch {
      res.destroy(); // a status HTTP cannot carry: the poll fails, as Go's server drops the connection
    }
  }
}

/**
 * Plays every case of a feed file (testdata/vectors/README.md, "Feed
 * files"): a fresh Feed per case polling a scripted feed on 127.0.0.1 (Basic
 * credentials required), its clock reading each step's time; a sync step's
 * outcome is synced, failed, wrong_since, extra_poll or unused_pages (and
 * the key ids the pages dropped), a check's stale, revoked:<jti> or ok.
 */
export async function runFeed(f: FeedVectorFile): Promise<Result[]> {
  checkFeedFile(f);
  const script = new ScriptedFeed();
  const server = createServer((req, res) => script.serve(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const leewaySeconds = f.leeway_seconds && f.leeway_seconds > 0 ? f.leeway_seconds : DEFAULT_LEEWAY;
  const maxStalenessMs = (f.max_staleness_seconds > 0 ? f.max_staleness_seconds : DEFAULT_MAX_STALENESS) * 1000;
  const out: Result[] = [];
  try {
    for (const c of f.cases) {
      let nowMs = 0;
      let dropped: string[] = [];
      const feed = new Feed(
        {
          url: `http://127.0.0.1:${port}/feed`,
          clientId: 'vectors',
          clientSecret: 'vectors-secret',
          fetch: globalThis.fetch,
          nowMs: () => nowMs,
          leewaySeconds,
          maxStalenessMs,
          waitMs: Math.min(Math.max(DEFAULT_FEED_WAIT * 1000, 1000), maxStalenessMs / 2),
          retryMaxMs: 5000,
          onRevokedKeys: (kids) => dropped.push(...kids),
        },
        basicAuth('vectors', 'vectors-secret'),
      );
      const outcomes: string[] = [];
      for (const st of c.steps) {
        nowMs = st.at * 1000;
        if (st.sync != null) {
          script.play(st.sync);
          dropped = [];
          let err: unknown = null;
          try {
            await feed.sync();
          } catch (e) {
            if (!(e instanceof MandateError)) throw e; // an untyped throw is a bug, not a verdict
            err = e;
          }
          let o = 'synced';
          if (script.wrong) o = 'wrong_since';
          else if (script.extra) o = 'extra_poll';
          else if (err !== null) o = 'failed';
          else if (script.next < script.pages.length) o = 'unused_pages';
          if (dropped.length > 0) o += ' dropped:' + dropped.join(',');
          outcomes.push(o);
        } else {
          let o = 'ok';
          try {
            feed.current(nowMs);
            const jti = feed.firstRevoked((st.check as string[]).map(wellFormed));
            if (jti !== undefined) o = 'revoked:' + jti;
          } catch (e) {
            if (!(e instanceof StaleRevocationsError)) throw e;
            o = 'stale';
          }
          outcomes.push(o);
        }
      }
      out.push({ name: c.name, verdict: outcomes.join('; ') });
    }
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  return out;
}

/** Runs a vector file of any kind (its JSON text). */
export async function run(text: string): Promise<Result[]> {
  const data = JSON.parse(text) as Record<string, unknown>;
  if (!data || typeof data !== 'object' || Array.isArray(data)) throw new TypeError('vectors: not a JSON object');
  if (data.covers != null) return runScope(data as unknown as { covers: unknown[] });
  if (data.server != null) return runMCP(data as unknown as MCPFile);
  if (data.policies != null) return runCall(data as unknown as CallFile);
  if (data.max_staleness_seconds != null) return runFeed(data as unknown as FeedVectorFile);
  if (data.jwks != null) return runVerify(data as unknown as VerifyFile);
  throw new TypeError('vectors: neither a verification (jwks), a scope (covers), an MCP (server), a call (policies) nor a feed (max_staleness_seconds) file');
}

/** Runs a vector file from disk. */
export async function runFile(path: string): Promise<Result[]> {
  return run(await readFile(path, 'utf8'));
}
