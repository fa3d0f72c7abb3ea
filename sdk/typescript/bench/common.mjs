// What the benchmarks share (bench.mjs, mcp.mjs): the clock they read, an
// Ed25519 signing key with its JWKS entry, access tokens signed with it, and
// the timing loop of an asynchronous operation.
import { generateKeyPairSync, sign } from 'node:crypto';

export const NOW = 1795770000;
const b64 = (s) => Buffer.from(s).toString('base64url');

export const { privateKey, publicKey } = generateKeyPairSync('ed25519');
export const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'bench', alg: 'EdDSA', use: 'sig' };

/** An at+jwt of these claims, signed with the key (kid "bench"). */
export function token(claims) {
  const input = `${b64(JSON.stringify({ alg: 'EdDSA', kid: 'bench', typ: 'at+jwt' }))}.${b64(JSON.stringify(claims))}`;
  return `${input}.${sign(null, Buffer.from(input), privateKey).toString('base64url')}`;
}

/** Median ns per awaited call over `batches` batches of `n` calls, after a warm-up of `warm` × n calls. */
export async function benchAsync(name, n, f, batches = 101, warm = 5) {
  let k = 0;
  for (let i = 0; i < n * warm; i++) await f(k++);
  const per = [];
  for (let b = 0; b < batches; b++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await f(k++);
    per.push(Number(process.hrtime.bigint() - t0) / n);
  }
  per.sort((a, b) => a - b);
  return { name, median_ns: per[per.length >> 1], p10_ns: per[Math.floor(per.length * 0.1)], p90_ns: per[Math.floor(per.length * 0.9)], iterations: n * batches };
}
