/**
 * Guarding MCP servers built with the official TypeScript SDK
 * (`@modelcontextprotocol/sdk`, streamable HTTP) with Mandate's chains, and
 * sending Mandate tokens from its client (docs/mcp.md).
 *
 * The guard stands in front of the SDK's StreamableHTTPServerTransport, on
 * Node `http` or Express (`McpGuard.protect`), and checks, in order:
 *
 * 1. the token of every HTTP request (Bearer, or DPoP with its proof checked
 *    against the verifier's publicUrl, never Host; a bound token as bearer
 *    refused), for the server's canonical URI: else 401 with
 *    `WWW-Authenticate … resource_metadata="…"`;
 * 2. the body, read once and strictly (`readMessage`): not JSON, a batch, a
 *    member given twice or a lone surrogate anywhere is 400, so no reader
 *    can see another message in the same text;
 * 3. the scope a tools/call (`tools:<name>`), resources/read or prompts/get
 *    needs: else 403 `insufficient_scope` with `scope="…"`, before the MCP
 *    server reads anything;
 * 4. the session (`Mcp-Session-Id`): it belongs to the holder, sub_iss and
 *    sub whose token opened it; another is 403, an unknown one 404;
 * 5. every request but initialize, ping, the lists and notifications, by
 *    Cedar on the arguments' own text (`decideMCP`): a denial is a JSON-RPC
 *    error, code 403, naming the policies, logged with them and the jti;
 *    the MCP server never sees the request.
 *
 * The message the SDK is handed is the one decided on (the reader's value,
 * what JSON.parse would read of a text the reader found unambiguous);
 * tools/list answers only the tools the chain's scopes cover. Tool handlers
 * find the chain and the token they may exchange (never forward) with
 * `mandateChain(extra)` and `receivedToken(extra)`.
 *
 * On the client side, `mcpFetch(token)` is the `fetch` option of the
 * official StreamableHTTPClientTransport: every request carries the token,
 * a bound one with a fresh DPoP proof (retried once with the server's
 * nonce), and no redirect is followed.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { StreamableHTTPServerTransport, type StreamableHTTPServerTransportOptions } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { Transport, TransportSendOptions } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage, MessageExtraInfo } from '@modelcontextprotocol/sdk/types.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import type { CallPolicy } from './cedar.js';
import type { Chain } from './chain.js';
import type { Token } from './client.js';
import { ConfigError, InsufficientScopeError, ProtocolError } from './errors.js';
import type { FetchLike } from './http.js';
import { type MCPDecision, type MCPMessage, MessageError, decideMCP, decisionChain, isDecided, readMessage, requiredScope } from './mcpdecide.js';
import { nodeRequestParts, parseAuthorization, writeRejection } from './middleware.js';
import { coveredBy } from './scope.js';
import type { Verifier } from './verifier.js';

export {
  ArgumentsError,
  MAX_ARGUMENTS_BYTES,
  MAX_ARGUMENTS_DEPTH,
  type MCPChain,
  type MCPDecision,
  type MCPMessage,
  type MCPRequest,
  MessageError,
  UNDECIDED_METHODS,
  decideMCP,
  isDecided,
  parseArguments,
  readMessage,
  requiredScope,
} from './mcpdecide.js';

/**
 * The JSON-RPC error code of a request the guard refuses: 403, as the Go
 * guard (-32003, which DESIGN.md first named, is reserved by the official Go
 * SDK; docs/decisions.md).
 */
export const DENIED_CODE = 403;

/** The most bytes of a JSON-RPC message the guard reads (default; a tool's arguments are bounded far lower). */
export const DEFAULT_MAX_MESSAGE_BYTES = 4 << 20;

/** What a guarded MCP server is: an McpServer or a low-level Server of the official SDK. */
export interface MCPServerLike {
  connect(transport: Transport): Promise<void>;
  close(): Promise<void>;
}

/** One line of the guard's log (denials and refusals); never a token. */
export type GuardLogEntry = Record<string, unknown> & { msg: string };

export interface McpGuardConfig {
  /** The MCP server's canonical URI ("https://mcp.orders.example/mcp"): the verifier's audience and context.server. */
  server: string;
  /** Decides each request (CallPolicy from `@mandate-auth/sdk/cedar`). Required. */
  policy: CallPolicy;
  /** A holder's groups (principal in Group::"…"). */
  groups?: (holder: string) => readonly string[];
  /** Receives one entry per denial or refusal (default: a JSON line on stderr). */
  log?: (entry: GuardLogEntry) => void;
  /** The most bytes of a JSON-RPC message (default 4 MiB): beyond, 413. */
  maxMessageBytes?: number;
  /** The most open sessions (default 10,000): beyond, the least recently used is closed. */
  maxSessions?: number;
}

