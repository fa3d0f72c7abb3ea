// Identity without static secrets, against a real `mandate serve`: a
// workload holding a Kubernetes projected service-account token (signed here
// with a test ES256 key whose JWKS is the workload issuer's jwks_file) mints
// its root with the JWT bearer grant (RFC 7523 §2.1) and authenticates every
// other request with the same token as its client_assertion (§2.2); the
// token file is re-read at every request, so a rotation is followed. And a
// registered client redeems an enterprise IdP's ID-JAG for a root on behalf
// of the user. Refusals are MandateErrors that never carry the platform token.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  DPoPKey,
  GRANT_JWT_BEARER,
  type FetchLike,
  MandateClient,
  MandateError,
  OAuthError,
  ProtocolError,
  type Token,
} from '../dist/index.js';
import { type Server, type TestKey, signToken, startServer, testKey } from './harness.js';

const K8S = 'https://kubernetes.default.svc.cluster.local';
const IDP = 'https://login.acme.example';
const ORDERS = 'https://orders.example';
const MAIL = 'https://mail.example';
const MCP = 'https://mcp.example/mcp';

/** A JWKS file's text: the key's public half. */
const jwks = (k: TestKey): string => JSON.stringify({ keys: [k.jwk] });

// (A registered client must have a credential of its own, secret or
// jwks_file, even when only its workload token is ever used.)
const CONFIG = `
clients:
  - id: orchestrator
    secret: orch-secret
    grants: [client_credentials, token_exchange]
    scopes: ["db:read:*", "db:write:*", "tools:*"]
    audiences: ["${ORDERS}", "${MCP}"]
  - id: ops-orchestrator
    secret: never-used-here
    grants: [jwt_bearer, token_exchange]
    scopes: ["db:read:*"]
    audiences: ["${ORDERS}"]
    ephemeral: {scopes: ["db:read:*"], audiences: ["${ORDERS}"]}
  - id: orders-mcp
    secret: never-used-here-either
    grants: [token_exchange]
    serves: ["${MCP}"]
    scopes: ["db:read:*"]
    audiences: ["${ORDERS}"]
  - id: portal
    secret: portal-secret
    grants: [jwt_bearer, token_exchange]
    scopes: ["db:read:*", "mail:send"]
    audiences: ["${ORDERS}", "${MAIL}"]
workload_issuers:
  - issuer: ${K8S}
    jwks_file: ./k8s-jwks.json
    rules:
      - match: {sub: "system:serviceaccount:ops:orchestrator"}
        client: ops-orchestrator
      - match: {sub: "system:serviceaccount:mcp:orders-mcp"}
        client: orders-mcp
      - match: {sub: "system:serviceaccount:agents:*"}
        agent: "k8s/{kubernetes.io.namespace}/{kubernetes.io.serviceaccount.name}"
        scopes: ["db:read:*", "db:write:*"]
        audiences: ["${ORDERS}"]
id_jag_issuers:
  - issuer: ${IDP}
    jwks_file: ./idp-jwks.json
`;

