// The MCP guard against a real `mandate serve`, driven by the official
// TypeScript MCP client over real HTTP on loopback: a guarded McpServer
// (node:http, 127.0.0.1:0) whose verifier follows the real server's keys and
// revocation feed. Tools count their runs, so every refusal is also shown
// not to have run the tool.
import assert from 'node:assert/strict';
import { type Server as HttpServer, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { ConfigError, DPoPKey, MandateClient, MandateError, OAuthError, ProtocolError, type Token, Verifier, decodeToken } from '../dist/index.js';
import { CallPolicy } from '../dist/cedar.js';
import { DENIED_CODE, McpGuard, type GuardLogEntry, mandateChain, mcpFetch, receivedToken, resourceMetadataUrl } from '../dist/mcp.js';
import { type Server, startServer, testKey } from './harness.js';

const SERVER = 'https://tools.example/mcp';
const OTHER = 'https://other.example/mcp';
const DOWNSTREAM = 'https://orders.example';

const POLICIES = `
@id("research-search")
permit (principal in Group::"research-agents", action == Action::"tools/call", resource == Tool::"search_orders");

@id("research-refund-small")
permit (principal in Group::"research-agents", action == Action::"tools/call", resource == Tool::"refund_order")
when { context.depth == 1 && context.arguments has amount && context.arguments.amount < 100 && context.server == "${SERVER}" };

@id("no-refunds-for-order-7")
forbid (principal, action == Action::"tools/call", resource == Tool::"refund_order")
when { context.arguments has order && context.arguments.order == "o-7" };

@id("downstream")
permit (principal, action == Action::"tools/call", resource == Tool::"call_downstream");
`;

const CONFIG = `
clients:
  - id: orchestrator
    secret: orch-secret
    grants: [client_credentials, token_exchange]
    scopes: ["tools:*", "orders:refund"]
    audiences: ["${SERVER}", "${OTHER}"]
    ephemeral:
      scopes: ["tools:*"]
      audiences: ["${SERVER}"]
  - id: mcp-researcher
    secret: researcher-secret
    grants: [client_credentials, token_exchange]
    scopes: ["tools:*", "orders:refund"]
    audiences: ["${SERVER}", "${OTHER}"]
  - id: mcp-helper
    secret: helper-secret
    grants: [client_credentials, token_exchange]
    scopes: ["tools:*"]
    audiences: ["${SERVER}"]
  - id: tools-mcp
    secret: tools-mcp-secret
    grants: [token_exchange]
    scopes: ["orders:read", "orders:refund"]
    audiences: ["${DOWNSTREAM}"]
    serves: ["${SERVER}"]
  - id: mcp-rs
    secret: rs-secret
    role: resource_server
`;

interface Fixture {
  srv: Server;
  verifier: Verifier;
  guard: McpGuard;
  http: HttpServer;
  url: string;
  runs: Record<string, number>;
  logs: GuardLogEntry[];
  downstream: unknown[];
  orch: MandateClient;
  researcher: MandateClient;
}

let f: Fixture;

function buildServer(runs: Record<string, number>, downstream: unknown[], toolsMcp: MandateClient): McpServer {
  const s = new McpServer({ name: 'orders', version: '1.0.0' });
  s.registerTool('search_orders', { description: 'search', inputSchema: { q: z.string().optional() } }, async () => {
    runs.search_orders++;
    return { content: [{ type: 'text', text: 'o-1' }] };
  });
  s.registerTool('refund_order', { description: 'refund', inputSchema: { order: z.string(), amount: z.number() } }, async ({ order, amount }) => {
    runs.refund_order++;
    return { content: [{ type: 'text', text: `refunded ${amount} on ${order}` }] };
  });
  s.registerTool('call_downstream', { description: 'exchange the received token for one downstream' }, async (extra) => {
    runs.call_downstream++;
    const chain = mandateChain(extra);
    const got = await toolsMcp.exchangeForDownstream(receivedToken(extra) as string, DOWNSTREAM, { scope: 'orders:refund' });
    downstream.push({ caller: chain?.holder, view: got.decode(), bound: got.bound });
    return { content: [{ type: 'text', text: 'ok' }] };
  });
  return s;
}

async function token(c: MandateClient, holder: MandateClient | null, scope: string, audience = SERVER): Promise<Token> {
  const root = await f.orch.mint({ scope: 'tools:* orders:refund', audience: [SERVER, OTHER] });
  if (!holder) return f.orch.exchange(root, { scope, audience });
  const id = await holder.identity();
  return c.exchange(root, { actor: id, scope, audience });
}

async function connect(tok: Token): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  return connectTo(f.url, tok);
}

