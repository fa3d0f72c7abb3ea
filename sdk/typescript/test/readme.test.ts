// The README's quickstart is a test: its TypeScript block runs, as written,
// against a real mandate serve and a protected API verified by this SDK
// (https://orders.example is routed to a node:http server on 127.0.0.1:0;
// the proofs still name https://orders.example, the API's public URL).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import ts from 'typescript';
import { Verifier, chainOf } from '../dist/index.js';
import { REPO_DIR, SDK_DIR, type Server, startServer } from './harness.js';

const CONFIG = `
policy: {dir: ${join(REPO_DIR, 'testdata', 'policies')}}
clients:
  - id: orchestrator
    secret: orch-secret
    grants: [client_credentials, token_exchange]
    scopes: ["db:read:*", "tools:*"]
    audiences: ["https://orders.example"]
    groups: [orchestrators]
    ephemeral: {scopes: ["db:read:*"], audiences: ["https://orders.example"], groups: [research-agents]}
  - id: researcher
    secret: res-secret
    grants: [client_credentials, token_exchange]
    scopes: ["db:read:*", "tools:search"]
    audiences: ["https://orders.example"]
    groups: [research-agents]
  - id: orders-api
    secret: api-secret
    role: resource_server
`;

describe('README quickstart', () => {
  let srv: Server;
  let v: Verifier;
  let api: ReturnType<typeof createServer>;
  const realFetch = globalThis.fetch;
  const dir = mkdtempSync(join(tmpdir(), 'mandate-readme-'));

  before(async () => {
    srv = await startServer(CONFIG);
    v = await Verifier.discover({ issuer: srv.issuer, audience: 'https://orders.example', clientId: 'orders-api', clientSecret: 'api-secret', publicUrl: 'https://orders.example' });
    const mw = v.middleware();
    api = createServer((req, res) => mw(req, res, () => res.end(JSON.stringify({ holder: chainOf(req)!.holder }))));
    await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
    globalThis.fetch = (input: string | URL | Request, init?: RequestInit) =>
      realFetch(typeof input === 'string' || input instanceof URL ? String(input).replace('https://orders.example', base) : input, init);
  });

  after(async () => {
    globalThis.fetch = realFetch;
    await v?.close();
    api?.closeAllConnections();
    await new Promise<void>((r) => (api ? api.close(() => r()) : r()));
    await srv?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs as written', async () => {
    const readme = readFileSync(join(SDK_DIR, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Quickstart'));
    const block = /```ts\n([\s\S]*?)```/.exec(section)![1];
    assert.ok(block.split('\n').filter((l) => l.trim() !== '').length <= 16, 'the quickstart is about 15 lines');
    let js = ts.transpileModule(block, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
    js = js.replace("'@mandate-auth/sdk'", `'${pathToFileURL(join(SDK_DIR, 'dist', 'index.js')).href}'`);
    assert.match(js, /const M = 'http:\/\/127\.0\.0\.1:8080';/);
    js = js.replace("const M = 'http://127.0.0.1:8080';", `const M = '${srv.issuer}';`);
    process.env.ORCH_SECRET = 'orch-secret';
    process.env.RES_SECRET = 'res-secret';
    const file = join(dir, 'quickstart.mjs');
    writeFileSync(file, js);
    const printed: unknown[][] = [];
    const log = console.log;
    console.log = (...a: unknown[]) => printed.push(a);
    try {
      await import(pathToFileURL(file).href);
    } finally {
      console.log = log;
    }
    assert.deepEqual(printed, [[200, ['researcher']]]);
    // The root is revoked (the only revocation on this server): the verifier hears of it within a second.
    assert.ok(await v.feed!.waitUntil(() => v.feed!.size === 1, 1000));
  });
});