describe('workload identity and ID-JAGs against a real mandate serve', () => {
  let srv: Server;
  let k8s: TestKey;
  let idp: TestKey;
  let stranger: TestKey; // the same kid as the cluster's, another key
  const dir = mkdtempSync(join(tmpdir(), 'mandate-workload-'));
  const tokenFile = join(dir, 'mandate-token');

  const nowS = (): number => Math.floor(Date.now() / 1000);

  /** A projected service-account token of namespace ns, service account sa, for Mandate's audience (edit changes claims). */
  function saToken(ns: string, sa: string, edit: (c: Record<string, unknown>) => void = () => {}, by: TestKey = k8s): string {
    const now = nowS();
    const claims: Record<string, unknown> = {
      iss: K8S,
      sub: `system:serviceaccount:${ns}:${sa}`,
      aud: [srv.issuer],
      iat: now,
      nbf: now,
      exp: now + 3600,
      jti: randomBytes(8).toString('hex'),
      'kubernetes.io': {
        namespace: ns,
        pod: { name: `${sa}-5d9c7b-x2x4z`, uid: 'a1b2c3d4-0000-4000-8000-000000000001' },
        serviceaccount: { name: sa, uid: 'c3d4e5f6-0000-4000-8000-000000000002' },
      },
    };
    edit(claims);
    return signToken(by, claims, { typ: undefined });
  }

  /** An ID-JAG the enterprise IdP made for client, for Alice. */
  function idJag(client: string, edit: (c: Record<string, unknown>) => void = () => {}): string {
    const now = nowS();
    const claims: Record<string, unknown> = {
      iss: IDP,
      sub: 'alice@acme.example',
      aud: srv.issuer,
      client_id: client,
      jti: randomBytes(8).toString('hex'),
      iat: now,
      exp: now + 300,
      scope: 'db:read:orders mail:send',
      resource: ORDERS,
      email: 'alice@acme.example',
    };
    edit(claims);
    return signToken(idp, claims, { typ: 'oauth-id-jag+jwt' });
  }

  function writeToken(token: string, file = tokenFile): void {
    writeFileSync(file, token, { mode: 0o600 });
  }

  /** What the client sent: each request's URL, headers and form. */
  function recorder(): { fetch: FetchLike; sent: { url: string; headers: Headers; form: URLSearchParams }[] } {
    const sent: { url: string; headers: Headers; form: URLSearchParams }[] = [];
    return {
      sent,
      fetch: (input, init) => {
        if (init?.method === 'POST') sent.push({ url: String(input), headers: new Headers(init.headers), form: new URLSearchParams(String(init.body)) });
        return fetch(input, init);
      },
    };
  }

  /** The rejection of p, which must be a MandateError that carries no platform token. */
  async function refusal(p: Promise<unknown>, ...secrets: string[]): Promise<MandateError> {
    const e = await p.then(
      () => assert.fail('expected a refusal'),
      (err: unknown) => err,
    );
    assert.ok(e instanceof MandateError, String(e));
    for (const s of secrets) {
      for (const part of [s, ...s.split('.')]) {
        assert.ok(!e.message.includes(part) && !e.error_description.includes(part) && !String(e.stack).includes(part), `the error shows the token: ${e.message}`);
      }
    }
    return e;
  }

  before(async () => {
    k8s = testKey('k8s-1', 'ES256');
    idp = testKey('idp-1', 'ES256');
    stranger = testKey('k8s-1', 'ES256');
    srv = await startServer(CONFIG, { 'k8s-jwks.json': jwks(k8s), 'idp-jwks.json': jwks(idp) });
  });

  after(async () => {
    await srv?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('mints a root from the token file with no client authentication, and learns its client id', async () => {
    const sa = await saToken('agents', 'researcher');
    writeToken(`${sa}\n`);
    const rec = recorder();
    const w = await MandateClient.discover(srv.issuer, { workloadTokenFile: tokenFile, fetch: rec.fetch });
    assert.equal(w.clientId, null);
    assert.equal(w.workload, true);
    const root = await w.mint({ scope: 'db:read:orders' });
    const v = root.decode();
    assert.equal(v.sub, 'k8s/agents/researcher');
    assert.equal(v.holder, 'k8s/agents/researcher');
    assert.equal(v.subIss, srv.issuer);
    assert.deepEqual(v.actors, []);
    assert.deepEqual(v.scopes, ['db:read:orders']);
    assert.deepEqual(v.audiences, [ORDERS]);
    assert.equal(root.type, 'Bearer');
    assert.equal(w.clientId, 'k8s/agents/researcher');
    // The wire: the JWT bearer grant, the file's token (trimmed) as the assertion, nothing else authenticating.
    const [req] = rec.sent;
    assert.equal(req.url, w.metadata.token_endpoint);
    assert.equal(req.form.get('grant_type'), GRANT_JWT_BEARER);
    assert.equal(req.form.get('assertion'), sa);
    assert.equal(req.headers.get('authorization'), null);
    assert.equal(req.form.has('client_assertion'), false);
    assert.equal(req.form.has('client_id'), false);
    // Absent scope and audience: the rule's ceiling.
    const all = (await w.mint()).decode();
    assert.deepEqual(all.scopes, ['db:read:*', 'db:write:*']);
  });

  it('re-reads the token file at every request: a rotated token of another service account names it', async () => {
    writeToken(await saToken('agents', 'researcher'));
    const w = await MandateClient.discover(srv.issuer, { workloadTokenFile: tokenFile });
    assert.equal((await w.mint()).decode().sub, 'k8s/agents/researcher');
    writeToken(`  \n${await saToken('agents', 'summarizer')}\r\n\t`);
    const next = await w.mint({ scope: 'db:read:orders' });
    assert.equal(next.decode().sub, 'k8s/agents/summarizer');
    assert.equal(next.decode().holder, 'k8s/agents/summarizer');
    assert.equal(w.clientId, 'k8s/agents/summarizer');
  });

  it('exchanges, takes its identity token, is delegated to and revokes, authenticated by its platform token', async () => {
    const sa = await saToken('agents', 'researcher');
    writeToken(sa);
    const rec = recorder();
    const w = await MandateClient.discover(srv.issuer, { workloadTokenFile: tokenFile, fetch: rec.fetch });
    const root = await w.mint({ scope: 'db:read:* db:write:*' });

    // Down-scoping its own root: a child it still holds.
    const child = await w.exchange(root, { scope: 'db:read:orders' });
    const cv = child.decode();
    assert.equal(cv.holder, 'k8s/agents/researcher');
    assert.equal(cv.sub, 'k8s/agents/researcher');
    assert.deepEqual(cv.lineage, [root.decode().jti]);
    assert.deepEqual(cv.scopes, ['db:read:orders']);
    const ex = rec.sent[1];
    assert.equal(ex.form.get('client_assertion_type'), 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
    assert.equal(ex.form.get('client_assertion'), sa);
    assert.equal(ex.headers.get('authorization'), null);

    // Its identity token names it as an actor; the orchestrator delegates to it.
    const id = await w.identity();
    assert.deepEqual(id.decode().audiences, [srv.issuer]);
    assert.equal(id.decode().holder, 'k8s/agents/researcher');
    const orch = await MandateClient.discover(srv.issuer, { clientId: 'orchestrator', clientSecret: 'orch-secret' });
    const task = await orch.mint({ scope: 'db:read:* db:write:* tools:search', audience: ORDERS });
    const given = await orch.exchange(task, { actor: id, scope: 'db:write:orders' });
    assert.equal(given.decode().holder, 'k8s/agents/researcher');
    assert.equal(given.decode().sub, 'orchestrator');
    // The workload uses what it was given as its own (down-scoping it).
    const mine = await w.exchange(w.adopt(given.value), { scope: 'db:write:orders' });
    assert.equal(mine.decode().holder, 'k8s/agents/researcher');
    assert.deepEqual(mine.decode().actors, ['k8s/agents/researcher']);
    // A delegation to an actor teaches a fresh workload client nothing (the child is the actor's); a token it keeps does.
    const w2 = await MandateClient.discover(srv.issuer, { workloadTokenFile: tokenFile });
    const back = await w2.exchange(given.value, { actor: await orch.identity(), scope: 'db:write:orders' });
    assert.equal(back.decode().holder, 'orchestrator');
    assert.equal(w2.clientId, null);
    await w2.exchange(given.value, { scope: 'db:write:orders' });
    assert.equal(w2.clientId, 'k8s/agents/researcher');
    // Its ceiling (the rule's) holds for what it is delegated.
    const wide = await refusal(orch.exchange(task, { actor: await w.identity(), scope: 'tools:search' }));
    assert.ok(wide instanceof OAuthError && wide.error === 'invalid_scope', String(wide));
    assert.match(wide.error_description, /k8s\/agents\/researcher/);

    // Revoking its root ends what descends from it.
    await w.revoke(root);
    const rv = rec.sent.find((r) => r.url === w.metadata.revocation_endpoint)!;
    assert.equal(rv.form.get('client_assertion'), sa);
    const gone = await refusal(w.exchange(child, { scope: 'db:read:orders' }), sa);
    assert.ok(gone instanceof OAuthError, String(gone));
    assert.equal(gone.status, 400);
  });

  it('a rule naming a registered client: a pinned clientId, and ephemeral agents of its own', async () => {
    const opsFile = join(dir, 'ops-token');
    writeToken(await saToken('ops', 'orchestrator'), opsFile);
    const rec = recorder();
    const w = await MandateClient.discover(srv.issuer, { clientId: 'ops-orchestrator', workloadTokenFile: opsFile, fetch: rec.fetch });
    assert.equal(w.clientId, 'ops-orchestrator');
    const root = await w.mint();
    assert.equal(root.decode().sub, 'ops-orchestrator');
    assert.deepEqual(root.decode().scopes, ['db:read:*']);
    assert.equal(rec.sent[0].form.get('client_id'), 'ops-orchestrator');
    const agent = w.spawnAgent('summarizer-7f3a');
    assert.equal(agent.name, 'ops-orchestrator/summarizer-7f3a');
    const eph = await w.delegateToAgent(root, agent, { scope: 'db:read:orders' });
    assert.equal(eph.decode().holder, 'ops-orchestrator/summarizer-7f3a');
    assert.equal(eph.bound, true);
    assert.equal(eph.decode().jkt, agent.key.jkt);
    assert.equal(rec.sent[1].form.get('client_assertion_type'), 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');

    // A clientId given pins the identity: a token mapping to another is refused.
    const other = await saToken('agents', 'researcher');
    writeToken(other, opsFile);
    const pinned = await refusal(w.mint(), other);
    assert.ok(pinned instanceof OAuthError && pinned.error === 'invalid_grant', String(pinned));
    const pinnedEx = await refusal(w.exchange(root, { scope: 'db:read:orders' }), other);
    assert.ok(pinnedEx instanceof OAuthError && pinnedEx.error === 'invalid_client' && pinnedEx.status === 401, String(pinnedEx));
    // A workload client that has not learnt its id cannot name ephemeral agents yet.
    const fresh = await MandateClient.discover(srv.issuer, { workloadTokenFile: opsFile });
    assert.throws(() => fresh.spawnAgent('a'), (e: unknown) => e instanceof MandateError && e.error === 'invalid_request');
  });

  it('an MCP server running as a workload makes the audience exchange with its platform token', async () => {
    const mcpFile = join(dir, 'mcp-token');
    const sa = await saToken('mcp', 'orders-mcp');
    writeToken(sa, mcpFile);
    const rec = recorder();
    const mcp = await MandateClient.discover(srv.issuer, { workloadTokenFile: mcpFile, fetch: rec.fetch });
    const orch = await MandateClient.discover(srv.issuer, { clientId: 'orchestrator', clientSecret: 'orch-secret' });
    const received = await orch.mint({ scope: 'db:read:orders tools:search', audience: MCP });
    const down = await mcp.exchangeForDownstream(received, ORDERS, { scope: 'db:read:orders' });
    const v = down.decode();
    assert.equal(v.sub, 'orchestrator');
    assert.equal(v.holder, 'orders-mcp');
    assert.deepEqual(v.audiences, [ORDERS]);
    assert.deepEqual(v.lineage, [received.decode().jti]);
    assert.equal(rec.sent[0].form.get('client_assertion'), sa);
    assert.equal(rec.sent[0].headers.get('authorization'), null);
    assert.equal(mcp.clientId, 'orders-mcp', 'learnt from the token it holds now');
  });

  it('workloadToken: a function asked at every request', async () => {
    let calls = 0;
    let current = await saToken('agents', 'researcher');
    const w = await MandateClient.discover(srv.issuer, {
      workloadToken: async () => {
        calls++;
        return ` ${current} `;
      },
    });
    const root = await w.mint({ scope: 'db:read:orders' });
    assert.equal(root.decode().holder, 'k8s/agents/researcher');
    await w.identity();
    assert.equal(calls, 2);
    current = await saToken('agents', 'summarizer');
    assert.equal((await w.identity()).decode().holder, 'k8s/agents/summarizer');
    assert.equal(w.clientId, 'k8s/agents/summarizer');
    assert.equal(calls, 3);
  });

  it('refused platform tokens: invalid_grant at mint, invalid_client elsewhere, never quoting the token', async () => {
    writeToken(await saToken('agents', 'researcher'));
    const w = await MandateClient.discover(srv.issuer, { workloadTokenFile: tokenFile });
    const root = await w.mint({ scope: 'db:read:orders' });
    const bad: [string, string][] = [
      ['another audience', await saToken('agents', 'researcher', (c) => (c.aud = ['https://vault.example']))],
      ['expired', await saToken('agents', 'researcher', (c) => (c.exp = nowS() - 120))],
      ['lives too long', await saToken('agents', 'researcher', (c) => (c.exp = nowS() + 48 * 3600))],
      ['signed by another key', await saToken('agents', 'researcher', undefined, stranger)],
      ['an unconfigured issuer', await saToken('agents', 'researcher', (c) => (c.iss = 'https://k8s.other.example'))],
      ['matching no rule', await saToken('agents', 'researcher', (c) => (c.sub = 'system:node:node-1'))],
      ['not a JWT', 'not-a-jwt'],
    ];
    for (const [name, token] of bad) {
      writeToken(token);
      const m = await refusal(w.mint(), token);
      assert.ok(m instanceof OAuthError, `${name}: ${m}`);
      assert.equal(m.error, 'invalid_grant', `${name}: ${m}`);
      assert.equal(m.status, 400, name);
      const x = await refusal(w.exchange(root, { scope: 'db:read:orders' }), token);
      assert.ok(x instanceof OAuthError, `${name}: ${x}`);
      assert.equal(x.error, 'invalid_client', `${name}: ${x}`);
      assert.equal(x.status, 401, name);
    }
    // Within the token's rule only.
    writeToken(await saToken('agents', 'researcher'));
    const scope = await refusal(w.mint({ scope: 'mail:send' }));
    assert.ok(scope instanceof OAuthError && scope.error === 'invalid_scope', String(scope));
  });

  it('an unreadable, empty or failing token source is a MandateError naming where, sending nothing', async () => {
    const rec = recorder();
    const missing = join(dir, 'no-such-token');
    const w = await MandateClient.discover(srv.issuer, { workloadTokenFile: missing, fetch: rec.fetch });
    const e = await refusal(w.mint());
    assert.ok(!(e instanceof OAuthError));
    assert.equal(e.error, 'invalid_client');
    assert.ok(e.message.includes(missing) && e.message.includes('ENOENT'), e.message);
    const d = await refusal((await MandateClient.discover(srv.issuer, { workloadTokenFile: dir, fetch: rec.fetch })).identity());
    assert.ok(d.message.includes(JSON.stringify(dir)) && d.message.includes('EISDIR'), d.message);
    const emptyFile = join(dir, 'empty-token');
    writeFileSync(emptyFile, ' \n');
    const em = await refusal((await MandateClient.discover(srv.issuer, { workloadTokenFile: emptyFile, fetch: rec.fetch })).mint());
    assert.match(em.message, /holds no token/);
    const big = join(dir, 'big-token');
    const huge = 'x'.repeat(20000);
    writeFileSync(big, huge);
    const bg = await refusal((await MandateClient.discover(srv.issuer, { workloadTokenFile: big, fetch: rec.fetch })).mint(), huge);
    assert.match(bg.message, /more than a token's 16384 bytes/);
    const two = join(dir, 'two-tokens');
    const pair = `${await saToken('agents', 'researcher')}\n${await saToken('agents', 'summarizer')}\n`;
    writeFileSync(two, pair);
    const tw = await refusal((await MandateClient.discover(srv.issuer, { workloadTokenFile: two, fetch: rec.fetch })).mint(), ...pair.trim().split('\n'));
    assert.match(tw.message, /holds no token: a token is printable ASCII/);
    const secret = 'secret-in-the-error';
    const fn = await refusal(
      (
        await MandateClient.discover(srv.issuer, {
          workloadToken: () => {
            throw new Error(secret);
          },
          fetch: rec.fetch,
        })
      ).mint(),
      secret,
    );
    assert.equal(fn.error, 'invalid_client');
    assert.equal((fn.cause as Error).message, secret);
    assert.equal(rec.sent.length, 0, 'nothing was sent');
  });

  it('discover takes exactly one way to authenticate, and a workload needs the JWT bearer grant', async () => {
    const one = async (o: object): Promise<MandateError> => refusal(MandateClient.discover(srv.issuer, o as never));
    assert.equal((await one({ clientId: 'x' })).error, 'invalid_request');
    assert.equal((await one({ clientId: 'x', clientSecret: 's', workloadTokenFile: tokenFile })).error, 'invalid_request');
    assert.equal((await one({ workloadTokenFile: tokenFile, workloadToken: () => 't' })).error, 'invalid_request');
    assert.equal((await one({ clientSecret: 's' })).error, 'invalid_request');
    assert.equal((await one({ workloadTokenFile: '' })).error, 'invalid_request');
    assert.equal((await one({ workloadToken: 'a token, not a function' })).error, 'invalid_request');
    // A server that advertises no JWT bearer grant (no workload_issuers): refused at discovery.
    const md = { issuer: 'https://plain.example', token_endpoint: 'https://plain.example/oauth2/token', grant_types_supported: ['client_credentials'] };
    const plain: FetchLike = async () => new Response(JSON.stringify(md), { status: 200, headers: { 'content-type': 'application/json' } });
    await assert.rejects(MandateClient.discover(md.issuer, { workloadTokenFile: tokenFile, fetch: plain }), ProtocolError);
    await MandateClient.discover(md.issuer, { clientId: 'c', clientSecret: 's', fetch: plain });
  });

  it('a DPoP-bound workload root: mint, exchange and identity proved with its key', async () => {
    writeToken(await saToken('agents', 'researcher'));
    const key = DPoPKey.generate('ES256');
    const w = await MandateClient.discover(srv.issuer, { workloadTokenFile: tokenFile, dpopKey: key });
    const root = await w.mint({ scope: 'db:read:orders' });
    assert.equal(root.type, 'DPoP');
    assert.equal(root.decode().jkt, key.jkt);
    assert.equal(root.key, key);
    const child = await w.exchange(root, { scope: 'db:read:orders' });
    assert.equal(child.decode().jkt, key.jkt);
    assert.equal((await w.identity()).decode().jkt, key.jkt);
    // Another key cannot use the bound root.
    const thief = await MandateClient.discover(srv.issuer, { workloadTokenFile: tokenFile, dpopKey: DPoPKey.generate() });
    const stolen = await refusal(thief.exchange(root.value, { scope: 'db:read:orders' }));
    assert.ok(stolen instanceof OAuthError, String(stolen));
  });

  it('redeems an ID-JAG: a root on behalf of the user, held by the client; a replay is refused', async () => {
    const portal = await MandateClient.discover(srv.issuer, { clientId: 'portal', clientSecret: 'portal-secret', dpopKey: DPoPKey.generate() });
    const jag = await idJag('portal');
    const root: Token = await portal.redeemIdJag(jag);
    const v = root.decode();
    assert.equal(v.sub, 'alice@acme.example');
    assert.equal(v.subIss, IDP);
    assert.equal(v.holder, 'portal');
    assert.deepEqual(v.scopes, ['db:read:orders', 'mail:send']);
    assert.deepEqual(v.audiences, [ORDERS]);
    assert.equal(v.jkt, portal.dpopKey!.jkt);
    // Single-use.
    const replay = await refusal(portal.redeemIdJag(jag), jag);
    assert.ok(replay instanceof OAuthError && replay.error === 'invalid_grant' && replay.status === 400, String(replay));
    // Narrower on request; the client delegates from it as from any root.
    const narrow = await portal.redeemIdJag(await idJag('portal'), { scope: 'db:read:orders', audience: ORDERS });
    assert.deepEqual(narrow.decode().scopes, ['db:read:orders']);
    const child = await portal.exchange(narrow, { scope: 'db:read:orders' });
    assert.equal(child.decode().sub, 'alice@acme.example');
    // Made for another client, beyond the ID-JAG, or redeemed by a client not registered for the grant.
    const forOrch = await idJag('orchestrator');
    const stolen = await refusal(portal.redeemIdJag(forOrch), forOrch);
    assert.ok(stolen instanceof OAuthError && stolen.error === 'invalid_grant', String(stolen));
    const beyond = await refusal(portal.redeemIdJag(await idJag('portal'), { scope: 'db:read:customers' }));
    assert.ok(beyond instanceof OAuthError && beyond.error === 'invalid_scope', String(beyond));
    const orch = await MandateClient.discover(srv.issuer, { clientId: 'orchestrator', clientSecret: 'orch-secret' });
    const unauth = await refusal(orch.redeemIdJag(forOrch), forOrch);
    assert.ok(unauth instanceof OAuthError && unauth.error === 'unauthorized_client', String(unauth));
    assert.equal((await refusal(portal.redeemIdJag('  '))).error, 'invalid_request');
    // A workload sends an ID-JAG with its platform token as the client
    // assertion; one made for a generated identity is refused (an IdP makes
    // ID-JAGs for registered clients).
    const sa = await saToken('agents', 'researcher');
    writeToken(sa);
    const rec = recorder();
    const w = await MandateClient.discover(srv.issuer, { workloadTokenFile: tokenFile, fetch: rec.fetch });
    const wj = await idJag('k8s/agents/researcher');
    const generated = await refusal(w.redeemIdJag(wj, { scope: 'db:read:orders' }), wj);
    assert.ok(generated instanceof OAuthError && generated.error === 'unauthorized_client', String(generated));
    assert.equal(rec.sent[0].form.get('assertion'), wj);
    assert.equal(rec.sent[0].form.get('client_assertion'), sa);
  });
});
