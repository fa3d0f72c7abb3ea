// The official TypeScript MCP client (@modelcontextprotocol/sdk), sending a
// Mandate token through @mandate-auth/sdk/mcp's mcpFetch, driven by the
// Python suite's test_mcp_ts_client.py against the guarded Python server.
//
// Reads one JSON object on stdin:
//   {"url": "http://127.0.0.1:…/mcp",
//    "cases": [{"label": "…", "token": "<compact JWS>", "key": "<PKCS#8 PEM>" | null,
//               "steps": [{"op": "list"} | {"op": "call", "name": "…", "arguments": {…}}]}]}
// and prints one JSON line per event: initialize, each step, close. A
// JSON-RPC error is {"error": "jsonrpc", code, message, policies, reason};
// an HTTP refusal is {"error": "http", status, www, body}. Anything else
// unexpected ends the script with a non-zero status.
//
// Both SDKs are loaded from sdk/typescript (its dist and node_modules), by
// file URL: Node resolves bare imports from the importing file's directory,
// and this one is not under sdk/typescript.
import { readFileSync } from 'node:fs';

const TS = new URL('../../typescript/', import.meta.url);
const PKG = new URL('node_modules/@modelcontextprotocol/sdk/', TS);

/** The ESM file of an export of the official SDK, read from its package.json exports map. */
function official(sub) {
  const exp = JSON.parse(readFileSync(new URL('package.json', PKG), 'utf8')).exports;
  const entry = exp[sub] ?? exp['./*'];
  const target = typeof entry === 'string' ? entry : entry.import ?? entry.default;
  return new URL(exp[sub] ? target : target.replace('*', sub.slice(2)), PKG).href;
}

const { Client } = await import(official('./client/index.js'));
const { StreamableHTTPClientTransport, StreamableHTTPError } = await import(official('./client/streamableHttp.js'));
const { McpError } = await import(official('./types.js'));
const { DPoPKey, Token, decodeToken } = await import(new URL('dist/index.js', TS).href);
const { mcpFetch } = await import(new URL('dist/mcp.js', TS).href);

// Deterministic and bounded: never hang the Python suite.
setTimeout(() => {
  process.stderr.write('ts_client.mjs: timed out\n');
  process.exit(3);
}, 30_000).unref();

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

/** A token minted elsewhere (the Python SDK), with its holder's key when bound. */
function tokenOf(c) {
  const v = decodeToken(c.token);
  return new Token({
    value: c.token,
    type: v.bound ? 'DPoP' : 'Bearer',
    scope: v.scopes.join(' '),
    expiresAt: v.expiresAt ?? new Date(0),
    key: c.key ? DPoPKey.fromPrivateKey(c.key) : null,
  });
}

const spec = JSON.parse(readFileSync(0, 'utf8'));

for (const c of spec.cases) {
  const token = tokenOf(c);
  // mcpFetch, watched: an HTTP refusal's status, challenge and body, which the transport's error only quotes.
  const inner = mcpFetch(token);
  let refused = null;
  const fetch = async (input, init) => {
    const r = await inner(input, init);
    if (r.status >= 400) {
      const text = await r.clone().text();
      let body = text;
      try {
        body = JSON.parse(text);
      } catch {
        // not JSON: kept as text
      }
      refused = { status: r.status, www: r.headers.get('www-authenticate'), body };
    }
    return r;
  };
  const transport = new StreamableHTTPClientTransport(new URL(spec.url), { fetch });
  const client = new Client({ name: 'ts-agent', version: '1.0.0' });
  await client.connect(transport);
  out({
    case: c.label,
    op: 'initialize',
    bound: token.bound,
    protocol: transport.protocolVersion ?? null,
    session: transport.sessionId !== undefined,
    server: client.getServerVersion()?.name ?? null,
  });
  for (const s of c.steps) {
    refused = null;
    try {
      if (s.op === 'list') {
        const { tools } = await client.listTools();
        out({ case: c.label, op: 'list', tools: tools.map((t) => t.name).sort() });
      } else if (s.op === 'call') {
        const r = await client.callTool({ name: s.name, arguments: s.arguments ?? {} });
        const text = r.content.map((x) => x.text ?? '').join('');
        out({ case: c.label, op: 'call', name: s.name, ok: !r.isError, text, structured: r.structuredContent ?? null });
      } else {
        throw new Error(`unknown step ${JSON.stringify(s)}`);
      }
    } catch (e) {
      if (e instanceof McpError) {
        out({ case: c.label, op: s.op, name: s.name, error: 'jsonrpc', code: e.code, message: e.message, policies: e.data?.policies ?? null, reason: e.data?.reason ?? null });
      } else if (e instanceof StreamableHTTPError && refused) {
        out({ case: c.label, op: s.op, name: s.name, error: 'http', status: e.code, www: refused.www, body: refused.body });
      } else {
        throw e;
      }
    }
  }
  await transport.terminateSession();
  await client.close();
  out({ case: c.label, op: 'close' });
}
