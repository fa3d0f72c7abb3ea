#!/usr/bin/env node
// Benchmarks of the TypeScript SDK (never asserted by tests): medians of many
// batches, per operation, in one process.
//
//   cd sdk/typescript && npm run build && node bench/bench.mjs [--json]
//
// - raw Ed25519 verify / sign (node:crypto one-shot, a token-sized input): the floors
// - verification of a cached chain (a token seen before): target ≤ 10 µs
// - first verification (cache off: signature, claims, structure, scope,
//   revocation): target within 1.5× one raw Ed25519 verify
// - making a DPoP proof: target ≤ 2× one raw Ed25519 signature
// - verifying a DPoP-bound token with a fresh proof (cached chain + proof)
// - one per-call Cedar decision (the orders API's policy), when cedar-wasm is installed
import { sign, verify } from 'node:crypto';
import os from 'node:os';
import { DPoPKey, KeySet, RevocationSet, Verifier } from '../dist/index.js';
import { NOW, benchAsync, jwk, privateKey, publicKey, token } from './common.mjs';

const json = process.argv.includes('--json');

const holder = DPoPKey.generate();
const claims = {
  iss: 'https://mandate.example', sub: 'orchestrator', sub_iss: 'https://mandate.example', aud: ['https://orders.example'],
  client_id: 'db-agent', scope: 'db:read:orders', iat: NOW - 10, nbf: NOW - 10, exp: NOW + 300, jti: '01JFK3M2X6Y8Z9ABCDEFGHJKMN',
  act: { sub: 'db-agent', act: { sub: 'researcher' } }, lineage: ['01JFK3M2X0000000000000000A', '01JFK3M2X0000000000000000B'],
};
const bearer = token(claims);
const bound = token({ ...claims, jti: '01JFK3M2X6Y8Z9ABCDEFGHJKMP', cnf: { jkt: holder.jkt } });
const signingInput = Buffer.from(bearer.slice(0, bearer.lastIndexOf('.')));
const signature = Buffer.from(bearer.slice(bearer.lastIndexOf('.') + 1), 'base64url');

const cfg = { issuer: 'https://mandate.example', audience: 'https://orders.example', now: () => NOW * 1000, publicUrl: 'https://orders.example' };
const keys = KeySet.fromJWKS({ keys: [jwk] });
const revs = new RevocationSet(Array.from({ length: 1000 }, (_, i) => `revoked-${i}`));
const cached = new Verifier(cfg, keys, revs);
const uncached = new Verifier({ ...cfg, cacheSize: -1 }, keys, revs);
const dpopV = new Verifier({ ...cfg, dpopReplayCacheSize: 1 << 22 }, keys, revs);
const url = 'https://orders.example/orders';

/** Median ns per op over `batches` batches of `n` calls (after a warm-up). */
function bench(name, n, f, batches = 101) {
  let k = 0;
  for (let i = 0; i < n * 5; i++) f(k++);
  const per = [];
  for (let b = 0; b < batches; b++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) f(k++);
    per.push(Number(process.hrtime.bigint() - t0) / n);
  }
  per.sort((a, b) => a - b);
  return { name, median_ns: per[per.length >> 1], p10_ns: per[Math.floor(per.length * 0.1)], p90_ns: per[Math.floor(per.length * 0.9)], iterations: n * batches };
}

/**
 * Several operations measured in alternating batches, so the machine's drift
 * (a shared, noisy host) falls on all of them alike: their ratios are what
 * the targets are about.
 */
function interleaved(n, ops, batches = 151) {
  const ks = ops.map(() => 0);
  ops.forEach(([, f], j) => {
    for (let i = 0; i < n * 5; i++) f(ks[j]++);
  });
  const per = ops.map(() => []);
  for (let b = 0; b < batches; b++) {
    ops.forEach(([, f], j) => {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) f(ks[j]++);
      per[j].push(Number(process.hrtime.bigint() - t0) / n);
    });
  }
  return ops.map(([name], j) => {
    const p = per[j].sort((a, b) => a - b);
    return { name, median_ns: p[p.length >> 1], p10_ns: p[Math.floor(p.length * 0.1)], p90_ns: p[Math.floor(p.length * 0.9)], iterations: n * batches };
  });
}

const r = [];
const proofs = Array.from({ length: 100 * 160 }, () => holder.proof('GET', url, { accessToken: bound, now: NOW }));
r.push(
  ...interleaved(100, [
    ['raw Ed25519 verify (node:crypto)', () => verify(null, signingInput, publicKey, signature)],
    ['verify: first verification (cache off)', () => uncached.verifySync(bearer)],
    ['verifyDPoP: cached chain + fresh proof', (i) => dpopV.verifyDPoPSync(bound, proofs[i], 'GET', url)],
    ['raw Ed25519 sign (node:crypto)', () => sign(null, signingInput, privateKey)],
    ['DPoP proof: make one (EdDSA)', () => holder.proof('GET', url, { accessToken: bound, now: NOW })],
  ]),
);
r.push(bench('verify: cached chain (verifySync)', 20000, () => cached.verifySync(bearer)));
r.push(await benchAsync('verify: cached chain (await verify)', 20000, () => cached.verify(bearer)));

try {
  const { CallPolicy } = await import('../dist/cedar.js');
  const { fileURLToPath } = await import('node:url');
  const p = await CallPolicy.loadDir(fileURLToPath(new URL('../../../testdata/policies/api', import.meta.url)));
  const c = cached.verifySync(bearer);
  r.push(bench('Cedar per-call decision, first for a chain', 20, () => p.authorizeCall({ holder: c.holder, action: 'call', resource: { type: 'Table', id: 'orders' }, subject: c.subject, subjectIssuer: c.subjectIssuer, actors: c.actors, depth: c.depth, scopes: c.scopes, audiences: c.audiences, root: c.root, lineage: c.lineage, bound: false })));
  r.push(bench('Cedar per-call decision, same chain again', 20000, () => p.authorize(c, 'call', { type: 'Table', id: 'orders' })));
} catch (e) {
  r.push({ name: 'Cedar per-call decision', skipped: String(e.message ?? e) });
}

const get = (n) => r.find((x) => x.name.startsWith(n)).median_ns;
const ratios = {
  first_over_raw_verify: get('verify: first') / get('raw Ed25519 verify'),
  proof_over_raw_sign: get('DPoP proof') / get('raw Ed25519 sign'),
  dpop_verify_over_raw_verify: get('verifyDPoP') / get('raw Ed25519 verify'),
};
const machine = `${os.cpus().length}× ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`;
if (json) {
  console.log(JSON.stringify({ machine, results: r, ratios }, null, 2));
} else {
  console.log(`machine: ${machine}`);
  const fmt = (ns) => (ns >= 1000 ? `${(ns / 1000).toFixed(2)} µs` : `${ns.toFixed(0)} ns`);
  for (const x of r) {
    if (x.skipped) console.log(`${x.name.padEnd(44)} skipped (${x.skipped})`);
    else console.log(`${x.name.padEnd(44)} median ${fmt(x.median_ns).padStart(10)}   (p10 ${fmt(x.p10_ns)}, p90 ${fmt(x.p90_ns)}, ${x.iterations} iterations)`);
  }
  console.log(`first verification / raw verify: ${ratios.first_over_raw_verify.toFixed(2)}× (target ≤ 1.5×)`);
  console.log(`DPoP proof / raw sign:           ${ratios.proof_over_raw_sign.toFixed(2)}× (target ≤ 2×)`);
  console.log(`DPoP-bound verify / raw verify:  ${ratios.dpop_verify_over_raw_verify.toFixed(2)}×`);
}