async function connectTo(url: string, tok: Token): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(url), { fetch: mcpFetch(tok) });
  const client = new Client({ name: 'agent', version: '1.0.0' });
  await client.connect(transport);
  return { client, transport };
}

async function denied(p: Promise<unknown>, ...policies: string[]): Promise<McpError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof McpError, `not an McpError: ${String(e)}`);
    assert.equal(e.code, DENIED_CODE, e.message);
    const data = e.data as { policies: string[]; reason: string };
    assert.deepEqual(data.policies, policies, e.message);
    for (const p of policies) assert.ok(e.message.includes(p), `${e.message} does not name ${p}`);
    return e;
  }
  assert.fail('the call was not denied');
}

/** Serves a guard's endpoint on its own loopback port. */
async function serveGuard(guard: McpGuard, endpoint: ReturnType<McpGuard['protect']>): Promise<{ url: string; close: () => Promise<void> }> {
  const http = createServer((req, res) => void endpoint(req, res));
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`,
    close: async () => {
      await guard.close();
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
    },
  };
}

function post(tok: string | null, session: string | undefined, body: string, scheme = 'Bearer', url = f.url): Promise<Response> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': '2025-06-18',
  };
  if (tok) headers.authorization = `${scheme} ${tok}`;
  if (session) headers['mcp-session-id'] = session;
  return fetch(url, { method: 'POST', headers, body });
}

const callBody = (name: string, args: string): string => `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"${name}","arguments":${args}}}`;

describe('MCP guard, against a real mandate serve and the official TypeScript MCP client', () => {
  before(async () => {
    const srv = await startServer(CONFIG);
    const runs = { search_orders: 0, refund_order: 0, call_downstream: 0 };
    const logs: GuardLogEntry[] = [];
    const downstream: unknown[] = [];
    const http = createServer();
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    const verifier = await Verifier.discover({
      issuer: srv.issuer,
      audience: SERVER,
      clientId: 'mcp-rs',
      clientSecret: 'rs-secret',
      publicUrl: url,
      resourceMetadataUrl: resourceMetadataUrl(SERVER),
    });
    const policy = await CallPolicy.parse([{ name: 'mcp.cedar', source: POLICIES }]);
    const groups: Record<string, string[]> = { 'mcp-researcher': ['research-agents'], 'mcp-helper': ['research-agents'] };
    const groupsOf = (h: string): string[] => groups[h] ?? (h.startsWith('orchestrator/researcher-') ? ['research-agents'] : []);
    const guard = new McpGuard(verifier, { server: SERVER, policy, groups: groupsOf, log: (e) => logs.push(e) });
    const toolsMcp = await MandateClient.discover(srv.issuer, { clientId: 'tools-mcp', clientSecret: 'tools-mcp-secret', dpopKey: DPoPKey.generate() });
    const endpoint = guard.protect(() => buildServer(runs, downstream, toolsMcp));
    const metadata = guard.metadataHandler(srv.issuer, ['tools:*']);
    http.on('request', (req, res) => {
      if (req.url === guard.metadataPath) metadata(req, res);
      else if (req.url === '/mcp') void endpoint(req, res);
      else res.writeHead(404).end();
    });
    const orch = await MandateClient.discover(srv.issuer, { clientId: 'orchestrator', clientSecret: 'orch-secret' });
    const researcher = await MandateClient.discover(srv.issuer, { clientId: 'mcp-researcher', clientSecret: 'researcher-secret' });
    f = { srv, verifier, guard, http, url: url + '/mcp', runs, logs, downstream, orch, researcher };
  });

  after(async () => {
    await f?.guard.close();
    f?.http.closeAllConnections();
    await new Promise<void>((r) => (f ? f.http.close(() => r()) : r()));
    await f?.verifier.close();
    await f?.srv.stop();
  });

  it('decides every tool call by the chain and its arguments; a refused call never runs', async () => {
    const tok = await token(f.orch, f.researcher, 'tools:*');
    const { client } = await connect(tok);
    const before = { ...f.runs };
    const ok = await client.callTool({ name: 'search_orders', arguments: { q: 'late' } });
    assert.equal(ok.isError, undefined);
    await client.callTool({ name: 'refund_order', arguments: { order: 'o-1', amount: 99 } });
    await denied(client.callTool({ name: 'refund_order', arguments: { order: 'o-1', amount: 100 } }));
    await denied(client.callTool({ name: 'refund_order', arguments: { order: 'o-7', amount: 1 } }), 'no-refunds-for-order-7');
    // Arguments past the bounds are denied, not decided on part of them.
    let deep: Record<string, unknown> = { amount: 1 };
    for (let i = 0; i < 9; i++) deep = { n: deep };
    await denied(client.callTool({ name: 'refund_order', arguments: { order: 'o-1', amount: 1, meta: deep } }));
    await denied(client.callTool({ name: 'refund_order', arguments: { order: 'o-1', amount: 5, AMOUNT: 500 } }));
    await denied(client.callTool({ name: 'refund_order', arguments: { order: 'o-1', amount: 1, q: 'x'.repeat(70000) } }));
    await denied(client.callTool({ name: 'refund_order', arguments: { order: 'o-1', amount: 1.5 } }), 'research-refund-small');
    assert.equal(f.runs.search_orders - before.search_orders, 1);
    assert.equal(f.runs.refund_order - before.refund_order, 1);
    const log = f.logs.find((l) => l.msg === 'mcp request denied' && (l.policies as string[]).includes('no-refunds-for-order-7'));
    assert.ok(log, 'the denial is logged with its policy');
    assert.equal(log.jti, tok.decode().jti);
    assert.ok(!JSON.stringify(f.logs).includes(tok.value), 'a log holds the token');
    await client.close();

    // One hop further, the same refund is denied (depth 2).
    const helper = await MandateClient.discover(f.srv.issuer, { clientId: 'mcp-helper', clientSecret: 'helper-secret' });
    const deeper = await f.researcher.exchange(tok, { actor: await helper.identity(), scope: 'tools:*', audience: SERVER });
    const c2 = await connect(deeper);
    await denied(c2.client.callTool({ name: 'refund_order', arguments: { order: 'o-1', amount: 5 } }));
    assert.equal(f.runs.refund_order - before.refund_order, 1);
    await c2.client.close();
  });

  it('lists only the tools the scopes cover; a call outside them is 403 insufficient_scope before the server reads it', async () => {
    const tok = await token(f.orch, f.researcher, 'tools:search_orders');
    const { client, transport } = await connect(tok);
    const list = await client.listTools();
    assert.deepEqual(list.tools.map((t) => t.name), ['search_orders']);
    const before = f.runs.refund_order;
    await assert.rejects(client.callTool({ name: 'refund_order', arguments: { order: 'o-1', amount: 1 } }));
    const r = await post(tok.value, transport.sessionId, callBody('refund_order', '{"order":"o-1","amount":1}'));
    assert.equal(r.status, 403);
    const challenge = r.headers.get('www-authenticate') ?? '';
    assert.match(challenge, /error="insufficient_scope"/);
    assert.match(challenge, /scope="tools:refund_order"/);
    assert.equal(f.runs.refund_order, before);
    await client.close();
  });

  it('accepts only tokens for this server, in the session of the holder that opened it, and not after a revocation', async () => {
    const root = await f.orch.mint({ scope: 'tools:*', audience: [SERVER, OTHER] });
    const tok = await f.orch.exchange(root, { actor: await f.researcher.identity(), scope: 'tools:*', audience: SERVER });
    const { client, transport } = await connect(tok);
    const sid = transport.sessionId;
    assert.ok(sid);
    const before = f.runs.search_orders;
    const body = callBody('search_orders', '{}');

    let r = await post(null, sid, body);
    assert.equal(r.status, 401);
    assert.match(r.headers.get('www-authenticate') ?? '', /resource_metadata="https:\/\/tools\.example\/\.well-known\/oauth-protected-resource\/mcp"/);
    const other = await f.orch.exchange(root, { actor: await f.researcher.identity(), scope: 'tools:*', audience: OTHER });
    r = await post(other.value, sid, body);
    assert.equal(r.status, 401, 'a token for another audience');
    const helper = await MandateClient.discover(f.srv.issuer, { clientId: 'mcp-helper', clientSecret: 'helper-secret' });
    const helperTok = await f.orch.exchange(root, { actor: await helper.identity(), scope: 'tools:*', audience: SERVER });
    r = await post(helperTok.value, sid, body);
    assert.equal(r.status, 403, "another holder's session");
    r = await post(tok.value, 'no-such-session', body);
    assert.equal(r.status, 404);
    r = await post(tok.value, sid, `[${body}]`);
    assert.equal(r.status, 400, 'a batch');
    r = await post(tok.value, sid, '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"refund_order","name":"search_orders","arguments":{}}}');
    assert.equal(r.status, 400, 'a member given twice');
    assert.equal(f.runs.search_orders, before, 'a search ran');

    await client.callTool({ name: 'search_orders', arguments: { q: 'x' } });
    assert.equal(f.runs.search_orders, before + 1);
    // Revoked in the middle of the session: refused once the verifier's feed has synced.
    await f.orch.revoke(root);
    await f.verifier.feed?.sync();
    r = await post(tok.value, sid, body);
    assert.equal(r.status, 401);
    await assert.rejects(client.callTool({ name: 'search_orders', arguments: { q: 'x' } }));
    assert.equal(f.runs.search_orders, before + 1);
    await client.close().catch(() => undefined);
  });

  it('takes a DPoP-bound token with a fresh proof per request, and refuses it as a bearer token', async () => {
    const agent = f.orch.spawnAgent('researcher-1');
    const root = await f.orch.mint({ scope: 'tools:*', audience: SERVER });
    const tok = await f.orch.delegateToAgent(root, agent, { scope: 'tools:search_orders', audience: SERVER });
    assert.ok(tok.bound);
    const { client, transport } = await connect(tok);
    const before = f.runs.search_orders;
    await client.callTool({ name: 'search_orders', arguments: {} });
    await client.callTool({ name: 'search_orders', arguments: {} });
    assert.equal(f.runs.search_orders, before + 2);
    const r = await post(tok.value, transport.sessionId, callBody('search_orders', '{}'));
    assert.equal(r.status, 401);
    assert.equal(f.runs.search_orders, before + 2);
    await client.close();
  });

  it('exchanges the received token for its own downstream (no passthrough): one call', async () => {
    const tok = await token(f.orch, f.researcher, 'tools:* orders:refund');
    const { client } = await connect(tok);
    const res = await client.callTool({ name: 'call_downstream', arguments: {} });
    assert.equal(res.isError, undefined, JSON.stringify(res));
    const got = f.downstream.at(-1) as { caller: string; view: ReturnType<typeof decodeToken>; bound: boolean };
    assert.equal(got.caller, 'mcp-researcher');
    assert.equal(got.view.holder, 'tools-mcp');
    assert.deepEqual(got.view.audiences, [DOWNSTREAM]);
    assert.deepEqual(got.view.scopes, ['orders:refund']);
    assert.equal(got.view.sub, tok.decode().sub);
    assert.deepEqual(got.view.actors.slice(0, 2), ['tools-mcp', 'mcp-researcher']);
    assert.equal(got.view.lineage.at(-1), tok.decode().jti);
    assert.ok(got.bound, "bound to the MCP server's own key");
    await client.close();
    // The scope stays within the received token's: without orders:refund there, none.
    const narrow = await token(f.orch, f.researcher, 'tools:*');
    const c2 = await connect(narrow);
    const refused = await c2.client.callTool({ name: 'call_downstream', arguments: {} });
    assert.equal(refused.isError, true);
    assert.match(JSON.stringify(refused.content), /invalid_scope/);
    await c2.client.close();
    // The audience is named, or nothing is sent; a client that serves nothing may not.
    await assert.rejects(f.researcher.exchangeForDownstream(tok, ''), MandateError);
    await assert.rejects(f.researcher.exchangeForDownstream(tok, DOWNSTREAM), OAuthError);
  });

  it('keeps sessions to their owner: an SSE stream or a DELETE by another is refused, the owner ends it; past maxSessions the least recently used is closed', async () => {
    const policy = await CallPolicy.parse([{ name: 'mcp.cedar', source: POLICIES }]);
    const guard = new McpGuard(f.verifier, { server: SERVER, policy, groups: () => ['research-agents'], log: () => undefined, maxSessions: 1 });
    const runs = { search_orders: 0, refund_order: 0, call_downstream: 0 };
    const small = await serveGuard(guard, guard.protect(() => buildServer(runs, [], f.researcher)));
    try {
      const tok = await token(f.orch, f.researcher, 'tools:*');
      const a = await connectTo(small.url, tok);
      const sid = a.transport.sessionId!;
      const helper = await MandateClient.discover(f.srv.issuer, { clientId: 'mcp-helper', clientSecret: 'helper-secret' });
      const other = await token(f.orch, helper, 'tools:*');
      const headers = (t: Token): Record<string, string> => ({ authorization: `Bearer ${t.value}`, 'mcp-session-id': sid, accept: 'text/event-stream', 'mcp-protocol-version': '2025-06-18' });
      assert.equal((await fetch(small.url, { method: 'GET', headers: headers(other) })).status, 403);
      assert.equal((await fetch(small.url, { method: 'DELETE', headers: headers(other) })).status, 403);
      assert.equal(guard.sessionCount, 1);
      // A second session closes the first (maxSessions 1): its next request is 404.
      const b = await connectTo(small.url, tok);
      assert.equal(guard.sessionCount, 1);
      const r = await post(tok.value, sid, callBody('search_orders', '{}'), 'Bearer', small.url);
      assert.equal(r.status, 404);
      assert.equal((await fetch(small.url, { method: 'DELETE', headers: { ...headers(tok), 'mcp-session-id': b.transport.sessionId! } })).status, 200);
      assert.equal(guard.sessionCount, 0);
      assert.equal(runs.search_orders, 0);
      await a.client.close().catch(() => undefined);
      await b.client.close().catch(() => undefined);
    } finally {
      await small.close();
    }
  });

  it('stateless, with DPoP nonces required: the client retries once with the nonce, on every request', async () => {
    const http = createServer();
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    const nv = await Verifier.discover({ issuer: f.srv.issuer, audience: SERVER, clientId: 'mcp-rs', clientSecret: 'rs-secret', publicUrl: base, resourceMetadataUrl: resourceMetadataUrl(SERVER), dpopNonce: true });
    const policy = await CallPolicy.parse([{ name: 'mcp.cedar', source: POLICIES }]);
    const guard = new McpGuard(nv, { server: SERVER, policy, groups: () => ['research-agents'], log: () => undefined });
    const runs = { search_orders: 0, refund_order: 0, call_downstream: 0 };
    const endpoint = guard.protect(() => buildServer(runs, [], f.researcher), { stateless: true });
    let nonceAnswers = 0;
    http.on('request', (req, res) => {
      res.on('finish', () => {
        if (res.statusCode === 401 && res.getHeader('dpop-nonce')) nonceAnswers++;
      });
      void endpoint(req, res);
    });
    try {
      const agent = f.orch.spawnAgent('researcher-2');
      const root = await f.orch.mint({ scope: 'tools:*', audience: SERVER });
      const tok = await f.orch.delegateToAgent(root, agent, { scope: 'tools:search_orders', audience: SERVER });
      const c = await connectTo(base + '/mcp', tok);
      assert.equal(c.transport.sessionId, undefined, 'stateless: no session');
      await c.client.callTool({ name: 'search_orders', arguments: {} });
      assert.equal(runs.search_orders, 1);
      assert.ok(nonceAnswers >= 2, `${nonceAnswers} nonce challenges answered`);
      assert.equal(guard.sessionCount, 0);
      const get = await tok.fetch(base + '/mcp', { method: 'GET', headers: { accept: 'text/event-stream' } });
      assert.equal(get.status, 405);
      await c.client.close();
    } finally {
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
      await nv.close();
    }
  });

  it('never follows a redirect with the token (mcpFetch)', async () => {
    let hits = 0;
    const http = createServer((req, res) => {
      hits++;
      res.writeHead(307, { location: '/elsewhere' }).end();
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    try {
      const tok = await token(f.orch, f.researcher, 'tools:*');
      const transport = new StreamableHTTPClientTransport(new URL(base + '/mcp'), { fetch: mcpFetch(tok) });
      await assert.rejects(new Client({ name: 'agent', version: '1' }).connect(transport), /redirect/);
      assert.equal(hits, 1);
      await assert.rejects(mcpFetch(() => tok)(base + '/x'), ProtocolError);
    } finally {
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
    }
  });

  it('serves its RFC 9728 metadata, and refuses a misconfiguration at start', async () => {
    const r = await fetch(f.url.replace(/\/mcp$/, '') + f.guard.metadataPath);
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), {
      resource: SERVER,
      authorization_servers: [f.srv.issuer],
      bearer_methods_supported: ['header'],
      scopes_supported: ['tools:*'],
    });
    const policy = await CallPolicy.parse([{ name: 'p.cedar', source: POLICIES }]);
    const jwks = { keys: [testKey('k1').jwk] };
    const other = Verifier.offline({ issuer: f.srv.issuer, audience: OTHER, resourceMetadataUrl: resourceMetadataUrl(OTHER) }, jwks);
    assert.throws(() => new McpGuard(other, { server: SERVER, policy }), ConfigError);
    assert.throws(() => new McpGuard(f.verifier, { server: SERVER } as never), ConfigError);
    const noMetadata = Verifier.offline({ issuer: f.srv.issuer, audience: SERVER }, jwks);
    assert.throws(() => new McpGuard(noMetadata, { server: SERVER, policy }), ConfigError);
  });
});
