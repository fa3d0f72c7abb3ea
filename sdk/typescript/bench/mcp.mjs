#!/usr/bin/env node
// The per-request overhead the MCP guard adds to a tools/call (never
// asserted by tests): what McpGuard.protect does for each POST before the
// SDK's transport sees it — the token of a chain already verified (the
// verifier's cache), the JSON-RPC body read strictly, the scope the tool
// needs, the arguments converted and one Cedar decision — measured on
// the public functions it calls, in one process, as medians of batches.
//
//   cd sdk/typescript && npm run build && node bench/mcp.mjs [--json]
//
// Target (issue 15): ≤ 200 µs for a Bearer token. The DPoP line adds the
// proof's verification (about one raw Ed25519 verify, printed beside it).
// The indented lines split the Bearer cost.
import { verify } from 'node:crypto';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { DPoPKey, KeySet, RevocationSet, Verifier } from '../dist/index.js';
import { CallPolicy } from '../dist/cedar.js';
import { McpGuard, parseArguments, readMessage, requiredScope, resourceMetadataUrl } from '../dist/mcp.js';
import { coveredBy } from '../dist/scope.js';
import { NOW, benchAsync, jwk, publicKey, token } from './common.mjs';

const json = process.argv.includes('--json');
const SERVER = 'https://orders-mcp.example/mcp';
const PUBLIC = 'https://orders-mcp.example';

const agentKey = DPoPKey.generate();
const claims = {
  iss: 'https://mandate.example', sub: 'orchestrator', sub_iss: 'https://mandate.example', aud: [SERVER],
  client_id: 'orchestrator/researcher-1', scope: 'tools:search_orders tools:refund_order orders:refund', iat: NOW - 10, nbf: NOW - 10, exp: NOW + 300,
  jti: '01JFK3M2X6Y8Z9ABCDEFGHJKMN', act: { sub: 'orchestrator/researcher-1' }, lineage: ['01JFK3M2X0000000000000000A'],
};
const bearer = token(claims);
const bound = token({ ...claims, jti: '01JFK3M2X6Y8Z9ABCDEFGHJKMP', cnf: { jkt: agentKey.jkt } });

const keys = KeySet.fromJWKS({ keys: [jwk] });
const revs = new RevocationSet(Array.from({ length: 1000 }, (_, i) => `revoked-${i}`));
const cfg = { issuer: 'https://mandate.example', audience: SERVER, now: () => NOW * 1000, publicUrl: PUBLIC, resourceMetadataUrl: resourceMetadataUrl(SERVER), dpopReplayCacheSize: 1 << 22 };
const verifier = new Verifier(cfg, keys, revs);
const policy = await CallPolicy.loadDir(fileURLToPath(new URL('../../../examples/mcp/policies', import.meta.url)));
const guard = new McpGuard(verifier, { server: SERVER, policy, log: () => undefined });

const body = '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"refund_order","arguments":{"order":"o-1","amount":40}}}';
const bearerParts = { method: 'POST', target: '/mcp', authorization: [`Bearer ${bearer}`], dpop: [] };

/** What protect() does for one POST before the transport: returns the decision. */
async function overhead(parts) {
  const chain = await verifier.authenticate(parts);
  const msg = readMessage(body);
  const scope = requiredScope(msg.method, msg.name ?? '');
  if (scope !== '' && !coveredBy(chain.scopes, scope)) throw new Error('insufficient_scope');
  const d = guard.decide(chain, msg);
  if (!d || !d.allow) throw new Error(`denied: ${d?.reason}`);
  return d;
}

/** 61 batches after a warm-up of 3 (the guard's operations are slower than the verifier's). */
const bench = (name, n, f) => benchAsync(name, n, f, 61, 3);

const rawInput = Buffer.from(bearer.slice(0, bearer.lastIndexOf('.')));
const rawSig = Buffer.from(bearer.slice(bearer.lastIndexOf('.') + 1), 'base64url');
const N = 200;
const proofs = Array.from({ length: N * 70 }, () => agentKey.proof('POST', `${PUBLIC}/mcp`, { accessToken: bound, now: NOW }));
const chain = verifier.verifySync(bearer);
const msg = readMessage(body);
const allContext = await CallPolicy.loadDir(fileURLToPath(new URL('../../../examples/mcp/policies', import.meta.url)), { allContext: true });
const r = [
  await bench('guard overhead per tools/call (Bearer)', N, () => overhead(bearerParts)),
  await bench('guard overhead per tools/call (DPoP)', N, (i) => overhead({ method: 'POST', target: '/mcp', authorization: [`DPoP ${bound}`], dpop: [proofs[i]] })),
  await bench('  of which: cached chain (await authenticate)', N, () => verifier.authenticate(bearerParts)),
  await bench('  of which: readMessage (the body, strictly)', N, () => readMessage(body)),
  await bench('  of which: parseArguments', N, () => parseArguments('{"order":"o-1","amount":40}')),
  await bench('  of which: decision (arguments + Cedar)', N, () => guard.decide(chain, msg)),
  await bench('raw Ed25519 verify (node:crypto, what a proof costs)', N, () => verify(null, rawInput, publicKey, rawSig)),
  await bench('Cedar given the whole context (for comparison)', 50, () =>
    allContext.authorizeMCP({ server: SERVER, method: 'tools/call', name: 'refund_order', chain: { ...chain, bound: false } }, parseArguments('{"order":"o-1","amount":40}'))),
];

const machine = `${os.cpus().length}× ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, load ${os.loadavg()[0].toFixed(2)}`;
if (json) {
  console.log(JSON.stringify({ machine, results: r }, null, 2));
} else {
  console.log(`machine: ${machine}`);
  const fmt = (ns) => (ns >= 1000 ? `${(ns / 1000).toFixed(1)} µs` : `${ns.toFixed(0)} ns`);
  for (const x of r) console.log(`${x.name.padEnd(50)} median ${fmt(x.median_ns).padStart(9)}   (p10 ${fmt(x.p10_ns)}, p90 ${fmt(x.p90_ns)}, ${x.iterations} iterations)`);
  console.log('target: ≤ 200 µs per tools/call (Bearer)');
}
