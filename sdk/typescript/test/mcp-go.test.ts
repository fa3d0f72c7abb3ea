// Interop: the official TypeScript MCP client, with this SDK's token hook
// (mcpFetch), against the Go MCP server guarded by chain/mcpguard — the
// example's inventory server (`go run ./examples/mcp inventory`, or the
// binary at $MCP_EXAMPLE_BIN, else built from the checkout) — and a real
// mandate serve. Ephemeral agents' DPoP-bound tokens, as in the story.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { MandateClient, type Token } from '../dist/index.js';
import { DENIED_CODE, mcpFetch } from '../dist/mcp.js';
import { REPO_DIR, type Server, listeningURL, startServer } from './harness.js';

const INVENTORY = 'https://inventory-mcp.example/mcp';

const CONFIG = `
clients:
  - id: orchestrator
    secret: orch-secret
    grants: [client_credentials, token_exchange]
    scopes: ["tools:*"]
    audiences: ["${INVENTORY}"]
    ephemeral:
      scopes: ["tools:*"]
      audiences: ["${INVENTORY}"]
  - id: mcp-feed
    secret: feed-secret
    role: resource_server
`;

/** The Go example's binary: $MCP_EXAMPLE_BIN, .build/example-mcp, or built into a temp dir; '' when there is no Go. */
function exampleBin(): { bin: string; cleanup: () => void } {
  const env = process.env.MCP_EXAMPLE_BIN;
  if (env && existsSync(env)) return { bin: env, cleanup: () => undefined };
  const built = join(REPO_DIR, '.build', 'example-mcp');
  if (existsSync(built)) return { bin: built, cleanup: () => undefined };
  const dir = mkdtempSync(join(tmpdir(), 'mandate-example-mcp-'));
  const out = join(dir, 'example-mcp');
  const r = spawnSync('go', ['build', '-o', out, './examples/mcp'], { cwd: REPO_DIR, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return { bin: '', cleanup: () => undefined };
  }
  return { bin: out, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

describe('the official TypeScript MCP client against the Go guarded server (examples/mcp inventory)', () => {
  let srv: Server;
  let child: ChildProcess | null = null;
  let url = '';
  let orch: MandateClient;
  let skip: string | false = false;
  let cleanup = (): void => undefined;

  before(async () => {
    const b = exampleBin();
    cleanup = b.cleanup;
    if (!b.bin) {
      if (process.env.CI) throw new Error('no Go MCP example binary (set MCP_EXAMPLE_BIN)');
      skip = 'no Go MCP example binary (set MCP_EXAMPLE_BIN, or install go): the Go interop test is SKIPPED';
      return;
    }
    srv = await startServer(CONFIG);
    const c = spawn(b.bin, ['inventory'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        MANDATE_ISSUER: srv.issuer,
        MCP_FEED_ID: 'mcp-feed',
        MCP_FEED_SECRET: 'feed-secret',
        MCP_SERVER_URI: INVENTORY,
        MCP_POLICY_DIR: join(REPO_DIR, 'examples', 'mcp', 'policies'),
        LISTEN: '127.0.0.1:0',
      },
    });
    child = c;
    let log = '';
    c.stderr!.setEncoding('utf8').on('data', (d: string) => (log += d));
    url = await listeningURL(c, /^listening (\S+)$/m, 'the Go inventory server', 60000, () => log);
    orch = await MandateClient.discover(srv.issuer, { clientId: 'orchestrator', clientSecret: 'orch-secret' });
  });

  after(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await srv?.stop();
    cleanup();
  });

  async function agentToken(name: string, scope: string): Promise<Token> {
    const root = await orch.mint({ scope: 'tools:*', audience: INVENTORY });
    return orch.delegateToAgent(root, orch.spawnAgent(name), { scope, audience: INVENTORY });
  }

  async function connect(tok: Token): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
    const transport = new StreamableHTTPClientTransport(new URL(url), { fetch: mcpFetch(tok) });
    const client = new Client({ name: 'ts-agent', version: '1.0.0' });
    await client.connect(transport);
    return { client, transport };
  }

  it('a stock agent lists and calls its tool with a DPoP-bound token; reserve_stock is 403 insufficient_scope', async (t) => {
    if (skip) return t.skip(skip);
    const tok = await agentToken('stock-1', 'tools:check_stock');
    assert.ok(tok.bound);
    const { client, transport } = await connect(tok);
    const list = await client.listTools();
    assert.deepEqual(list.tools.map((x) => x.name), ['check_stock']);
    const r = await client.callTool({ name: 'check_stock', arguments: { sku: 'sku-1' } });
    assert.deepEqual(r.content, [{ type: 'text', text: 'sku-1: 12 in stock' }]);
    await assert.rejects(client.callTool({ name: 'reserve_stock', arguments: { sku: 'sku-1', qty: 1 } }));
    const resp = await tok.fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18', 'mcp-session-id': transport.sessionId ?? '' },
      body: '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"reserve_stock","arguments":{"sku":"sku-1","qty":1}}}',
    });
    assert.equal(resp.status, 403);
    assert.match(resp.headers.get('www-authenticate') ?? '', /scope="tools:reserve_stock"/);
    // The same bound token as a bearer token is refused.
    const bearer = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${tok.value}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
    });
    assert.equal(bearer.status, 401);
    await client.close();
  });

  it("a denial by the Go guard reaches the TypeScript client as a JSON-RPC 403 with its data", async (t) => {
    if (skip) return t.skip(skip);
    const tok = await agentToken('researcher-1', 'tools:*');
    const { client } = await connect(tok);
    try {
      await client.callTool({ name: 'check_stock', arguments: { sku: 'sku-1' } });
      assert.fail('a researcher checked stock');
    } catch (e) {
      assert.ok(e instanceof McpError, String(e));
      assert.equal(e.code, DENIED_CODE);
      assert.deepEqual((e.data as { policies: string[] }).policies, []);
      assert.match(e.message, /no policy permits this request/);
    }
    await client.close();
  });
});
