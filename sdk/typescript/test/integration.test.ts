// Against the real server: the demo's story in TypeScript. A real `mandate
// serve` (built from this checkout) on loopback with a throw-away store and
// the demo's policies; a resource server on node:http (127.0.0.1:0) that
// verifies every call locally with this SDK's Verifier, middleware and Cedar
// call policy. Mint, delegate twice with narrowing, an ephemeral agent, a
// protected call, a leaked bound token refused, the root revoked and the
// calls refused within a second.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  type Chain,
  DPoPKey,
  InvalidSignatureError,
  MandateClient,
  OAuthError,
  ProtocolError,
  StaleRevocationsError,
  Verifier,
  chainOf,
} from '../dist/index.js';
import { Authorizer, CallPolicy } from '../dist/cedar.js';
import { REPO_DIR, type Server, mandateBin, startServer } from './harness.js';

const ORDERS = 'https://orders.example';
const SEARCH = 'https://search.example';

const keyedPriv = generateKeyPairSync('ed25519').privateKey;
const keyedJWKS = JSON.stringify({
  keys: [{ ...(keyedPriv.export({ format: 'jwk' }) as Record<string, string>), d: undefined, kid: 'keyed-1', alg: 'EdDSA', use: 'sig' }],
});

const CONFIG = `
policy: {dir: ${join(REPO_DIR, 'testdata', 'policies')}}
clients:
  - id: ops
    secret: ops-secret
    role: admin
  - id: orchestrator
    secret: "orch secret+/%&é"
    grants: [client_credentials, token_exchange]
    scopes: ["db:read:*", "db:write:*", "tools:*"]
    audiences: ["${ORDERS}", "${SEARCH}"]
    groups: [orchestrators]
    ephemeral:
      scopes: ["db:read:*"]
      audiences: ["${ORDERS}"]
      groups: [research-agents]
  - id: researcher
    secret: res-secret
    grants: [client_credentials, token_exchange]
    scopes: ["db:read:*", "tools:search"]
    audiences: ["${ORDERS}", "${SEARCH}"]
    groups: [research-agents]
  - id: db-agent
    secret: dba-secret
    grants: [client_credentials, token_exchange]
    scopes: ["db:read:*", "tools:search"]
    audiences: ["${ORDERS}"]
  - id: keyed
    jwks_file: keyed-jwks.json
    grants: [client_credentials]
    scopes: ["db:read:*"]
    audiences: ["${ORDERS}"]
  - id: orders-api
    secret: api-secret
    role: resource_server
`;

