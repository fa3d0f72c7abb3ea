// The example's TypeScript MCP server, "orders" (examples/mcp, README there):
// an McpServer of the official SDK guarded by @mandate-auth/sdk/mcp. Every
// request's token is verified locally for this server's canonical URI, every
// tools/call decided by the caller's chain and arguments with the example's
// Cedar policies; refund_order calls the downstream orders API on the
// caller's behalf with a token of its own, got by the audience exchange —
// never the caller's token.
//
// Environment: MANDATE_ISSUER, MCP_FEED_ID and MCP_FEED_SECRET (the revocation
// feed's credentials), MCP_CLIENT_ID and MCP_CLIENT_SECRET (this server's own
// client, registered with `serves: [MCP_SERVER_URI]`), MCP_SERVER_URI,
// MCP_POLICY_DIR, ORDERS_API_URL, ORDERS_API_AUDIENCE, LISTEN (host:port,
// default 127.0.0.1:0).
//
// Prints one line, `listening http://HOST:PORT/mcp`, on stdout when ready;
// logs go to stderr, with jtis, never a whole token.
import { createServer } from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { DPoPKey, MandateClient, MandateError, Verifier } from '@mandate-auth/sdk';
import { CallPolicy } from '@mandate-auth/sdk/cedar';
import { McpGuard, mandateChain, receivedToken, resourceMetadataUrl } from '@mandate-auth/sdk/mcp';

function env(name, fallback) {
  const v = process.env[name] ?? fallback;
  if (v === undefined || v === '') {
    process.stderr.write(`orders-mcp: set ${name}\n`);
    process.exit(2);
  }
  return v;
}

const issuer = env('MANDATE_ISSUER');
const serverURI = env('MCP_SERVER_URI');
const apiURL = env('ORDERS_API_URL').replace(/\/$/, '');
const apiAudience = env('ORDERS_API_AUDIENCE');
const listen = env('LISTEN', '127.0.0.1:0');

const log = (msg, fields = {}) => process.stderr.write(`${msg}${Object.entries(fields).map(([k, v]) => ` ${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join('')}\n`);

// A few fake orders to search.
const ORDERS = [
  { id: 'o-1', customer: 'ada', total: 40, status: 'delivered late' },
  { id: 'o-2', customer: 'grace', total: 400, status: 'delivered' },
  { id: 'o-3', customer: 'linus', total: 15, status: 'lost in transit' },
];

const text = (t) => ({ content: [{ type: 'text', text: t }] });

async function main() {
  const sep = listen.lastIndexOf(':');
  const host = listen.slice(0, sep).replace(/^\[(.*)\]$/, '$1') || '127.0.0.1';
  const port = Number(listen.slice(sep + 1) || '0');
  const http = createServer();
  await new Promise((resolve, reject) => {
    http.once('error', reject);
    http.listen(port, host, resolve);
  });
  const addr = http.address();
  const publicURL = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;

  const verifier = await Verifier.discover({
    issuer,
    audience: serverURI,
    clientId: env('MCP_FEED_ID'),
    clientSecret: env('MCP_FEED_SECRET'),
    publicUrl: publicURL, // DPoP proofs name the URL the agents reach, never the Host header
    resourceMetadataUrl: resourceMetadataUrl(serverURI),
  });
  const policy = await CallPolicy.loadDir(env('MCP_POLICY_DIR'));
  const guard = new McpGuard(verifier, {
    server: serverURI,
    policy,
    log: ({ msg, ...fields }) => log(msg, fields),
  });
  // This server's own identity (registered with serves: [MCP_SERVER_URI]) and
  // key: the tokens it gets downstream are bound to it, as they must be when
  // the caller's token is bound.
  const self = await MandateClient.discover(issuer, {
    clientId: env('MCP_CLIENT_ID'),
    clientSecret: env('MCP_CLIENT_SECRET'),
    dpopKey: DPoPKey.generate(),
  });

  function build() {
    const server = new McpServer({ name: 'orders', version: '1.0.0' });
    server.registerTool(
      'search_orders',
      { description: 'Search orders by customer or status', inputSchema: { query: z.string() } },
      async ({ query }) => {
        const q = query.toLowerCase();
        const found = ORDERS.filter((o) => o.customer.includes(q) || o.status.includes(q) || o.id === q);
        return text(JSON.stringify(found));
      },
    );
    server.registerTool(
      'refund_order',
      { description: 'Refund (part of) an order through the orders API', inputSchema: { order: z.string(), amount: z.number() } },
      async ({ order, amount }, extra) => {
        const caller = mandateChain(extra);
        let downstream;
        try {
          downstream = await self.exchangeForDownstream(receivedToken(extra), apiAudience, { scope: 'orders:refund' });
        } catch (e) {
          const why = e instanceof MandateError ? `${e.error}: ${e.error_description}` : String(e);
          log('audience exchange refused', { caller: caller?.jti, holder: caller?.holder, error: why });
          return { ...text(`the audience exchange was refused: ${why}`), isError: true };
        }
        const view = downstream.decode();
        log('audience exchange', { caller: caller?.jti, holder: caller?.holder, downstream: view.jti, audience: apiAudience, actors: view.actors });
        const resp = await downstream.fetch(`${apiURL}/orders/${encodeURIComponent(order)}/refund`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ amount }),
        });
        const body = await resp.text();
        if (!resp.ok) return { ...text(`the orders API answered ${resp.status}: ${body.trim()}`), isError: true };
        return text(body.trim());
      },
    );
    return server;
  }

  const endpoint = guard.protect(build);
  const metadata = guard.metadataHandler(issuer, ['tools:*']);
  http.on('request', (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/mcp') void endpoint(req, res);
    else if (path === guard.metadataPath) metadata(req, res);
    else res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await guard.close();
    http.closeAllConnections();
    http.close();
    await verifier.close();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  log('orders MCP server ready', { server: serverURI, public: publicURL, policies: policy.ids() });
  process.stdout.write(`listening ${publicURL}/mcp\n`);
}

main().catch((e) => {
  process.stderr.write(`orders-mcp: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
