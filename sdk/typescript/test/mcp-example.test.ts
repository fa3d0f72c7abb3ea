// The example's TypeScript MCP server (examples/mcp/ts-server/server.mjs),
// run as the launcher runs it, against a real mandate serve and a small
// downstream orders API (this SDK's verifier on node:http): an ephemeral
// research agent searches, refunds 40 through the API by the audience
// exchange (the API sees the agent and the MCP server in the chain), is
// refused 400 by the example's policy (named), and a task token without the
// API's scope cannot be exchanged downstream.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { type Server as HttpServer, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { MandateClient, type Token, Verifier, chainOf } from '../dist/index.js';
import { DENIED_CODE, mcpFetch } from '../dist/mcp.js';
import { REPO_DIR, type Server, listeningURL, startServer } from './harness.js';

const ORDERS_MCP = 'https://orders-mcp.example/mcp';
const ORDERS_API = 'https://orders.example';
const DIR = join(REPO_DIR, 'examples', 'mcp', 'ts-server');

const CONFIG = `
clients:
  - id: orchestrator
    secret: orch-secret
    grants: [client_credentials, token_exchange]
    scopes: ["tools:*", "orders:refund"]
    audiences: ["${ORDERS_MCP}"]
    ephemeral:
      scopes: ["tools:*", "orders:refund"]
      audiences: ["${ORDERS_MCP}"]
  - id: orders-mcp
    secret: orders-mcp-secret
    grants: [token_exchange]
    scopes: ["orders:read", "orders:refund"]
    audiences: ["${ORDERS_API}"]
    serves: ["${ORDERS_MCP}"]
  - id: mcp-feed
    secret: feed-secret
    role: resource_server
`;

describe('the example TypeScript MCP server (examples/mcp/ts-server)', () => {
  let srv: Server;
  let api: HttpServer;
  let apiVerifier: Verifier;
  let child: ChildProcess | null = null;
  let url = '';
  let orch: MandateClient;
  let stderr = '';

  before(async () => {
    if (!existsSync(join(DIR, 'node_modules'))) {
      const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: DIR, stdio: ['ignore', 'inherit', 'inherit'] });
      assert.equal(r.status, 0, 'npm ci in examples/mcp/ts-server failed');
    }
    srv = await startServer(CONFIG);
    // The downstream orders API: POST /orders/{id}/refund needs orders:refund.
    api = createServer();
    await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
    const apiURL = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
    apiVerifier = await Verifier.discover({ issuer: srv.issuer, audience: ORDERS_API, clientId: 'mcp-feed', clientSecret: 'feed-secret', publicUrl: apiURL });
    const mw = apiVerifier.middleware();
    const need = apiVerifier.requireScope('orders:refund');
    api.on('request', (req, res) => {
      mw(req, res, () =>
        need(req, res, () => {
          let body = '';
          req.setEncoding('utf8').on('data', (d: string) => (body += d));
          req.on('end', () => {
            const c = chainOf(req)!;
            const m = /^\/orders\/([^/]+)\/refund$/.exec(req.url ?? '');
            res.writeHead(m && req.method === 'POST' ? 200 : 404, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ refunded: m?.[1], amount: (JSON.parse(body || '{}') as { amount?: number }).amount, subject: c.subject, holder: c.holder, actors: c.actors, depth: c.depth }));
          });
        }),
      );
    });
    const c = spawn(process.execPath, ['server.mjs'], {
      cwd: DIR,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        MANDATE_ISSUER: srv.issuer,
        MCP_FEED_ID: 'mcp-feed',
        MCP_FEED_SECRET: 'feed-secret',
        MCP_CLIENT_ID: 'orders-mcp',
        MCP_CLIENT_SECRET: 'orders-mcp-secret',
        MCP_SERVER_URI: ORDERS_MCP,
        MCP_POLICY_DIR: join(REPO_DIR, 'examples', 'mcp', 'policies'),
        ORDERS_API_URL: apiURL,
        ORDERS_API_AUDIENCE: ORDERS_API,
        LISTEN: '127.0.0.1:0',
      },
    });
    child = c;
    c.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    url = await listeningURL(c, /^listening (\S+)\n/, 'server.mjs', 30000, () => stderr);
    orch = await MandateClient.discover(srv.issuer, { clientId: 'orchestrator', clientSecret: 'orch-secret' });
  });

  after(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGINT');
      await exited;
    }
    api?.closeAllConnections();
    await new Promise<void>((r) => (api ? api.close(() => r()) : r()));
    await apiVerifier?.close();
    await srv?.stop();
  });

  async function researcher(scope: string): Promise<Token> {
    const root = await orch.mint({ scope: 'tools:* orders:refund', audience: ORDERS_MCP });
    return orch.delegateToAgent(root, orch.spawnAgent('researcher-1'), { scope, audience: ORDERS_MCP });
  }

  it('prints exactly one stdout line, and tells the story: search, refund 40 by the audience exchange, 400 refused by name', async () => {
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/mcp$/);
    const tok = await researcher('tools:search_orders tools:refund_order orders:refund');
    const client = new Client({ name: 'researcher-1', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(url), { fetch: mcpFetch(tok) }));
    assert.deepEqual((await client.listTools()).tools.map((t) => t.name).sort(), ['refund_order', 'search_orders']);
    const found = await client.callTool({ name: 'search_orders', arguments: { query: 'late' } });
    assert.match(JSON.stringify(found.content), /o-1/);
    const refund = await client.callTool({ name: 'refund_order', arguments: { order: 'o-1', amount: 40 } });
    assert.equal(refund.isError, undefined, JSON.stringify(refund.content));
    const saw = JSON.parse((refund.content as Array<{ text: string }>)[0].text) as { refunded: string; amount: number; holder: string; actors: string[]; subject: string };
    assert.equal(saw.refunded, 'o-1');
    assert.equal(saw.amount, 40);
    assert.equal(saw.holder, 'orders-mcp');
    assert.deepEqual(saw.actors, ['orders-mcp', 'orchestrator/researcher-1']);
    assert.equal(saw.subject, 'orchestrator');
    try {
      await client.callTool({ name: 'refund_order', arguments: { order: 'o-2', amount: 400 } });
      assert.fail('a refund of 400 went through');
    } catch (e) {
      assert.ok(e instanceof McpError, String(e));
      assert.equal(e.code, DENIED_CODE);
      assert.deepEqual((e.data as { policies: string[] }).policies, ['refunds-below-100-at-depth-1']);
    }
    await client.close();
    assert.match(stderr, /mcp request denied .*refunds-below-100-at-depth-1/);
    assert.match(stderr, /audience exchange caller=/);
    assert.ok(!stderr.includes(tok.value), 'the server logged a whole token');
  });

  it("cannot exchange a token whose scopes hold none of the API's (the exchange stays within the received token's scope)", async () => {
    const tok = await researcher('tools:search_orders tools:refund_order');
    const client = new Client({ name: 'researcher-1', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(url), { fetch: mcpFetch(tok) }));
    const r = await client.callTool({ name: 'refund_order', arguments: { order: 'o-1', amount: 40 } });
    assert.equal(r.isError, true);
    assert.match(JSON.stringify(r.content), /invalid_scope/);
    await client.close();
  });
});