export interface ProtectOptions {
  /** No sessions: a new server and transport per request (the SDK's stateless mode). Default false. */
  stateless?: boolean;
  /** Passed to each StreamableHTTPServerTransport (enableJsonResponse, eventStore, …); sessionIdGenerator and onsessioninitialized are the guard's. */
  transport?: Omit<StreamableHTTPServerTransportOptions, 'sessionIdGenerator' | 'onsessioninitialized'>;
}

/** RFC 9728 protected-resource metadata. */
export interface ResourceMetadata {
  resource: string;
  authorization_servers: string[];
  scopes_supported?: string[];
  bearer_methods_supported: string[];
}

/** Where a resource's metadata is served: the well-known segment between the host and the resource's path (RFC 9728 §3.1; Go's ResourceMetadataPath). */
export function resourceMetadataPath(resource: string): string {
  let p = '/.well-known/oauth-protected-resource';
  try {
    const u = new URL(resource);
    p += u.pathname.replace(/\/$/, '');
    if (u.search) p += u.search;
  } catch {
    // not a URL: the bare well-known path
  }
  return p;
}

/** The absolute URL of a resource's metadata, for the verifier's resourceMetadataUrl (Go's ResourceMetadata.URL). */
export function resourceMetadataUrl(resource: string): string {
  const u = new URL(resource);
  return `${u.protocol}//${u.host}${resourceMetadataPath(resource)}`;
}

const AUTH_KEY = 'mandate';

/** The verified chain of the request a tool handler serves (its `extra`), or undefined outside the guard. */
export function mandateChain(extra: { authInfo?: AuthInfo } | undefined): Chain | undefined {
  const c = extra?.authInfo?.extra?.[AUTH_KEY];
  return c && typeof c === 'object' ? (c as Chain) : undefined;
}

/**
 * The token the request carried, for an audience exchange
 * (MandateClient.exchangeForDownstream) — never to be forwarded.
 */
export function receivedToken(extra: { authInfo?: AuthInfo } | undefined): string | undefined {
  return mandateChain(extra) ? extra?.authInfo?.token : undefined;
}

interface Session {
  transport: StreamableHTTPServerTransport;
  server: MCPServerLike;
  owner: string;
}

/** Whom a session belongs to: the holder, for the subject (as Go's sessionOwner). */
function ownerOf(c: Chain): string {
  return JSON.stringify([c.holder, c.subjectIssuer, c.subject]);
}

function defaultLog(e: GuardLogEntry): void {
  process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level: 'INFO', ...e }) + '\n');
}

