/**
 * The conformance runner (DESIGN.md, "Cross-language test vectors"): reads
 * one vector file — verification (jwks), scope (covers) or per-call Cedar
 * (policies) — and answers each case as this SDK decides it, one result per
 * case, {"name", "verdict"}. `bin/conformance.js FILE` prints them as JSON
 * lines; comparing them with "expect" is the tests' business.
 */
import { readFile } from 'node:fs/promises';
import { covers } from './scope.js';
import { KeySet } from './keys.js';
import { RevocationSet } from './revocation.js';
import { Verifier } from './verifier.js';
import { VerificationError } from './errors.js';

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

/** Decides every case of a per-call Cedar file (needs @cedar-policy/cedar-wasm). */
export async function runCall(f: CallFile): Promise<Result[]> {
  const { CallPolicy } = await import('./cedar.js');
  const set = await CallPolicy.parse(f.policies.map((p) => ({ name: p.name, source: p.source })));
  return f.cases.map((c) => {
    const d = set.authorizeCall({
      holder: c.chain.holder,
      groups: c.groups ?? [],
      action: c.action,
      resource: c.resource,
      subject: c.chain.subject,
      subjectIssuer: c.chain.sub_iss,
      actors: c.chain.actors ?? [],
      depth: c.chain.depth,
      scopes: c.chain.scopes ?? [],
      audiences: c.chain.audiences ?? [],
      root: c.chain.root,
      lineage: c.chain.lineage ?? [],
      bound: c.chain.bound,
    });
    return { name: c.name, verdict: d.allow ? 'allow' : 'deny' };
  });
}

/** Runs a vector file of any kind (its JSON text). */
export async function run(text: string): Promise<Result[]> {
  const data = JSON.parse(text) as Record<string, unknown>;
  if (!data || typeof data !== 'object' || Array.isArray(data)) throw new TypeError('vectors: not a JSON object');
  if (data.covers != null) return runScope(data as unknown as { covers: unknown[] });
  if (data.policies != null) return runCall(data as unknown as CallFile);
  if (data.jwks != null) return runVerify(data as unknown as VerifyFile);
  throw new TypeError('vectors: neither a verification (jwks), a scope (covers) nor a call (policies) file');
}

/** Runs a vector file from disk. */
export async function runFile(path: string): Promise<Result[]> {
  return run(await readFile(path, 'utf8'));
}
