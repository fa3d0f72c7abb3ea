// The verifier offline (Go's verifier.New) and its middleware on real
// node:http servers bound to 127.0.0.1:0: the answers of RFC 6750 / RFC
// 9449, the cache, DPoP nonces and replay, the public URL, JWKS refresh on an
// unknown kid (rate-limited), and the client's DPoP fetch against them.
import assert from 'node:assert/strict';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import {
  type Chain,
  ConfigError,
  DPoPKey,
  ExpiredError,
  InvalidDPoPProofError,
  InvalidSignatureError,
  KeySet,
  MalformedTokenError,
  RevocationSet,
  RevokedError,
  SenderConstrainedError,
  Token,
  Verifier,
  WrongAudienceError,
  chainOf,
  decodeToken,
} from '../dist/index.js';
import { RemoteKeys } from '../dist/revocation.js';
import { AUDIENCE, ISSUER, claimsAt, signToken, testKey } from './harness.js';

const servers: Array<ReturnType<typeof createServer>> = [];
after(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

/** A node:http server on 127.0.0.1:0 running the middleware list, then a JSON answer with the chain. */
async function serve(mws: Array<(req: IncomingMessage, res: ServerResponse, next: () => void) => void>, final?: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const s = createServer((req, res) => {
    let i = 0;
    const next = (): void => {
      const mw = mws[i++];
      if (mw) mw(req, res, next);
      else if (final) final(req, res);
      else {
        const c = chainOf(req) as Chain;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ holder: c.holder, jti: c.jti }));
      }
    };
    next();
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

describe('Verifier (offline)', () => {
  const key = testKey('k1');
  const es = testKey('k2', 'ES256');
  let now = 1795770000;
  const revs = new RevocationSet();
  const make = (extra: Record<string, unknown> = {}): Verifier =>
    new Verifier({ issuer: ISSUER, audience: AUDIENCE, now: () => now * 1000, ...extra }, KeySet.fromJWKS({ keys: [key.jwk, es.jwk] }), revs);

  it('refuses a configuration that cannot be right', () => {
    assert.throws(() => Verifier.offline({ issuer: ISSUER, audience: '' }, { keys: [key.jwk] }), ConfigError);
    assert.throws(() => Verifier.offline({ issuer: ISSUER, audience: ISSUER + '/' }, { keys: [key.jwk] }), /identity tokens/);
    assert.throws(() => Verifier.offline({ issuer: ISSUER, audience: AUDIENCE, leeway: 61 }, { keys: [key.jwk] }), ConfigError);
    assert.throws(() => Verifier.offline({ issuer: ISSUER, audience: AUDIENCE, publicUrl: 'https://api.example/orders' }, { keys: [key.jwk] }), ConfigError);
    assert.throws(() => KeySet.fromJWKS({ keys: [{ kty: 'oct', k: 'AAAA', kid: 'h' }] }), /no usable/);
  });

  it('verifies EdDSA and ES256 tokens into a chain', () => {
    const v = make();
    for (const k of [key, es]) {
      const c = v.verifySync(signToken(k, claimsAt(now, { jti: `j-${k.kid}` })));
      assert.equal(c.holder, 'db-agent');
      assert.equal(c.subject, 'orchestrator');
      assert.equal(c.subjectIssuer, ISSUER);
      assert.deepEqual(c.actors, ['db-agent', 'researcher']);
      assert.deepEqual(c.lineage, ['root-1', 'child-1']);
      assert.equal(c.root, 'root-1');
      assert.equal(c.depth, 2);
      assert.deepEqual(c.scopes, ['db:read:orders']);
      assert.ok(Object.isFrozen(c));
    }
  });

  it('the key fixes the algorithm: none, HS256 and a foreign alg are invalid_signature', () => {
    const v = make();
    const t = signToken(key, claimsAt(now));
    const [, p] = t.split('.');
    for (const alg of ['none', 'HS256', 'ES256', 'RS256']) {
      const h = Buffer.from(JSON.stringify({ alg, kid: 'k1', typ: 'at+jwt' })).toString('base64url');
      assert.throws(() => v.verifySync(`${h}.${p}.${t.split('.')[2]}`), InvalidSignatureError, alg);
    }
  });

  it('serves repeated tokens from the cache, but checks revocation and expiry every time', () => {
    const revs = new RevocationSet();
    const v = new Verifier({ issuer: ISSUER, audience: AUDIENCE, now: () => now * 1000 }, KeySet.fromJWKS({ keys: [key.jwk] }), revs);
    const jti = 'cache-1';
    const t = signToken(key, claimsAt(now, { jti, exp: now + 60 }));
    v.verifySync(t);
    assert.equal(v.cacheStats().entries, 1);
    assert.equal(v.verifySync(t).jti, jti);
    revs.add('child-1'); // its parent
    assert.throws(() => v.verifySync(t), (e: unknown) => e instanceof RevokedError && e.ancestor && e.jti === 'child-1');
    const t2 = signToken(key, claimsAt(now, { jti: 'cache-2', lineage: ['root-2'], act: { sub: 'db-agent' }, exp: now + 60 }));
    v.verifySync(t2);
    const saved = now;
    now += 66; // past exp + leeway
    assert.throws(() => v.verifySync(t2), ExpiredError);
    now = saved;
  });

  it('a bound token is never a bearer token; with its proof it is accepted once', () => {
    const holder = DPoPKey.generate('ES256');
    const v = make({ publicUrl: 'https://api.example' });
    const t = signToken(key, claimsAt(now, { jti: 'bound-1', lineage: ['r9'], act: { sub: 'db-agent' }, cnf: { jkt: holder.jkt } }));
    assert.throws(() => v.verifySync(t), SenderConstrainedError);
    const url = 'https://api.example/orders';
    const p = holder.proof('GET', url, { accessToken: t, now });
    assert.equal(v.verifyDPoPSync(t, p, 'GET', url).jkt, holder.jkt);
    assert.throws(() => v.verifyDPoPSync(t, p, 'GET', url), /replayed/);
    const other = DPoPKey.generate();
    assert.throws(() => v.verifyDPoPSync(t, other.proof('GET', url, { accessToken: t, now }), 'GET', url), InvalidDPoPProofError);
    const bearer = signToken(key, claimsAt(now, { jti: 'plain-1' }));
    assert.throws(() => v.verifyDPoPSync(bearer, holder.proof('GET', url, { accessToken: bearer, now }), 'GET', url), /not bound/);
  });

  it('the middleware answers RFC 6750 / RFC 9449 and puts the chain on the request', async () => {
    const v = make({ realm: 'orders' });
    const base = await serve([v.middleware(), v.requireScope('db:read:orders')]);
    const t = signToken(key, claimsAt(now, { jti: 'mw-1' }));

    const ok = await fetch(`${base}/orders`, { headers: { authorization: `Bearer ${t}` } });
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { holder: 'db-agent', jti: 'mw-1' });
    const lower = await fetch(`${base}/orders`, { headers: { authorization: `bearer ${t}` } });
    assert.equal(lower.status, 200);

    const none = await fetch(`${base}/orders`);
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="orders", DPoP realm="orders", algs="EdDSA ES256 ES384 ES512 PS256 PS384 PS512 RS256 RS384 RS512"');
    const basic = await fetch(`${base}/orders`, { headers: { authorization: 'Basic Zm9vOmJhcg==' } });
    assert.equal(basic.status, 401);

    const bad = await fetch(`${base}/orders`, { headers: { authorization: 'Bearer a b' } });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: string }).error, 'invalid_request');

    const expired = await fetch(`${base}/orders`, { headers: { authorization: `Bearer ${signToken(key, claimsAt(now, { exp: now - 60 }))}` } });
    assert.equal(expired.status, 401);
    const www = expired.headers.get('www-authenticate') ?? '';
    assert.match(www, /^Bearer realm="orders", error="invalid_token", error_description="token has expired"/);
    assert.match(www, /DPoP realm="orders", error="invalid_token"/);
    assert.equal(expired.headers.get('cache-control'), 'no-store');

    const narrow = await fetch(`${base}/orders`, { headers: { authorization: `Bearer ${signToken(key, claimsAt(now, { scope: 'tools:search' }))}` } });
    assert.equal(narrow.status, 403);
    assert.deepEqual(await narrow.json(), { error: 'insufficient_scope', scope: 'db:read:orders' });
    assert.match(narrow.headers.get('www-authenticate') ?? '', /error="insufficient_scope".*scope="db:read:orders"/);

    // Two Authorization headers: refused, not resolved in either's favour.
    const res = await new Promise<number>((resolve, reject) => {
      import('node:http').then(({ request }) => {
        const u = new URL(`${base}/orders`);
        const r = request({ host: u.hostname, port: u.port, path: '/orders', headers: [['Authorization', `Bearer ${t}`], ['Authorization', `Bearer ${t}`]] as unknown as Record<string, string> }, (resp) => {
          resp.resume();
          resolve(resp.statusCode ?? 0);
        });
        r.on('error', reject);
        r.end();
      }, reject);
    });
    assert.equal(res, 400);
  });

  it('DPoP at the middleware: htu is the public URL plus the path the client sent, never the Host header', async () => {
    const holder = DPoPKey.generate();
    const t = signToken(key, claimsAt(now, { jti: 'mw-dpop', lineage: ['r5'], act: { sub: 'db-agent' }, cnf: { jkt: holder.jkt } }));
    // No public URL: bound tokens are refused, saying why.
    const noURL = make();
    const b1 = await serve([noURL.middleware()]);
    const r1 = await fetch(`${b1}/orders`, { headers: { authorization: `DPoP ${t}`, dpop: holder.proof('GET', `${b1}/orders`, { accessToken: t, now }) } });
    assert.equal(r1.status, 401);
    assert.match(((await r1.json()) as { error_description: string }).error_description, /no publicUrl/);

    const publicUrl = 'https://orders.example';
    const v = make({ publicUrl });
    const b2 = await serve([v.middleware()]);
    // A proof for the address the request went to (the Host) is refused: the public URL is what counts.
    const r2 = await fetch(`${b2}/orders`, { headers: { authorization: `DPoP ${t}`, dpop: holder.proof('GET', `${b2}/orders`, { accessToken: t, now }) } });
    assert.equal(r2.status, 401);
    assert.equal(((await r2.json()) as { error: string }).error, 'invalid_dpop_proof');
    assert.match(r2.headers.get('www-authenticate') ?? '', /^DPoP error="invalid_dpop_proof"/);
    // The proof for the public URL and path (query ignored) is accepted.
    const tok = new Token({ value: t, type: 'DPoP', expiresAt: new Date((now + 300) * 1000), key: holder, now: () => now * 1000 });
    const r3 = await fetch(`${b2}/orders?x=1`, { headers: tok.authorize('GET', `${publicUrl}/orders?x=1`) });
    assert.equal(r3.status, 200, await r3.clone().text());
    // Sent as Bearer, it is refused as sender-constrained.
    const r4 = await fetch(`${b2}/orders`, { headers: { authorization: `Bearer ${t}` } });
    assert.equal(r4.status, 401);
    assert.match(r4.headers.get('www-authenticate') ?? '', /sender-constrained/);
    // Two DPoP headers: refused.
    const r5 = await fetch(`${b2}/orders`, { headers: [['authorization', `DPoP ${t}`], ['dpop', 'a.b.c'], ['dpop', 'd.e.f']] });
    assert.equal(r5.status, 401);
  });

  it('DPoP nonces: the first call gets use_dpop_nonce, the client retries once with it', async () => {
    const holder = DPoPKey.generate();
    const publicUrl = 'https://orders.example';
    const v = make({ publicUrl, dpopNonce: true });
    let calls = 0;
    const base = await serve([
      (_req, _res, next) => {
        calls++;
        next();
      },
      v.middleware(),
    ]);
    const t = signToken(key, claimsAt(now, { jti: 'nonce-1', lineage: ['r6'], act: { sub: 'db-agent' }, cnf: { jkt: holder.jkt } }));
    // The Token's fetch addresses the real socket; its proofs must name the public URL, so route through a fetch that rewrites.
    const viaSocket = (u: string | URL | Request, init?: RequestInit): Promise<Response> => fetch(String(u).replace(publicUrl, base), init);
    const tok = new Token({ value: t, type: 'DPoP', expiresAt: new Date((now + 300) * 1000), key: holder, now: () => now * 1000, fetch: viaSocket });
    const r = await tok.fetch(`${publicUrl}/orders`);
    assert.equal(r.status, 200, await r.clone().text());
    assert.equal(calls, 2, 'one retry with the nonce');
    const first = await fetch(`${base}/orders`, { headers: tok.authorize('GET', `${publicUrl}/orders`) });
    assert.equal(first.status, 401);
    assert.equal(((await first.json()) as { error: string }).error, 'use_dpop_nonce');
    assert.equal(first.headers.get('dpop-nonce'), v.dpopNonce());
  });

  it('redirects are returned, never followed with the token', async () => {
    let leaked = 0;
    const elsewhere = await serve([], (req, res) => {
      if (req.headers.authorization) leaked++;
      res.end('x');
    });
    const base = await serve([], (_req, res) => {
      res.statusCode = 302;
      res.setHeader('location', `${elsewhere}/steal`);
      res.end();
    });
    const tok = new Token({ value: signToken(key, claimsAt(now)), type: 'Bearer', expiresAt: new Date((now + 300) * 1000) });
    const r = await tok.fetch(`${base}/orders`);
    assert.equal(r.status, 302);
    assert.equal(leaked, 0);
  });

  it('the fetch-style wrapper answers like the middleware', async () => {
    const v = make();
    const h = v.protect(async (_req, c) => Response.json({ holder: c.holder }), { scopes: ['db:read:orders'] });
    const t = signToken(key, claimsAt(now, { jti: 'fetch-1' }));
    assert.equal((await h(new Request('http://x/orders', { headers: { authorization: `Bearer ${t}` } }))).status, 200);
    const wrong = await h(new Request('http://x/orders', { headers: { authorization: `Bearer ${signToken(key, claimsAt(now, { aud: ['https://other.example'] }))}` } }));
    assert.equal(wrong.status, 401);
    await assert.rejects(v.verify(signToken(key, claimsAt(now, { aud: 'https://other.example' }))), WrongAudienceError);
  });

  it('a Token never shows its value in its string forms', () => {
    const value = signToken(key, claimsAt(now));
    const tok = new Token({ value, type: 'Bearer', expiresAt: new Date((now + 300) * 1000) });
    assert.ok(!String(tok).includes(value));
    assert.ok(!JSON.stringify(tok).includes(value));
    assert.ok(!JSON.stringify({ tok }).includes(value.slice(0, 20)));
    assert.equal(decodeToken(value).holder, 'db-agent');
    assert.throws(() => decodeToken('nope'), MalformedTokenError);
  });
});