describe('against a real mandate serve', () => {
  let srv: Server;
  let verifier: Verifier;
  let api: ReturnType<typeof createServer>;
  let apiURL: string;
  let orch: MandateClient;
  let res: MandateClient;
  let dba: MandateClient;
  const seen: Chain[] = [];

  before(async () => {
    srv = await startServer(CONFIG, { 'keyed-jwks.json': keyedJWKS });
    // The resource server: listen first (its public URL is its address), then verify.
    api = createServer();
    await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
    apiURL = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
    verifier = await Verifier.discover({
      issuer: srv.issuer,
      audience: ORDERS,
      clientId: 'orders-api',
      clientSecret: 'api-secret',
      publicUrl: apiURL,
    });
    const calls = await CallPolicy.loadDir(join(REPO_DIR, 'testdata', 'policies', 'api'));
    const az = new Authorizer(verifier, calls);
    const chainMw = [verifier.middleware(), verifier.requireScope('db:read:orders'), az.require('call', { type: 'Table', id: 'orders' })];
    api.on('request', (req: IncomingMessage, resp: ServerResponse) => {
      let i = 0;
      const next = (): void => {
        const mw = chainMw[i++];
        if (mw) {
          mw(req, resp, next);
          return;
        }
        const c = chainOf(req)!;
        seen.push(c);
        resp.setHeader('content-type', 'application/json');
        resp.end(JSON.stringify({ holder: c.holder, subject: c.subject, depth: c.depth, actors: c.actors }));
      };
      next();
    });
    orch = await MandateClient.discover(srv.issuer, { clientId: 'orchestrator', clientSecret: 'orch secret+/%&é', dpopKey: DPoPKey.generate() });
    res = await MandateClient.discover(srv.issuer, { clientId: 'researcher', clientSecret: 'res-secret', dpopKey: DPoPKey.generate('ES256') });
    dba = await MandateClient.discover(srv.issuer, { clientId: 'db-agent', clientSecret: 'dba-secret', dpopKey: DPoPKey.generate() });
  });

  after(async () => {
    await verifier?.close();
    api?.closeAllConnections();
    await new Promise<void>((r) => (api ? api.close(() => r()) : r()));
    await srv?.stop();
  });

  it('discovery checks the issuer (RFC 8414 §3.3)', async () => {
    await assert.rejects(MandateClient.discover(srv.issuer + '/', { clientId: 'orchestrator', clientSecret: 'x' }), ProtocolError);
    assert.equal(orch.metadata.issuer, srv.issuer);
  });

  it('discovery refuses endpoints off the issuer\'s origin (credentials go only to the server discovered)', async () => {
    for (const key of ['token_endpoint', 'revocation_endpoint']) {
      const seen: string[] = [];
      const fetchFn = async (url: string | URL | Request): Promise<Response> => {
        seen.push(String(url));
        return Response.json({ issuer: 'https://mandate.example', token_endpoint: 'https://mandate.example/oauth2/token',
          revocation_endpoint: 'https://mandate.example/oauth2/revoke', [key]: 'https://evil.example/steal' });
      };
      await assert.rejects(MandateClient.discover('https://mandate.example', { clientId: 'o', clientSecret: 'x', fetch: fetchFn }),
        (e: unknown) => e instanceof ProtocolError && /not on the issuer's origin/.test(e.message));
      assert.deepEqual(seen, ['https://mandate.example/.well-known/oauth-authorization-server']);
    }
  });

  it('the whole story: mint, delegate twice with narrowing, an ephemeral agent, protected calls, a leaked token, revoke the root', async () => {
    // Mint: a root bound to the orchestrator's key.
    const root = await orch.mint();
    assert.equal(root.type, 'DPoP');
    const rv = root.decode();
    assert.equal(rv.holder, 'orchestrator');
    assert.deepEqual(rv.lineage, []);
    assert.equal(rv.jkt, orch.dpopKey!.jkt);

    // Delegate to the researcher (its identity token names it), narrowing to db:read:*.
    const resID = await res.identity();
    assert.deepEqual(resID.scopes, []);
    assert.deepEqual(resID.decode().audiences, [srv.issuer]);
    const child = await orch.exchange(root, { actor: resID, scope: 'db:read:*' });
    assert.equal(child.key, null, 'the child is bound to the researcher, whose key is not here');
    const cv = child.decode();
    assert.equal(cv.holder, 'researcher');
    assert.deepEqual(cv.actors, ['researcher']);
    assert.deepEqual(cv.lineage, [rv.jti]);
    assert.deepEqual(cv.scopes, ['db:read:*']);
    assert.equal(cv.jkt, res.dpopKey!.jkt);

    // The researcher delegates on to the db-agent: db:read:orders at the orders API.
    const dbaID = await dba.identity();
    const grand = await res.exchange(res.adopt(child.value), { actor: dbaID, scope: 'db:read:orders', audience: ORDERS });
    const gv = grand.decode();
    assert.equal(gv.holder, 'db-agent');
    assert.deepEqual(gv.actors, ['db-agent', 'researcher']);
    assert.deepEqual(gv.lineage, [rv.jti, cv.jti]);
    assert.deepEqual(gv.scopes, ['db:read:orders']);
    assert.deepEqual(gv.audiences, [ORDERS]);
    assert.equal(gv.sub, 'orchestrator');
    assert.equal(gv.subIss, srv.issuer);
    assert.ok(gv.expiresAt!.getTime() <= rv.expiresAt!.getTime());

    // Widening is refused by Mandate with the OAuth error.
    const widen = await res.exchange(res.adopt(child.value), { scope: 'db:write:orders' }).catch((e: unknown) => e);
    assert.ok(widen instanceof OAuthError, String(widen));
    assert.equal(widen.error, 'invalid_scope');
    assert.equal(widen.status, 400);
    assert.ok(widen.error_description.length > 0);

    // The db-agent calls the orders API: verified locally, scope and Cedar policy checked.
    const mine = dba.adopt(grand.value);
    const ok = await mine.fetch(`${apiURL}/orders?limit=3`);
    assert.equal(ok.status, 200, await ok.clone().text());
    assert.deepEqual(await ok.json(), { holder: 'db-agent', subject: 'orchestrator', depth: 2, actors: ['db-agent', 'researcher'] });

    // An ephemeral agent: a fresh key and its agent+jwt; the child is bound to the agent's key.
    const agent = orch.spawnAgent('summarizer-7f3a');
    const eph = await orch.delegateToAgent(root, agent, { scope: 'db:read:orders', audience: ORDERS });
    assert.equal(eph.type, 'DPoP');
    assert.equal(eph.decode().holder, 'orchestrator/summarizer-7f3a');
    assert.equal(eph.decode().jkt, agent.key.jkt);
    const byAgent = await agent.adopt(eph.value).fetch(`${apiURL}/orders`);
    assert.equal(byAgent.status, 200, await byAgent.clone().text());

    // A leaked bound token is useless: as a bearer token, with a thief's proof, or at Mandate.
    const asBearer = await fetch(`${apiURL}/orders`, { headers: { authorization: `Bearer ${grand.value}` } });
    assert.equal(asBearer.status, 401);
    assert.match(asBearer.headers.get('www-authenticate') ?? '', /sender-constrained/);
    const thiefKey = DPoPKey.generate();
    const stolen = await fetch(`${apiURL}/orders`, {
      headers: { authorization: `DPoP ${grand.value}`, dpop: thiefKey.proof('GET', `${apiURL}/orders`, { accessToken: grand.value }) },
    });
    assert.equal(stolen.status, 401);
    assert.equal(((await stolen.json()) as { error: string }).error, 'invalid_dpop_proof');
    const thief = await MandateClient.discover(srv.issuer, { clientId: 'researcher', clientSecret: 'res-secret', dpopKey: thiefKey });
    const laundered = await thief.exchange(thief.adopt(grand.value), { scope: 'db:read:orders' }).catch((e: unknown) => e);
    assert.ok(laundered instanceof OAuthError, String(laundered));

    // A token for another audience, and one without the scope.
    const search = await orch.mint({ scope: 'tools:search', audience: SEARCH });
    const wrongAud = await search.fetch(`${apiURL}/orders`);
    assert.equal(wrongAud.status, 401);
    assert.match(wrongAud.headers.get('www-authenticate') ?? '', /audience/);
    const noScope = await orch.mint({ scope: 'tools:search', audience: ORDERS });
    const forbidden = await noScope.fetch(`${apiURL}/orders`);
    assert.equal(forbidden.status, 403);
    assert.deepEqual(await forbidden.json(), { error: 'insufficient_scope', scope: 'db:read:orders' });

    // Revoke the root: every descendant is refused within a second, the ephemeral agent's too.
    await orch.revoke(root);
    assert.ok(await verifier.feed!.waitUntil(() => verifier.revoked(rv.jti), 1000), 'the verifier did not hear of the revocation within a second');
    const refused = await mine.fetch(`${apiURL}/orders`);
    assert.equal(refused.status, 401);
    assert.match(refused.headers.get('www-authenticate') ?? '', /revoked/);
    const refusedEph = await agent.adopt(eph.value).fetch(`${apiURL}/orders`);
    assert.equal(refusedEph.status, 401);
    await assert.rejects(verifier.verifyDPoP(grand.value, dba.dpopKey!.proof('GET', `${apiURL}/orders`, { accessToken: grand.value }), 'GET', `${apiURL}/orders`), {
      name: 'RevokedError',
      ancestor: true,
      jti: rv.jti,
    });
    // ...and Mandate refuses to exchange it.
    const afterRevoke = await res.exchange(res.adopt(child.value), { scope: 'db:read:orders' }).catch((e: unknown) => e);
    assert.ok(afterRevoke instanceof OAuthError);
    assert.equal(afterRevoke.error, 'invalid_request');
  });

  it('a fetch-style handler verifies the same way', async () => {
    const h = verifier.protect(async (_req, c) => Response.json({ holder: c.holder }), { scopes: ['db:read:orders'] });
    const t = await orch.mint({ scope: 'db:read:orders', audience: ORDERS });
    const url = `${apiURL}/orders`;
    const r = await h(new Request(url, { headers: t.authorize('GET', url) }));
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { holder: 'orchestrator' });
    const none = await h(new Request(url));
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer, DPoP algs="EdDSA ES256 ES384 ES512 PS256 PS384 PS512 RS256 RS384 RS512"');
  });

  it('bearer tokens for a client without a key, and the bearer token verified', async () => {
    const plain = await MandateClient.discover(srv.issuer, { clientId: 'db-agent', clientSecret: 'dba-secret' });
    const t = await plain.mint({ scope: 'db:read:*' });
    assert.equal(t.type, 'Bearer');
    const c = await verifier.verify(t.value);
    assert.equal(c.holder, 'db-agent');
    assert.deepEqual(c.scopes, ['db:read:*']);
    await plain.revoke(t);
    assert.ok(await verifier.feed!.waitUntil(() => verifier.revoked(c.jti), 1000));
    await assert.rejects(verifier.verify(t.value), { name: 'RevokedError', ancestor: false });
  });

  it('private_key_jwt: a client authenticates with its key, and a wrong key is invalid_client', async () => {
    const keyed = await MandateClient.discover(srv.issuer, { clientId: 'keyed', privateKey: { key: keyedPriv, kid: 'keyed-1' } });
    const t = await keyed.mint({ scope: 'db:read:orders' });
    assert.equal(t.decode().holder, 'keyed');
    const jwk = keyedPriv.export({ format: 'jwk' });
    const viaJWK = await MandateClient.discover(srv.issuer, { clientId: 'keyed', privateKey: { key: jwk, kid: 'keyed-1' } });
    assert.equal((await viaJWK.mint()).decode().holder, 'keyed');
    const impostor = await MandateClient.discover(srv.issuer, {
      clientId: 'keyed',
      privateKey: { key: generateKeyPairSync('ed25519').privateKey, kid: 'keyed-1' },
    });
    const err = await impostor.mint().catch((e: unknown) => e);
    assert.ok(err instanceof OAuthError, String(err));
    assert.equal(err.error, 'invalid_client');
    assert.equal(err.status, 401);
  });

  it('bad credentials are an OAuthError that names no secret', async () => {
    const bad = await MandateClient.discover(srv.issuer, { clientId: 'orchestrator', clientSecret: 'not-the-secret' });
    const err = await bad.mint().catch((e: unknown) => e);
    assert.ok(err instanceof OAuthError);
    assert.equal(err.error, 'invalid_client');
    assert.ok(!String(err.message).includes('not-the-secret'));
  });

  it('fails closed when the feed goes quiet past the staleness bound (503 at the middleware)', async () => {
    let now = Date.now();
    const v = await Verifier.discover({
      issuer: srv.issuer,
      audience: ORDERS,
      clientId: 'orders-api',
      clientSecret: 'api-secret',
      now: () => now,
      maxStaleness: 30,
    });
    const plain = await MandateClient.discover(srv.issuer, { clientId: 'db-agent', clientSecret: 'dba-secret' });
    const t = await plain.mint({ scope: 'db:read:*' });
    assert.equal((await v.verify(t.value)).holder, 'db-agent');
    await v.close(); // no more syncs
    now += 31_000;
    await assert.rejects(v.verify(t.value), StaleRevocationsError);
    const r = await v.protect(async () => new Response('no'))(new Request('http://x/', { headers: { authorization: `Bearer ${t.value}` } }));
    assert.equal(r.status, 503);
    assert.equal(r.headers.get('retry-after'), '1');
  });

  it('the feed refuses credentials that are not a resource server\'s', async () => {
    await assert.rejects(
      Verifier.discover({ issuer: srv.issuer, audience: ORDERS, clientId: 'orders-api', clientSecret: 'wrong' }),
      { name: 'FeedCredentialsError' },
    );
  });

  // Last: it withdraws the signing key every earlier test's tokens carry.
  it('an emergency key rotation: the feed names the key, the verifier drops it at once and fetches the new one', async () => {
    const plain = await MandateClient.discover(srv.issuer, { clientId: 'db-agent', clientSecret: 'dba-secret' });
    const old = await plain.mint({ scope: 'db:read:*' });
    assert.equal((await verifier.verify(old.value)).holder, 'db-agent');
    const r = spawnSync(mandateBin(), ['keys', 'rotate', '--compromised', '--reason', 'sdk test: a leaked key'], {
      encoding: 'utf8',
      env: { ...process.env, MANDATE_SERVER: srv.issuer, MANDATE_CLIENT_ID: 'ops', MANDATE_CLIENT_SECRET: 'ops-secret' },
    });
    assert.equal(r.status, 0, r.stderr);
    const refused = (): boolean => {
      try {
        verifier.verifySync(old.value);
        return false;
      } catch (e) {
        return e instanceof InvalidSignatureError;
      }
    };
    assert.ok(await verifier.feed!.waitUntil(refused, 2000), 'the old key was not dropped');
    const fresh = await plain.mint({ scope: 'db:read:*' });
    assert.equal((await verifier.verify(fresh.value)).holder, 'db-agent');
  });
});
