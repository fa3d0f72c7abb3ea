/**
 * Test plumbing: a real `mandate serve` (the binary at $MANDATE_BIN, or built
 * from this checkout into a temp dir), started on 127.0.0.1:0 with a
 * configuration written into a temp dir; and a signer that makes tokens with
 * keys of the test's own, for the offline tests.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** sdk/typescript (the tests run from dist-test/). */
export const SDK_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const REPO_DIR = resolve(SDK_DIR, '..', '..');
export const VECTORS_DIR = join(REPO_DIR, 'testdata', 'vectors');

let built: string | null = null;

/** The mandate binary: $MANDATE_BIN, or one built from the checkout (once per process). */
export function mandateBin(): string {
  const env = process.env.MANDATE_BIN;
  if (env && existsSync(env)) return env;
  if (built) return built;
  const dir = mkdtempSync(join(tmpdir(), 'mandate-ts-bin-'));
  const out = join(dir, 'mandate');
  const r = spawnSync('go', ['build', '-o', out, './cmd/mandate'], { cwd: REPO_DIR, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) throw new Error('go build ./cmd/mandate failed (set MANDATE_BIN to a built mandate binary)');
  built = out;
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return out;
}

export interface Server {
  issuer: string;
  dir: string;
  stop(): Promise<void>;
}

/** Starts `mandate serve --config <tmp>/mandate.yaml` with the YAML config body (listen and data_dir are added). */
export async function startServer(configBody: string, files: Record<string, string> = {}): Promise<Server> {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-ts-'));
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content, { mode: 0o600 });
  const config = `listen: 127.0.0.1:0\ndata_dir: ${join(dir, 'data')}\n${configBody}`;
  writeFileSync(join(dir, 'mandate.yaml'), config, { mode: 0o600 });
  const child: ChildProcess = spawn(mandateBin(), ['serve', '--config', join(dir, 'mandate.yaml')], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, MANDATE_LOG_LEVEL: 'info' },
  });
  let log = '';
  const issuer = await new Promise<string>((resolveIssuer, reject) => {
    const timer = setTimeout(() => reject(new Error(`mandate serve did not start within 30 s:\n${log}`)), 30000);
    let buf = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      log += chunk;
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const j = JSON.parse(line) as { msg?: string; issuer?: string };
          if (j.msg === 'mandate serving' && j.issuer) {
            clearTimeout(timer);
            resolveIssuer(j.issuer);
          }
        } catch {
          // not a JSON line
        }
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`mandate serve exited (${code}):\n${log}`));
    });
  });
  child.removeAllListeners('exit');
  child.stderr!.resume();
  return {
    issuer,
    dir,
    stop: () =>
      new Promise<void>((res) => {
        if (child.exitCode !== null) {
          rmSync(dir, { recursive: true, force: true });
          res();
          return;
        }
        child.once('exit', () => {
          rmSync(dir, { recursive: true, force: true });
          res();
        });
        child.kill('SIGTERM');
      }),
  };
}

/**
 * The URL a child process announces on stdout (re's first group, matched
 * against all it has printed): rejects, naming what and its log so far
 * (log()), when it exits first or has not announced it within ms.
 */
export async function listeningURL(c: ChildProcess, re: RegExp, what: string, ms: number, log: () => string): Promise<string> {
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start within ${ms / 1000} s:\n${log()}`)), ms);
    let out = '';
    c.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = re.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    c.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code}):\n${log()}`));
    });
  });
  c.removeAllListeners('exit');
  return url;
}

/** A signing key of the test's own, with its JWKS entry. */
export interface TestKey {
  kid: string;
  alg: 'EdDSA' | 'ES256';
  priv: KeyObject;
  jwk: Record<string, string>;
}

export function testKey(kid: string, alg: 'EdDSA' | 'ES256' = 'EdDSA'): TestKey {
  const { privateKey, publicKey } = alg === 'EdDSA' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' }) as Record<string, string>;
  return { kid, alg, priv: privateKey, jwk: { ...jwk, kid, alg, use: 'sig' } };
}

const b64 = (s: string | Buffer): string => Buffer.from(s).toString('base64url');

/** Signs claims as a Mandate token (or with the header given). */
export function signToken(k: TestKey, claims: Record<string, unknown>, header: Record<string, unknown> = {}): string {
  const h = b64(JSON.stringify({ alg: k.alg, kid: k.kid, typ: 'at+jwt', ...header }));
  const input = `${h}.${b64(JSON.stringify(claims))}`;
  const sig = k.alg === 'EdDSA' ? sign(null, Buffer.from(input), k.priv) : sign('sha256', Buffer.from(input), { key: k.priv, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}

export const ISSUER = 'https://mandate.example';
export const AUDIENCE = 'https://api.example';

/** Claims of a well-formed delegated token at now (seconds). */
export function claimsAt(now: number, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    iss: ISSUER,
    sub: 'orchestrator',
    sub_iss: ISSUER,
    aud: [AUDIENCE],
    client_id: 'db-agent',
    scope: 'db:read:orders',
    iat: now - 10,
    nbf: now - 10,
    exp: now + 300,
    jti: `jti-${Math.random().toString(36).slice(2)}`,
    act: { sub: 'db-agent', act: { sub: 'researcher' } },
    lineage: ['root-1', 'child-1'],
    ...over,
  };
}