describe('RemoteKeys (the JWKS, followed)', () => {
  it('refetches on an unknown kid at most once per interval, and withdraws compromised keys at once', async () => {
    const k1 = testKey('k1');
    const k2 = testKey('k2');
    let published = [k1.jwk];
    let fetches = 0;
    const base = await serve([], (_req, res) => {
      fetches++;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: published }));
    });
    let nowMs = 1_000_000;
    const keys = new RemoteKeys(`${base}/jwks`, fetch, () => nowMs, 10_000, 300_000);
    await keys.start();
    const v = new Verifier({ issuer: ISSUER, audience: AUDIENCE, now: () => 1795770000 * 1000 }, keys, new RevocationSet());
    const t1 = signToken(k1, claimsAt(1795770000, { jti: 'rk-1' }));
    const t2 = signToken(k2, claimsAt(1795770000, { jti: 'rk-2' }));
    await v.verify(t1);
    assert.equal(fetches, 1);
    // Within the interval after the first fetch, an unknown kid fetches nothing.
    await assert.rejects(v.verify(t2), InvalidSignatureError);
    assert.equal(fetches, 1);
    nowMs += 10_000;
    // k2 is not published yet: one refetch, then none within the interval.
    await assert.rejects(v.verify(t2), InvalidSignatureError);
    await assert.rejects(v.verify(t2), InvalidSignatureError);
    assert.equal(fetches, 2);
    published = [k1.jwk, k2.jwk];
    await assert.rejects(v.verify(t2), InvalidSignatureError);
    assert.equal(fetches, 2, 'rate-limited');
    nowMs += 10_000;
    assert.equal((await v.verify(t2)).jti, 'rk-2');
    assert.equal(fetches, 3);
    // The feed names k1 compromised: dropped at once, cached verifications too.
    keys.revoke(['k1']);
    await assert.rejects(v.verify(t1), InvalidSignatureError);
    assert.equal((await v.verify(t2)).jti, 'rk-2');
  });
});