function single(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function writeJSON(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', ...headers });
  res.end(JSON.stringify(body) + '\n');
}

function rpcError(res: ServerResponse, status: number, code: number, message: string, id: unknown = null): void {
  writeJSON(res, status, { jsonrpc: '2.0', id, error: { code, message } });
}

/** Reads a request body of at most limit bytes; null when larger. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let done = false;
    req.on('data', (c: Buffer) => {
      if (done) return;
      total += c.length;
      if (total > limit) {
        done = true;
        req.resume();
        resolve(null);
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!done) {
        done = true;
        resolve(Buffer.concat(chunks));
      }
    });
    req.on('error', reject);
    req.on('close', () => {
      if (!done) {
        done = true;
        reject(new Error('the request was aborted before its body ended'));
      }
    });
  });
}

/**
 * Guards one MCP server: see the module documentation. Make one per server
 * (its canonical URI), with a Verifier whose audience is that URI and whose
 * resourceMetadataUrl is resourceMetadataUrl(server).
 */
export class McpGuard {
  readonly server: string;
  private readonly v: Verifier;
  private readonly cfg: McpGuardConfig;
  private readonly log: (e: GuardLogEntry) => void;
  private readonly sessions = new Map<string, Session>();
  private readonly maxMessage: number;
  private readonly maxSessions: number;

  constructor(verifier: Verifier, config: McpGuardConfig) {
    if (!verifier || !config || !config.policy) throw new ConfigError('mcp guard: a verifier and a policy are required');
    if (!config.server || verifier.audience.replace(/\/$/, '') !== config.server.replace(/\/$/, '')) {
      throw new ConfigError(`mcp guard: the verifier's audience "${verifier.audience}" must be the server's canonical URI "${config.server}"`);
    }
    if (!verifier.challengeParams.resourceMetadataUrl) {
      throw new ConfigError(
        `mcp guard: set the verifier's resourceMetadataUrl (resourceMetadataUrl("${config.server}")): MCP clients find Mandate through the 401's resource_metadata`,
      );
    }
    this.v = verifier;
    this.cfg = config;
    this.server = config.server;
    this.log = config.log ?? defaultLog;
    this.maxMessage = config.maxMessageBytes && config.maxMessageBytes > 0 ? config.maxMessageBytes : DEFAULT_MAX_MESSAGE_BYTES;
    this.maxSessions = config.maxSessions && config.maxSessions > 0 ? config.maxSessions : 10000;
  }

  /** The number of open sessions. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /**
   * Decides one message for a chain: null when nothing is decided
   * (responses, notifications, initialize, ping, the lists), else the MCP
   * decision (decideMCP). Never throws. What protect() calls per request.
   */
  decide(c: Chain, m: MCPMessage): MCPDecision | null {
    if (m.kind !== 'request' || !isDecided(m.method)) return null;
    if (m.badParams) {
      return { verdict: 'deny', allow: false, forbidden: false, policies: [], reason: `${m.method}: params is not an object` };
    }
    if ((m.method === 'tools/call' || m.method === 'prompts/get') && m.name === undefined) {
      return { verdict: 'deny', allow: false, forbidden: false, policies: [], reason: `${m.method} without a name` };
    }
    if (m.method === 'resources/read' && m.uri === undefined) {
      return { verdict: 'deny', allow: false, forbidden: false, policies: [], reason: 'resources/read without a uri' };
    }
    return decideMCP(this.cfg.policy, {
      server: this.server,
      method: m.method,
      name: m.name,
      uri: m.uri,
      arguments: m.argumentsText,
      groups: this.cfg.groups ? this.cfg.groups(c.holder) : [],
      chain: decisionChain(c),
    });
  }

  /** The server's RFC 9728 metadata, naming Mandate (issuer) as its authorization server. */
  metadata(issuer: string, scopes?: readonly string[]): ResourceMetadata {
    const md: ResourceMetadata = { resource: this.server, authorization_servers: [issuer], bearer_methods_supported: ['header'] };
    if (scopes && scopes.length > 0) md.scopes_supported = [...scopes];
    return md;
  }

  /** Where to serve the metadata (resourceMetadataPath(server)). */
  get metadataPath(): string {
    return resourceMetadataPath(this.server);
  }

  /** A Node handler serving the metadata (GET, HEAD). Mount it at metadataPath. */
  metadataHandler(issuer: string, scopes?: readonly string[]): (req: IncomingMessage, res: ServerResponse) => void {
    const body = JSON.stringify(this.metadata(issuer, scopes));
    return (req, res) => {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' });
        res.end('method not allowed\n');
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
  }

  /** Closes every session (and its server). */
  async close(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(all.map((s) => Promise.allSettled([s.transport.close(), s.server.close()])));
  }

  /**
   * The guarded MCP endpoint, a Node http / Express handler `(req, res)`:
   * every request is checked (module documentation) before the SDK's
   * transport sees it. factory makes the MCP server of a new session (an
   * McpServer with its tools; one per session, as the SDK requires). Mount
   * it where the body is still unread (no JSON body parser before it).
   */
  protect(factory: () => MCPServerLike | Promise<MCPServerLike>, options: ProtectOptions = {}): (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void) => Promise<void> {
    return async (req, res, next) => {
      try {
        await this.serve(req, res, factory, options);
      } catch (e) {
        if (next) next(e);
        else if (!res.headersSent) rpcError(res, 500, -32603, 'Internal error');
        else res.end();
      }
    };
  }

  private async serve(req: IncomingMessage, res: ServerResponse, factory: () => MCPServerLike | Promise<MCPServerLike>, o: ProtectOptions): Promise<void> {
    let chain: Chain;
    const parts = nodeRequestParts(req);
    try {
      chain = await this.v.authenticate(parts);
    } catch (e) {
      writeRejection(res, this.v.reject(e));
      return;
    }
    const token = parseAuthorization(parts.authorization).token;
    const method = req.method ?? 'GET';
    let msg: MCPMessage | undefined;
    if (method === 'POST') {
      if ((req as { body?: unknown }).body !== undefined && req.readableEnded) {
        throw new ConfigError('mcp guard: the request body was read before the guard (mount it without a JSON body parser before it)');
      }
      const body = await readBody(req, this.maxMessage);
      if (body === null) {
        res.setHeader('Connection', 'close');
        rpcError(res, 413, -32600, `Invalid Request: the message is larger than ${this.maxMessage} bytes`);
        return;
      }
      let text: string;
      try {
        text = new TextDecoder('utf-8', { fatal: true }).decode(body);
      } catch {
        rpcError(res, 400, -32700, 'Parse error: the message is not UTF-8');
        return;
      }
      try {
        msg = readMessage(text);
      } catch (e) {
        if (!(e instanceof MessageError)) throw e;
        this.log({ msg: 'mcp request refused', error: 'invalid_request', reason: e.error_description, jti: chain.jti, holder: chain.holder });
        rpcError(res, 400, e.code, e.error_description);
        return;
      }
      if (msg.kind === 'request' && !(msg.method === 'tools/call' && msg.name === undefined)) {
        // (a tools/call without a name needs no scope to be refused: decide() denies it)
        const scope = requiredScope(msg.method, msg.name ?? '');
        if (scope !== '' && !coveredBy(chain.scopes, scope)) {
          this.log({ msg: 'mcp request refused', error: 'insufficient_scope', scope, method: msg.method, jti: chain.jti, holder: chain.holder });
          writeRejection(res, this.v.reject(new InsufficientScopeError(`the token does not grant ${scope}`, scope)));
          return;
        }
      }
    } else if (method !== 'GET' && method !== 'DELETE') {
      res.writeHead(405, { Allow: 'GET, POST, DELETE', 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('method not allowed\n');
      return;
    }

    // The session: the guard's own map, bound to the owner.
    const owner = ownerOf(chain);
    const sid = single(req, 'mcp-session-id');
    let session: Session | undefined;
    let perRequest = false;
    if (sid !== undefined) {
      session = this.sessions.get(sid);
      if (!session) {
        rpcError(res, 404, -32001, 'Session not found');
        return;
      }
      if (session.owner !== owner) {
        this.log({ msg: 'mcp request refused', error: 'session_owner', reason: "another agent's session", jti: chain.jti, holder: chain.holder });
        rpcError(res, 403, -32600, 'Forbidden: the session belongs to another agent or subject');
        return;
      }
      this.sessions.delete(sid); // least recently used last
      this.sessions.set(sid, session);
    } else if (o.stateless) {
      if (method !== 'POST') {
        res.writeHead(405, { Allow: 'POST', 'Content-Type': 'text/plain; charset=utf-8' });
        res.end('this MCP server is stateless: POST only\n');
        return;
      }
      perRequest = true;
    } else if (!(method === 'POST' && msg?.kind === 'request' && msg.method === 'initialize')) {
      rpcError(res, 400, -32000, 'Bad Request: Mcp-Session-Id header is required');
      return;
    }

    // Cedar, on the message's own text.
    if (msg) {
      const d = this.decide(chain, msg);
      if (d && !d.allow) {
        this.log({
          msg: 'mcp request denied',
          method: msg.method,
          name: msg.name ?? msg.uri ?? '',
          verdict: d.verdict,
          policies: d.policies,
          reason: d.reason,
          jti: chain.jti,
          holder: chain.holder,
          root: chain.root,
        });
        writeJSON(res, 200, {
          jsonrpc: '2.0',
          id: msg.value.id ?? null,
          error: { code: DENIED_CODE, message: 'denied: ' + d.reason, data: { policies: d.policies, reason: d.reason } },
        });
        return;
      }
    }

    const auth: AuthInfo = {
      token,
      clientId: chain.holder,
      scopes: [...chain.scopes],
      expiresAt: chain.exp,
      resource: new URL(this.server),
      extra: { [AUTH_KEY]: chain },
    };
    (req as IncomingMessage & { auth?: AuthInfo }).auth = auth;

    if (!session) {
      const transport = new StreamableHTTPServerTransport({
        ...o.transport,
        sessionIdGenerator: perRequest ? undefined : () => randomUUID(),
        onsessioninitialized: perRequest
          ? undefined
          : (id: string) => {
              this.sessions.set(id, { transport, server, owner });
              while (this.sessions.size > this.maxSessions) {
                const [oldest, s] = this.sessions.entries().next().value as [string, Session];
                this.sessions.delete(oldest);
                void Promise.allSettled([s.transport.close(), s.server.close()]);
              }
            },
      });
      const server = await factory();
      const guarded = new GuardedTransport(transport, () => {
        const id = transport.sessionId;
        if (id !== undefined && this.sessions.get(id)?.transport === transport) this.sessions.delete(id);
      });
      await server.connect(guarded);
      if (perRequest) {
        res.on('close', () => {
          void Promise.allSettled([transport.close(), server.close()]);
        });
      }
      session = { transport, server, owner };
    }
    await session.transport.handleRequest(req as IncomingMessage & { auth?: AuthInfo }, res, msg?.value);
  }
}

/**
 * The transport the MCP server is connected to: the SDK's, with two
 * checks of the guard's — a request that reached it without a verified
 * chain is refused (a guard bypassed is a guard failing closed), and the
 * answer to a tools/list keeps only the tools the chain's scopes cover.
 */
class GuardedTransport implements Transport {
  private handler?: (message: JSONRPCMessage, extra?: MessageExtraInfo) => void;
  private closeHandler?: () => void;
  private readonly lists = new Map<string | number, Chain>();

  constructor(
    private readonly inner: StreamableHTTPServerTransport,
    private readonly onClosed: () => void,
  ) {
    inner.onmessage = (m, extra) => this.receive(m, extra);
    inner.onclose = () => {
      this.onClosed();
      this.closeHandler?.();
    };
  }

  get sessionId(): string | undefined {
    return this.inner.sessionId;
  }

  set onclose(h: (() => void) | undefined) {
    this.closeHandler = h;
  }
  get onclose(): (() => void) | undefined {
    return this.closeHandler;
  }
  set onerror(h: ((e: Error) => void) | undefined) {
    this.inner.onerror = h;
  }
  get onerror(): ((e: Error) => void) | undefined {
    return this.inner.onerror;
  }
  set onmessage(h: ((message: JSONRPCMessage, extra?: MessageExtraInfo) => void) | undefined) {
    this.handler = h;
  }
  get onmessage(): ((message: JSONRPCMessage, extra?: MessageExtraInfo) => void) | undefined {
    return this.handler;
  }

  start(): Promise<void> {
    return this.inner.start();
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private receive(m: JSONRPCMessage, extra?: MessageExtraInfo): void {
    const r = m as { method?: unknown; id?: string | number };
    if (typeof r.method === 'string' && r.id !== undefined) {
      const c = mandateChain(extra);
      if (!c) {
        void this.inner.send({
          jsonrpc: '2.0',
          id: r.id,
          error: { code: DENIED_CODE, message: 'denied: no verified Mandate chain reached the MCP server (serve it through McpGuard.protect)', data: { policies: [], reason: 'no verified Mandate chain' } },
        } as JSONRPCMessage);
        return;
      }
      if (r.method === 'tools/list') this.lists.set(r.id, c);
    }
    this.handler?.(m, extra);
  }

  send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    const r = message as { id?: string | number; result?: { tools?: Array<{ name?: unknown }> } };
    if (r.id !== undefined && this.lists.has(r.id) && ('result' in r || 'error' in r)) {
      const c = this.lists.get(r.id) as Chain;
      this.lists.delete(r.id);
      if (r.result && Array.isArray(r.result.tools)) {
        const tools = r.result.tools.filter((t) => typeof t.name === 'string' && coveredBy(c.scopes, 'tools:' + t.name));
        message = { ...r, result: { ...r.result, tools } } as unknown as JSONRPCMessage;
      }
    }
    return this.inner.send(message, options);
  }
}

/**
 * The `fetch` of an official MCP client transport that sends a Mandate
 * token with every request:
 * `new StreamableHTTPClientTransport(url, { fetch: mcpFetch(token) })`.
 * A bound token goes with a fresh DPoP proof for each request's method and
 * URL, retried once with the server's nonce when it asks for one (Token.fetch);
 * a redirect is never followed (a 3xx answer is a ProtocolError). token may
 * be a function returning the current token (renewed as the caller likes).
 */
export function mcpFetch(token: Token | (() => Token | Promise<Token>)): FetchLike {
  return async (input, init = {}) => {
    const t = typeof token === 'function' ? await token() : token;
    let url: string | URL;
    if (typeof input === 'string' || input instanceof URL) url = input;
    else {
      url = input.url;
      init = { method: input.method, headers: input.headers, body: init.body, ...init };
    }
    const resp = await t.fetch(url, init);
    if (resp.status >= 300 && resp.status < 400) {
      await resp.body?.cancel().catch(() => undefined);
      throw new ProtocolError(`the MCP server answered a redirect (HTTP ${resp.status}): not followed with the token`, resp.status);
    }
    return resp;
  };
}
