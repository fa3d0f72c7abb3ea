/**
 * Per-call Cedar decisions for resource servers, with the same policy files
 * and the same request as the Go verifier (policy/policy.go AuthorizeCall,
 * chain/authz): principal Agent::"<holder>" in its groups, the action and
 * resource the resource server names, and the chain in the context
 * (holder, subject, sub_iss, audiences, depth, actors, root, lineage, bound,
 * scopes, scope_patterns, scope_patterns_all).
 *
 * Cedar comes from the optional peer dependency @cedar-policy/cedar-wasm,
 * loaded only when a policy is loaded: a resource server that wants no Cedar
 * installs none. Fail closed: any evaluation error denies — an erroring
 * forbid too (Cedar skips erroring policies and reports them in its
 * diagnostics; they are checked here and turned into a denial), and so does
 * any failure of the library itself.
 */
import { readFile, readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { IncomingMessage } from 'node:http';
import type { Chain } from './chain.js';
import { InsufficientScopeError, PolicyError } from './errors.js';
import { wildcard } from './scope.js';
import type { NodeMiddleware } from './middleware.js';
import { nodeRequire } from './middleware.js';
import type { Verifier } from './verifier.js';
import type { CedarRecord, MCPChain, MCPRequest } from './mcpdecide.js';
import { decisionChain, mcpTarget } from './mcpdecide.js';

// The subset of @cedar-policy/cedar-wasm this module uses.
interface DetailedError {
  message: string;
}
interface CedarAnswer {
  type: 'success' | 'failure';
  errors?: DetailedError[];
  response?: { decision: 'allow' | 'deny'; diagnostics: { reason: string[]; errors: Array<{ policyId: string; error: DetailedError }> } };
}
interface CedarWasm {
  policySetTextToParts(text: string): { type: 'success'; policies: string[]; policy_templates: string[] } | { type: 'failure'; errors: DetailedError[] };
  policyToJson(p: string): { type: 'success'; json: { annotations?: Record<string, string>; conditions?: unknown } } | { type: 'failure'; errors: DetailedError[] };
  preparsePolicySet(id: string, ps: { staticPolicies: Record<string, string> }): { type: 'success' } | { type: 'failure'; errors: DetailedError[] };
  statefulIsAuthorized(call: unknown): CedarAnswer;
  isAuthorized(call: unknown): CedarAnswer;
}

let cedarModule: Promise<CedarWasm> | null = null;

/** Loads @cedar-policy/cedar-wasm (its Node build) once; a PolicyError says how to install it. */
export function loadCedar(): Promise<CedarWasm> {
  if (!cedarModule) {
    const name = '@cedar-policy/cedar-wasm/nodejs';
    cedarModule = (import(name) as Promise<CedarWasm & { default?: CedarWasm }>).then(
      (m) => (typeof m.policySetTextToParts === 'function' ? m : (m.default as CedarWasm)),
      (e: unknown) => {
        cedarModule = null;
        throw new PolicyError('per-call policies need the optional dependency @cedar-policy/cedar-wasm: npm install @cedar-policy/cedar-wasm', {
          cause: e,
        });
      },
    );
  }
  return cedarModule;
}

/** A policy outcome and the ids of the policies that determined it (Go's policy.Decision). */
export interface Decision {
  readonly allow: boolean;
  /** A forbid policy determined the denial (not the default deny, nor a failing policy). */
  readonly forbidden: boolean;
  readonly policies: readonly string[];
  readonly reason: string;
}

/** A Cedar entity, such as Tool::"search" or Table::"orders". */
export interface Entity {
  type: string;
  id: string;
}

/** One call as policy sees it (Go's policy.CallRequest). */
export interface CallRequest {
  holder: string;
  groups?: readonly string[];
  /** "call" when empty. */
  action?: string;
  resource: Entity;
  subject: string;
  subjectIssuer: string;
  actors: readonly string[];
  depth: number;
  scopes: readonly string[];
  audiences: readonly string[];
  root: string;
  lineage: readonly string[];
  bound: boolean;
}

/** The reason of a denial no policy determined: Cedar's default deny. */
export const NO_POLICY_PERMITS = 'no policy permits this request';

// ---- scope patterns (Go's policy/patterns.go) ----

interface Pattern {
  text: string;
  segs: string[];
}
interface Grant {
  segs: string[];
  rest: boolean;
}

function splitScope(scope: string): Grant {
  const { prefix, wild } = wildcard(scope);
  if (wild && prefix === '') return { segs: [], rest: true };
  if (wild) return { segs: prefix.slice(0, -1).split(':'), rest: true };
  return { segs: scope.split(':'), rest: false };
}

const segMatch = (p: string, s: string): boolean => p === '*' || p === s;

function matches(p: Pattern, c: string[]): boolean {
  const m = p.segs.length;
  if (m > c.length || (m < c.length && p.segs[m - 1] !== '*')) return false;
  for (let i = 0; i < m - 1; i++) if (!segMatch(p.segs[i], c[i])) return false;
  return segMatch(p.segs[m - 1], c[m - 1]);
}

function overlaps(p: Pattern, g: Grant): boolean {
  if (!g.rest) return matches(p, g.segs);
  const k = g.segs.length;
  const m = p.segs.length;
  for (let i = 0; i < Math.min(k, m); i++) if (!segMatch(p.segs[i], g.segs[i])) return false;
  return m > k || p.segs[m - 1] === '*';
}

function containsAll(p: Pattern, g: Grant): boolean {
  if (!g.rest) return matches(p, g.segs);
  const k = g.segs.length;
  const m = p.segs.length;
  if (m > k + 1 || p.segs[m - 1] !== '*') return false;
  for (let i = 0; i < m - 1; i++) if (!segMatch(p.segs[i], g.segs[i])) return false;
  return true;
}

const MAX_PATTERNS = 256;

/** The string literals of Cedar sources that can be scope patterns (Go's literalPatterns). */
function literalPatterns(sources: readonly string[]): Pattern[] {
  const seen = new Set<string>();
  const out: Pattern[] = [];
  for (const src of sources) {
    for (const m of src.matchAll(/"((?:[^"\\]|\\[^\n])*)"/g)) {
      const t = m[1];
      if (t === '' || seen.has(t) || /[ \\\t"]/.test(t) || out.length === MAX_PATTERNS) continue;
      seen.add(t);
      out.push({ text: t, segs: t.split(':') });
    }
  }
  return out;
}

/** The scope attributes of a context: scopes, scope_patterns, scope_patterns_all. */
function scopeContext(patterns: readonly Pattern[], scopes: readonly string[]): Record<string, string[]> {
  const grants = scopes.map(splitScope);
  const some: string[] = [];
  const all: string[] = [];
  for (const p of patterns) {
    let any = false;
    let every = scopes.length > 0;
    for (const g of grants) {
      if (!any && overlaps(p, g)) any = true;
      if (every && !containsAll(p, g)) every = false;
    }
    if (any) some.push(p.text);
    if (every) all.push(p.text);
  }
  return { scopes: [...scopes], scope_patterns: some, scope_patterns_all: all };
}

// ---- which context attributes the policies read ----

/**
 * Adds to out the context attributes a policy's JSON form reads
 * (context.x, context has x); false when it uses the context otherwise
 * (as a whole), when every attribute must be given.
 */
function contextUse(node: unknown, out: Set<string>): boolean {
  if (Array.isArray(node)) return node.every((n) => contextUse(n, out));
  if (node === null || typeof node !== 'object') return true;
  const o = node as Record<string, unknown>;
  if (o.Var === 'context') return false;
  for (const [k, v] of Object.entries(o)) {
    if ((k === '.' || k === 'has') && v !== null && typeof v === 'object') {
      const { left, attr, ...rest } = v as { left?: unknown; attr?: unknown };
      const l = left as Record<string, unknown> | null | undefined;
      if (l && typeof l === 'object' && l.Var === 'context' && Object.keys(l).length === 1) {
        const a = Array.isArray(attr) ? attr[0] : attr;
        if (typeof a !== 'string') return false;
        out.add(a);
        if (!contextUse(rest, out)) return false;
        continue;
      }
    }
    if (!contextUse(v, out)) return false;
  }
  return true;
}

// ---- the policy set ----

/** A named Cedar document. */
export interface PolicyFile {
  name: string;
  source: string;
}

let nextSetId = 0;

/**
 * An immutable, parsed set of Cedar call policies with Mandate's ids: a
 * policy's @id annotation, else FILE:LINE (the file's base name), unique
 * across the set (Go's policy.Set).
 */
export class CallPolicy {
  private readonly positions = new Map<string, string>();
  private constructor(
    private readonly cedar: CedarWasm,
    private readonly setId: string,
    private readonly policies: Record<string, string>,
    private readonly patterns: Pattern[],
    positions: Map<string, string>,
    /** The context attributes some policy reads, or null for all (a policy uses the context as a whole). */
    private readonly attrs: ReadonlySet<string> | null,
  ) {
    this.positions = positions;
  }

  /** Parses every *.cedar file of dir (in name order) into one set; a directory without policies is an error. options: see parse. */
  static async loadDir(dir: string, options: { allContext?: boolean } = {}): Promise<CallPolicy> {
    let names: string[];
    try {
      names = (await readdir(dir)).filter((n) => n.endsWith('.cedar'));
    } catch (e) {
      throw new PolicyError(`policy: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    const paths = names.map((n) => join(dir, n)).sort();
    if (paths.length === 0) throw new PolicyError(`policy: no *.cedar files in ${dir}`);
    const files: PolicyFile[] = [];
    for (const p of paths) files.push({ name: p, source: await readFile(p, 'utf8') });
    return CallPolicy.parse(files, options);
  }

  /**
   * Builds a set from Cedar documents (see loadDir for the rules).
   * options.allContext gives every context attribute and every entity to
   * every decision; by default only the attributes some policy reads are
   * given (context.x, context has x), and no entity without attributes or
   * parents (a holder without groups, the resource), which decides alike —
   * neither can change a decision — and costs a fraction: cedar-wasm reads
   * each value across the WebAssembly boundary, some 3–10 µs apiece.
   */
  static async parse(files: readonly PolicyFile[], options: { allContext?: boolean } = {}): Promise<CallPolicy> {
    const cedar = await loadCedar();
    const policies: Record<string, string> = {};
    const positions = new Map<string, string>();
    let attrs: Set<string> | null = options.allContext ? null : new Set();
    for (const f of files) {
      const parts = cedar.policySetTextToParts(f.source);
      if (parts.type !== 'success') throw new PolicyError(`policy: ${f.name}: ${parts.errors.map((e) => e.message).join('; ')}`);
      if (parts.policy_templates.length > 0) throw new PolicyError(`policy: ${f.name}: templates are not supported`);
      if (parts.policies.length === 0 && f.name.endsWith('.cedar')) {
        throw new PolicyError(`policy: ${f.name} holds no policy (an emptied file would silently drop its rules; delete it instead)`);
      }
      let from = 0;
      for (const text of parts.policies) {
        let at = f.source.indexOf(text, from);
        if (at < 0) at = from;
        else from = at + text.length;
        const line = f.source.slice(0, at).split('\n').length;
        const j = cedar.policyToJson(text);
        if (j.type !== 'success') throw new PolicyError(`policy: ${f.name}: ${j.errors.map((e) => e.message).join('; ')}`);
        if (attrs && !contextUse(j.json.conditions ?? [], attrs)) attrs = null;
        const pos = `${f.name}:${line}`;
        const id = j.json.annotations?.id ?? `${basename(f.name)}:${line}`;
        const prev = positions.get(id);
        if (prev !== undefined) throw new PolicyError(`policy: id "${id}" at ${pos} is already used at ${prev}`);
        positions.set(id, pos);
        policies[id] = text;
      }
    }
    if (positions.size === 0) throw new PolicyError('policy: the policy files hold no policy');
    const setId = `mandate-call-policy-${process.pid}-${nextSetId++}`;
    const pre = cedar.preparsePolicySet(setId, { staticPolicies: policies });
    if (pre.type !== 'success') throw new PolicyError(`policy: ${pre.errors.map((e) => e.message).join('; ')}`);
    return new CallPolicy(cedar, setId, policies, literalPatterns(files.map((f) => f.source)), positions, attrs);
  }

  /** The policy ids, sorted. */
  ids(): string[] {
    return [...this.positions.keys()].sort();
  }

  /** Where a policy is defined ("file:line"). */
  position(id: string): string | undefined {
    return this.positions.get(id);
  }

  /** Decides a call (Go's Set.AuthorizeCall). Never throws: a failure denies. */
  authorizeCall(r: CallRequest): Decision {
    return this.evaluate(r, undefined);
  }

  /**
   * Decides an MCP request (Go's Set.AuthorizeMCP) whose arguments are
   * already a Cedar record (parseArguments): the per-call request of its
   * chain with the action and resource of its method (Tool, Resource, Prompt
   * or Server), and context.server and context.arguments. Never throws.
   * decideMCP (the scope, then the arguments, then this) is what guards call.
   */
  authorizeMCP(r: MCPRequest, args: CedarRecord): Decision {
    const { action, resource } = mcpTarget(r.method, r.name ?? '', r.uri ?? '', r.server);
    return this.evaluate(callRequest(r.chain, r.groups, action, resource), { server: r.server, arguments: args });
  }

  private evaluate(r: CallRequest, extra: Record<string, unknown> | undefined): Decision {
    const principal = { type: 'Agent', id: r.holder };
    const resource = { type: r.resource.type, id: r.resource.id };
    const groups = (r.groups ?? []).map((g) => ({ type: 'Group', id: g }));
    const entities: unknown[] = [];
    if (groups.length > 0 || !this.attrs) entities.push({ uid: principal, attrs: {}, parents: groups });
    if (!this.attrs && !(resource.type === 'Agent' && resource.id === r.holder)) entities.push({ uid: resource, attrs: {}, parents: [] });
    // (Without allContext, an entity with no attributes and no parents is left
    // out: Cedar decides alike — `in` finds no parent, `has` is false, reading
    // an attribute fails either way — and each entity costs ~10 µs to pass in.)
    const want = this.attrs;
    const context: Record<string, unknown> = {};
    const put = (k: string, v: () => unknown): void => {
      if (!want || want.has(k)) context[k] = v();
    };
    if (!want || want.has('scopes') || want.has('scope_patterns') || want.has('scope_patterns_all')) {
      const sc = scopeContext(this.patterns, r.scopes);
      for (const k of ['scopes', 'scope_patterns', 'scope_patterns_all']) put(k, () => sc[k]);
    }
    put('holder', () => r.holder);
    put('subject', () => r.subject);
    put('sub_iss', () => r.subjectIssuer);
    put('audiences', () => [...r.audiences]);
    put('depth', () => r.depth);
    put('actors', () => [...r.actors]);
    put('root', () => r.root);
    put('lineage', () => [...r.lineage]);
    put('bound', () => r.bound);
    if (extra) for (const [k, v] of Object.entries(extra)) put(k, () => v);
    const call = {
      principal,
      action: { type: 'Action', id: r.action || 'call' },
      resource,
      context,
      entities,
    };
    let ans: CedarAnswer;
    try {
      ans = this.cedar.statefulIsAuthorized({ ...call, preparsedPolicySetId: this.setId });
    } catch (e) {
      return { allow: false, forbidden: false, policies: [], reason: `the policy engine failed (${e instanceof Error ? e.message : 'error'}), so the request is denied` };
    }
    return explain(ans);
  }

  /**
   * Decides a call for a verified chain (chain/authz's Authorize). A decision
   * depends only on the chain, the action, the resource, the groups and this
   * immutable set, and Cedar through WebAssembly costs a few hundred
   * microseconds, so decisions are remembered per chain object (the
   * verifier's cache hands out the same Chain for the same token; a
   * WeakMap lets them go with it), at most 64 per chain.
   */
  authorize(c: Chain, action: string, resource: Entity, groups: readonly string[] = []): Decision {
    const key = `${action}\u0000${resource.type}\u0000${resource.id}\u0000${groups.join('\u0000')}`;
    let m = this.memo.get(c);
    const hit = m?.get(key);
    if (hit) return hit;
    const raw = this.decide(c, action, resource, groups);
    const d: Decision = Object.freeze({ ...raw, policies: Object.freeze([...raw.policies]) });
    if (!m) {
      m = new Map();
      this.memo.set(c, m);
    } else if (m.size >= 64) m.clear();
    m.set(key, d);
    return d;
  }

  private readonly memo = new WeakMap<Chain, Map<string, Decision>>();

  private decide(c: Chain, action: string, resource: Entity, groups: readonly string[]): Decision {
    return this.authorizeCall(callRequest(decisionChain(c), groups, action, resource));
  }
}

/** The call a chain makes on resource (its fields read one by one: a caller's MCPChain may be any object). */
function callRequest(c: MCPChain, groups: readonly string[] | undefined, action: string, resource: Entity): CallRequest {
  return {
    holder: c.holder,
    groups,
    action,
    resource,
    subject: c.subject,
    subjectIssuer: c.subjectIssuer,
    actors: c.actors,
    depth: c.depth,
    scopes: c.scopes,
    audiences: c.audiences,
    root: c.root,
    lineage: c.lineage,
    bound: c.bound,
  };
}

/** Turns Cedar's answer into a Decision: any error denies, naming the failing policies. */
function explain(ans: CedarAnswer): Decision {
  if (ans.type !== 'success' || !ans.response) {
    const msg = ans.errors?.map((e) => e.message).join('; ') ?? 'unknown error';
    return { allow: false, forbidden: false, policies: [], reason: `the request could not be evaluated (${msg}), so it is denied` };
  }
  const diag = ans.response.diagnostics;
  if (diag.errors.length > 0) {
    const ids = diag.errors.map((e) => e.policyId).sort(); // in sorted order, as Go names them
    const first = diag.errors.find((e) => e.policyId === ids[0]) ?? diag.errors[0];
    return {
      allow: false,
      forbidden: false,
      policies: ids,
      reason: `policy ${JSON.stringify(ids[0])} failed to evaluate (${first.error.message}), so the request is denied`,
    };
  }
  const ids = [...diag.reason].sort();
  const quoted = 'policy ' + ids.map((i) => JSON.stringify(i)).join(', ');
  if (ans.response.decision === 'allow') return { allow: true, forbidden: false, policies: ids, reason: 'permitted by ' + quoted };
  if (ids.length > 0) return { allow: false, forbidden: true, policies: ids, reason: 'denied by ' + quoted };
  return { allow: false, forbidden: false, policies: [], reason: NO_POLICY_PERMITS };
}

/**
 * Per-call authorization for the chains one verifier checks (Go's
 * chain/authz.Authorizer): groups, when given, names a holder's groups
 * (Mandate's tokens do not carry groups).
 */
export class Authorizer {
  constructor(
    readonly verifier: Verifier,
    readonly policy: CallPolicy,
    readonly groups?: (holder: string) => readonly string[],
  ) {
    if (!verifier || !policy) throw new PolicyError('authz: no call policy given');
  }

  /** Whether the chain may perform action on resource. */
  authorize(c: Chain, action: string, resource: Entity): Decision {
    return this.policy.authorize(c, action, resource, this.groups ? this.groups(c.holder) : []);
  }

  /** A check for protect(): throws InsufficientScopeError (403) naming the policies on a denial. */
  check(action: string, resource: Entity | ((request: Request) => Entity)): (c: Chain, request: Request) => void {
    return (c, request) => {
      const d = this.authorize(c, action, typeof resource === 'function' ? resource(request) : resource);
      if (!d.allow) throw new InsufficientScopeError(d.reason, undefined, [...d.policies]);
    };
  }

  /** Node middleware (after the verifier's middleware()): 403 insufficient_scope naming the policy on a denial. */
  require(action: string, resource: Entity | ((req: IncomingMessage) => Entity)): NodeMiddleware {
    return nodeRequire(this.verifier, (c, req) => {
      const d = this.authorize(c, action, typeof resource === 'function' ? resource(req) : resource);
      if (!d.allow) throw new InsufficientScopeError(d.reason, undefined, [...d.policies]);
    });
  }
}
