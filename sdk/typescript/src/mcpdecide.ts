/**
 * MCP requests as policy decides them (docs/mcp.md; testdata/vectors/README.md,
 * "MCP files"), with no dependency on the MCP SDK: the conformance runner
 * and the guard (`@mandate-auth/sdk/mcp`) share it.
 *
 * - `parseArguments`: a request's arguments, from their JSON TEXT, to a Cedar
 *   record by the rule the three languages share (Go's policy.ParseArguments):
 *   objects → records, arrays → sets, strings, booleans; a number whose value,
 *   read exactly from its text, is an integer within ±2^53 → Long; another
 *   with at most four fractional digits within the decimal range → decimal.
 *   Refused: null, any other number, a member twice, two members equal once
 *   ASCII letters are lower-cased and ſ/K (U+017F, U+212A) read as s/k, a lone
 *   surrogate, more than 8 levels, more than 65,536 bytes, anything after the
 *   object. JSON.parse would lose the number's text and the duplicates, so
 *   this is a parser of its own.
 * - `readMessage`: one JSON-RPC message read strictly (a member given twice
 *   anywhere, a lone surrogate anywhere, a batch: refused), with the raw text
 *   of params.arguments, so that what is decided and what the MCP SDK is
 *   handed come from one reading of one text.
 * - `decideMCP`: scope (`tools:<name>`, `resources:read`, `prompts:get`),
 *   then arguments, then Cedar (CallPolicy.authorizeMCP).
 */
import { Buffer } from 'node:buffer';
import type { CallPolicy, CallRequest, Decision } from './cedar.js';
import type { Chain } from './chain.js';
import { MandateError } from './errors.js';
import { isWS } from './gojson.js';
import { excerpt } from './jwt.js';
import { coveredBy } from './scope.js';

/** The most bytes of JSON text an MCP request's arguments may have. */
export const MAX_ARGUMENTS_BYTES = 64 << 10;
/** The most levels of nesting: the arguments object is level 1, each object or array inside one more. */
export const MAX_ARGUMENTS_DEPTH = 8;

/** Arguments that cannot become a Cedar record by the shared rule: the request is denied (verdict invalid_arguments). */
export class ArgumentsError extends MandateError {
  constructor(description: string) {
    super('invalid_arguments', `MCP arguments cannot be decided: ${description}`);
  }
}

/** A Cedar value in Cedar's JSON form (what cedar-wasm reads). */
export type CedarJSON = string | number | boolean | CedarJSON[] | { [k: string]: CedarJSON } | { __extn: { fn: 'decimal'; arg: string } };

/** The arguments of a request as a Cedar record (context.arguments), a prototype-less object. */
export type CedarRecord = { [k: string]: CedarJSON };

const MAX_LONG = 2n ** 53n;
const MAX_DECIMAL_SCALED = 2n ** 63n - 1n; // decimal is int64 ten-thousandths: ±922337203685477.5807

/** s without the JSON white space around it (Go's policy.ParseArguments trims the same). */
function trimJSONSpace(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isWS(s.charCodeAt(a))) a++;
  while (b > a && isWS(s.charCodeAt(b - 1))) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

/**
 * A member name as Go's encoding/json matches it to an ASCII field name:
 * ASCII letters lower-cased, ſ (U+017F) read as s, K (U+212A) as k.
 */
export function foldKey(k: string): string {
  if (!/[A-Z\u017f\u212a]/.test(k)) return k;
  return k.replace(/[A-Z\u017f\u212a]/g, (ch) => (ch === '\u017f' ? 's' : ch === '\u212a' ? 'k' : ch.toLowerCase()));
}

/** The member names Cedar's JSON reads as escapes when they are a record's only member. */
const ESCAPES = new Set(['__entity', '__extn', '__expr']);

/** What the two readers below share: the text, the offset, white space, and the brackets and commas of objects and arrays. */
abstract class Scanner {
  i = 0;
  constructor(readonly s: string) {}

  abstract fail(what: string): never;

  ws(): void {
    while (isWS(this.s.charCodeAt(this.i))) this.i++;
  }

  /** Just inside an object or array: whether it is empty (white space, then close, consumed). */
  empty(close: number): boolean {
    this.ws();
    if (this.s.charCodeAt(this.i) !== close) return false;
    this.i++;
    return true;
  }

  /** After a member or item: true at close (the end, consumed), false after a comma (consumed); anything else fails. */
  end(close: number): boolean {
    this.ws();
    const d = this.s.charCodeAt(this.i);
    if (d === 0x2c /* , */) {
      this.i++;
      return false;
    }
    if (d === close) {
      this.i++;
      return true;
    }
    return this.fail(close === 0x7d ? "expected ',' or '}'" : "expected ',' or ']'");
  }
}

/** Reads JSON text into Cedar's JSON form (see parseArguments). */
class ArgParser extends Scanner {
  fail(what: string): never {
    throw new ArgumentsError(`${what} at offset ${this.i}`);
  }

  value(depth: number): CedarJSON {
    this.ws();
    const s = this.s;
    if (this.i >= s.length) this.fail('unexpected end');
    const c = s.charCodeAt(this.i);
    if (c === 0x7b /* { */) {
      if (depth > MAX_ARGUMENTS_DEPTH) throw new ArgumentsError(`nested deeper than ${MAX_ARGUMENTS_DEPTH} levels`);
      this.i++;
      const rec: CedarRecord = Object.create(null) as CedarRecord;
      let folded: Set<string> | null = null;
      let n = 0;
      let only = '';
      if (!this.empty(0x7d /* } */)) {
        do {
          this.ws();
          const k = this.str();
          if (Object.prototype.hasOwnProperty.call(rec, k)) throw new ArgumentsError(`member "${excerpt(k)}" given twice`);
          folded ??= new Set();
          const f = foldKey(k);
          if (folded.has(f)) throw new ArgumentsError(`member "${excerpt(k)}" differs from another only in case`);
          folded.add(f);
          this.ws();
          if (s.charCodeAt(this.i) !== 0x3a /* : */) this.fail("expected ':'");
          this.i++;
          rec[k] = this.value(depth + 1);
          n++;
          only = k;
        } while (!this.end(0x7d));
      }
      if (n === 1 && ESCAPES.has(only)) {
        // Cedar's JSON reads {"__extn": …} (and __entity, __expr) as an
        // extension value, an entity or an error, never as a record.
        throw new ArgumentsError(`a record whose only member is "${only}" (Cedar's JSON would read it as an escape, not a record)`);
      }
      return rec;
    }
    if (c === 0x5b /* [ */) {
      if (depth > MAX_ARGUMENTS_DEPTH) throw new ArgumentsError(`nested deeper than ${MAX_ARGUMENTS_DEPTH} levels`);
      this.i++;
      const items: CedarJSON[] = [];
      if (!this.empty(0x5d /* ] */)) {
        do items.push(this.value(depth + 1));
        while (!this.end(0x5d));
      }
      return items;
    }
    if (c === 0x22 /* " */) return this.str();
    if (c === 0x74 && s.startsWith('true', this.i)) {
      this.i += 4;
      return true;
    }
    if (c === 0x66 && s.startsWith('false', this.i)) {
      this.i += 5;
      return false;
    }
    if (c === 0x6e && s.startsWith('null', this.i)) throw new ArgumentsError('null has no Cedar value');
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
    return this.fail('unexpected character');
  }

  /** A JSON string, escapes decoded; a lone surrogate (escaped or not) is refused: Cedar strings are Unicode. */
  str(): string {
    const s = this.s;
    if (s.charCodeAt(this.i) !== 0x22) this.fail('expected a string');
    this.i++;
    const start = this.i;
    let c = 0;
    for (;;) {
      c = s.charCodeAt(this.i);
      if (c === 0x22 || c === 0x5c || c < 0x20 || (c >= 0xd800 && c <= 0xdfff) || this.i >= s.length) break;
      this.i++;
    }
    if (c === 0x22 && this.i < s.length) {
      this.i++;
      return s.slice(start, this.i - 1);
    }
    let out = s.slice(start, this.i);
    while (this.i < s.length) {
      c = s.charCodeAt(this.i);
      if (c === 0x22) {
        this.i++;
        return out;
      }
      if (c < 0x20) this.fail('a control character in a string');
      if (c >= 0xd800 && c <= 0xdfff) {
        const lo = s.charCodeAt(this.i + 1);
        if (c > 0xdbff || !(lo >= 0xdc00 && lo <= 0xdfff)) throw new ArgumentsError('not Unicode (a lone surrogate in a string)');
        out += s.slice(this.i, this.i + 2);
        this.i += 2;
        continue;
      }
      if (c !== 0x5c) {
        out += s[this.i];
        this.i++;
        continue;
      }
      const e = s[this.i + 1];
      this.i += 2;
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out += e;
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          const r = this.hex4();
          if (r < 0) this.fail('a bad \\u escape');
          if (r >= 0xd800 && r <= 0xdbff) {
            if (s.charCodeAt(this.i) === 0x5c && s.charCodeAt(this.i + 1) === 0x75) {
              this.i += 2;
              const lo = this.hex4();
              if (lo >= 0xdc00 && lo <= 0xdfff) {
                out += String.fromCharCode(r, lo);
                break;
              }
            }
            throw new ArgumentsError('a lone surrogate escape in a string');
          }
          if (r >= 0xdc00 && r <= 0xdfff) throw new ArgumentsError('a lone surrogate escape in a string');
          out += String.fromCharCode(r);
          break;
        }
        default:
          this.i -= 2;
          this.fail('a bad escape');
      }
    }
    return this.fail('an unterminated string');
  }

  hex4(): number {
    const h = this.s.slice(this.i, this.i + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) return -1;
    this.i += 4;
    return parseInt(h, 16);
  }

  /** A JSON number by its grammar, converted exactly from its text. */
  number(): CedarJSON {
    const s = this.s;
    const start = this.i;
    const digits = (): number => {
      const from = this.i;
      while (this.i < s.length) {
        const c = s.charCodeAt(this.i);
        if (c < 0x30 || c > 0x39) break;
        this.i++;
      }
      return this.i - from;
    };
    if (s.charCodeAt(this.i) === 0x2d) this.i++;
    const intStart = this.i;
    const n = digits();
    if (n === 0 || (n > 1 && s.charCodeAt(intStart) === 0x30)) this.fail('a malformed number');
    const intEnd = this.i;
    let fracStart = this.i;
    let fracEnd = this.i;
    if (s.charCodeAt(this.i) === 0x2e) {
      this.i++;
      fracStart = this.i;
      if (digits() === 0) this.fail('a malformed number');
      fracEnd = this.i;
    }
    let exp = 0;
    if (s.charCodeAt(this.i) === 0x65 || s.charCodeAt(this.i) === 0x45) {
      this.i++;
      let neg = false;
      if (s.charCodeAt(this.i) === 0x2b || s.charCodeAt(this.i) === 0x2d) {
        neg = s.charCodeAt(this.i) === 0x2d;
        this.i++;
      }
      const eStart = this.i;
      if (digits() === 0) this.fail('a malformed number');
      let e = s.slice(eStart, this.i).replace(/^0+/, '');
      if (e.length > 19 || (e.length === 19 && e > '9223372036854775807')) {
        // Go's big.Rat refuses an exponent beyond int64, even of a zero
        throw new ArgumentsError(`number ${excerpt(s.slice(start, this.i))} has an exponent beyond 64 bits`);
      }
      if (e.length > 15) e = '999999999999999'; // far beyond every bound either way
      exp = (neg ? -1 : 1) * Number(e || '0');
    }
    return numberValue(s.slice(start, this.i), s.charCodeAt(start) === 0x2d, s.slice(intStart, intEnd) + s.slice(fracStart, fracEnd), exp - (fracEnd - fracStart));
  }
}

/**
 * The Cedar value of a JSON number, exactly: value = ±digits × 10^exp. An
 * integer within ±2^53 is a Long; another value with at most four fractional
 * digits within the decimal range a decimal; anything else is refused.
 */
function numberValue(text: string, negative: boolean, allDigits: string, exp: number): CedarJSON {
  let d = allDigits.replace(/^0+/, '');
  if (d === '') return 0; // every spelling of zero, -0 included, is the Long 0
  const trailing = d.length - d.replace(/0+$/, '').length;
  d = d.slice(0, d.length - trailing);
  exp += trailing;
  const refuse = (): never => {
    throw new ArgumentsError(`number ${excerpt(text)} is neither an integer within ±2^53 nor a decimal of at most four fractional digits`);
  };
  if (exp >= 0) {
    if (d.length + exp > 19) refuse(); // beyond 2^53 and the decimal range alike
    const v = BigInt(d) * 10n ** BigInt(exp);
    if (v <= MAX_LONG) return Number(negative ? -v : v);
    if (v * 10000n > MAX_DECIMAL_SCALED) refuse();
    return decimal(negative, v * 10000n);
  }
  if (exp < -4 || d.length + exp > 19) refuse();
  const scaled = BigInt(d) * 10n ** BigInt(4 + exp);
  if (scaled > MAX_DECIMAL_SCALED) refuse();
  return decimal(negative, scaled);
}

function decimal(negative: boolean, scaled: bigint): CedarJSON {
  const t = scaled.toString().padStart(5, '0');
  return { __extn: { fn: 'decimal', arg: `${negative ? '-' : ''}${t.slice(0, -4)}.${t.slice(-4)}` } };
}

/**
 * Converts an MCP request's arguments (their JSON text; empty, absent or
 * `null` for none) to a Cedar record by the shared rule (module
 * documentation). Throws ArgumentsError: the request is then denied, never
 * decided on part of its arguments.
 */
export function parseArguments(raw: string | null | undefined): CedarRecord {
  const text = trimJSONSpace(raw ?? '');
  if (text === '' || text === 'null') return Object.create(null) as CedarRecord;
  if (text.length > MAX_ARGUMENTS_BYTES || Buffer.byteLength(text, 'utf8') > MAX_ARGUMENTS_BYTES) {
    throw new ArgumentsError(`${Buffer.byteLength(text, 'utf8')} bytes of JSON (at most ${MAX_ARGUMENTS_BYTES})`);
  }
  if (text.charCodeAt(0) !== 0x7b) throw new ArgumentsError('arguments must be a JSON object');
  const p = new ArgParser(text);
  const v = p.value(1) as CedarRecord;
  p.ws();
  if (p.i !== text.length) throw new ArgumentsError('data after the arguments object');
  return v;
}

// ---- a JSON-RPC message, read strictly ----

/** A JSON-RPC body the guard will not pass on: not JSON, ambiguous (a member twice, a lone surrogate), a batch. */
export class MessageError extends MandateError {
  /** The JSON-RPC error code to answer with (-32700 parse error, -32600 invalid request). */
  readonly code: number;
  constructor(code: number, description: string) {
    super('invalid_request', description);
    this.code = code;
  }
}

/** The most nesting levels of a JSON-RPC message the guard reads. */
const MAX_MESSAGE_DEPTH = 512;

/**
 * One JSON-RPC message (a single object; batches are refused), as the guard
 * decides it and hands it on.
 */
export interface MCPMessage {
  /** The message as JSON.parse would have read it (this reader refuses what it could read otherwise): what the MCP SDK is handed. */
  readonly value: Record<string, unknown>;
  /** A request (method and id), a notification (method, no id) or anything else (a response). */
  readonly kind: 'request' | 'notification' | 'response';
  /** The method ('' for a response). */
  readonly method: string;
  /** params.name when it is a string. */
  readonly name?: string;
  /** params.uri when it is a string. */
  readonly uri?: string;
  /** The verbatim JSON text of params.arguments, when present. */
  readonly argumentsText?: string;
  /** Whether params is present and is not an object (the MCP SDK refuses such a request). */
  readonly badParams: boolean;
}

class MessageParser extends Scanner {
  argStart = -1;
  argEnd = -1;

  fail(what: string): never {
    throw new MessageError(-32700, `Parse error: ${what} at offset ${this.i}`);
  }

  /** role: 1 the message itself, 2 its params, 0 anything else. */
  value(depth: number, role: number): unknown {
    this.ws();
    const s = this.s;
    if (this.i >= s.length) this.fail('unexpected end');
    const c = s.charCodeAt(this.i);
    if (c === 0x7b || c === 0x5b) {
      if (depth > MAX_MESSAGE_DEPTH) throw new MessageError(-32600, `Invalid Request: nested deeper than ${MAX_MESSAGE_DEPTH} levels`);
    }
    if (c === 0x7b) {
      this.i++;
      const o: Record<string, unknown> = {};
      if (this.empty(0x7d)) return o;
      do {
        this.ws();
        const k = this.str();
        if (Object.prototype.hasOwnProperty.call(o, k)) {
          throw new MessageError(-32600, `Invalid Request: member "${excerpt(k)}" given twice (refused: readers would disagree on it)`);
        }
        this.ws();
        if (s.charCodeAt(this.i) !== 0x3a) this.fail("expected ':'");
        this.i++;
        const childRole = role === 1 && k === 'params' ? 2 : 0;
        let v: unknown;
        if (role === 2 && k === 'arguments') {
          this.ws();
          const from = this.i;
          v = this.value(depth + 1, 0);
          this.argStart = from;
          this.argEnd = this.i;
        } else {
          v = this.value(depth + 1, childRole);
        }
        if (k === '__proto__') Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
        else o[k] = v;
      } while (!this.end(0x7d));
      return o;
    }
    if (c === 0x5b) {
      if (role === 1) throw new MessageError(-32600, 'Invalid Request: JSON-RPC batches are not accepted (send one message per request)');
      this.i++;
      const a: unknown[] = [];
      if (!this.empty(0x5d)) {
        do a.push(this.value(depth + 1, 0));
        while (!this.end(0x5d));
      }
      return a;
    }
    if (c === 0x22) return this.str();
    if (c === 0x74 && s.startsWith('true', this.i)) {
      this.i += 4;
      return true;
    }
    if (c === 0x66 && s.startsWith('false', this.i)) {
      this.i += 5;
      return false;
    }
    if (c === 0x6e && s.startsWith('null', this.i)) {
      this.i += 4;
      return null;
    }
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      const m = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
      m.lastIndex = this.i;
      const r = m.exec(s);
      if (!r) this.fail('a malformed number');
      this.i += r[0].length;
      return Number(r[0]);
    }
    return this.fail('unexpected character');
  }

  str(): string {
    const s = this.s;
    if (s.charCodeAt(this.i) !== 0x22) this.fail('expected a string');
    this.i++;
    const start = this.i;
    for (;;) {
      if (this.i >= s.length) this.fail('an unterminated string');
      const c = s.charCodeAt(this.i);
      if (c === 0x22) break;
      if (c < 0x20) this.fail('a control character in a string');
      if (c === 0x5c) {
        const e = s.charCodeAt(this.i + 1);
        if (e === 0x75) {
          if (!/^[0-9a-fA-F]{4}$/.test(s.slice(this.i + 2, this.i + 6))) this.fail('a bad \\u escape');
          this.i += 6;
        } else if (e === 0x22 || e === 0x5c || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) {
          this.i += 2;
        } else {
          this.fail('a bad escape');
        }
        continue;
      }
      this.i++;
    }
    this.i++;
    const raw = s.slice(start, this.i - 1);
    const v = raw.indexOf('\\') < 0 ? raw : (JSON.parse(s.slice(start - 1, this.i)) as string);
    if (/[\ud800-\udfff]/.test(v) && !isWellFormed(v)) {
      throw new MessageError(-32600, 'Invalid Request: a lone surrogate in a string (refused: readers would disagree on it)');
    }
    return v;
  }
}

function isWellFormed(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c > 0xdbff) return false;
    const lo = s.charCodeAt(i + 1);
    if (!(lo >= 0xdc00 && lo <= 0xdfff)) return false;
    i++;
  }
  return true;
}

/**
 * Reads one JSON-RPC message strictly: a single JSON object and nothing
 * after it; a member given twice anywhere, a lone surrogate anywhere or a
 * batch is refused (MessageError), so no other reader can see another
 * message in the same text. Its value is what JSON.parse would have read.
 */
export function readMessage(text: string): MCPMessage {
  const p = new MessageParser(text);
  p.ws();
  if (text.charCodeAt(p.i) === 0x5b) throw new MessageError(-32600, 'Invalid Request: JSON-RPC batches are not accepted (send one message per request)');
  const v = p.value(1, 1);
  p.ws();
  if (p.i !== text.length) p.fail('data after the message');
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new MessageError(-32600, 'Invalid Request: a JSON-RPC message is an object');
  const o = v as Record<string, unknown>;
  const method = typeof o.method === 'string' ? o.method : '';
  const kind = method === '' ? 'response' : o.id === undefined ? 'notification' : 'request';
  const params = o.params;
  const badParams = params !== undefined && (params === null || typeof params !== 'object' || Array.isArray(params));
  const po = !badParams && params !== undefined ? (params as Record<string, unknown>) : undefined;
  return {
    value: o,
    kind,
    method,
    name: typeof po?.name === 'string' ? po.name : undefined,
    uri: typeof po?.uri === 'string' ? po.uri : undefined,
    argumentsText: p.argStart >= 0 && po !== undefined ? text.slice(p.argStart, p.argEnd) : undefined,
    badParams,
  };
}

// ---- the decision ----

/** The methods not decided: the protocol's housekeeping and the lists (tools/list is filtered by scope instead). */
export const UNDECIDED_METHODS: ReadonlySet<string> = new Set([
  'initialize',
  'ping',
  'tools/list',
  'resources/list',
  'resources/templates/list',
  'prompts/list',
]);

/** Whether a method is decided by Cedar (notifications and the UNDECIDED_METHODS are not). */
export function isDecided(method: string): boolean {
  return !method.startsWith('notifications/') && !UNDECIDED_METHODS.has(method);
}

/** The scope an MCP request needs ('' for none): tools:<name>, resources:read, prompts:get. */
export function requiredScope(method: string, name = ''): string {
  switch (method) {
    case 'tools/call':
      return 'tools:' + name;
    case 'resources/read':
      return 'resources:read';
    case 'prompts/get':
      return 'prompts:get';
    default:
      return '';
  }
}

/** The Cedar action and resource of an MCP request (Go's MCPRequest.Target). */
export function mcpTarget(method: string, name: string, uri: string, server: string): { action: string; resource: { type: string; id: string } } {
  switch (method) {
    case 'tools/call':
      return { action: method, resource: { type: 'Tool', id: name } };
    case 'resources/read':
      return { action: method, resource: { type: 'Resource', id: uri } };
    case 'prompts/get':
      return { action: method, resource: { type: 'Prompt', id: name } };
    default:
      return { action: method, resource: { type: 'Server', id: server } };
  }
}

/** The chain as an MCP decision reads it: a call's chain fields (a verified Chain has these, `bound` from its jkt). */
export type MCPChain = Omit<CallRequest, 'groups' | 'action' | 'resource'>;

/** A verified chain as a decision reads it: bound when it has a jkt. */
export function decisionChain(c: Chain): MCPChain {
  return {
    holder: c.holder,
    subject: c.subject,
    subjectIssuer: c.subjectIssuer,
    actors: c.actors,
    depth: c.depth,
    scopes: c.scopes,
    audiences: c.audiences,
    root: c.root,
    lineage: c.lineage,
    bound: c.jkt !== '',
  };
}

/** One MCP request to decide. */
export interface MCPRequest {
  /** The MCP server's canonical URI (context.server). */
  server: string;
  method: string;
  /** The tool or prompt name. */
  name?: string;
  /** The resource URI. */
  uri?: string;
  /** The arguments' JSON text (tools/call, prompts/get); absent for none. */
  arguments?: string;
  chain: MCPChain;
  groups?: readonly string[];
}

/** An MCP decision: Cedar's, or the scope or arguments refusal before Cedar (then policies is empty). */
export interface MCPDecision extends Decision {
  /** The vectors' verdict. */
  readonly verdict: 'allow' | 'deny' | 'insufficient_scope' | 'invalid_arguments';
  /** The scope needed, for insufficient_scope. */
  readonly scope?: string;
}

/**
 * Decides an MCP request as a guard does (testdata/vectors/README.md, "MCP
 * files"): the scope the method needs, covered by the chain's scopes; the
 * arguments by the shared rule (tools/call and prompts/get; other methods
 * have none); then Cedar, any evaluation error denying. Never throws.
 */
export function decideMCP(policy: CallPolicy, r: MCPRequest): MCPDecision {
  const scope = requiredScope(r.method, r.name ?? '');
  if (scope !== '' && !coveredBy(r.chain.scopes, scope)) {
    return { verdict: 'insufficient_scope', allow: false, forbidden: false, policies: [], reason: `insufficient_scope: the token does not grant ${scope}`, scope };
  }
  let args: CedarRecord;
  try {
    args = parseArguments(r.method === 'tools/call' || r.method === 'prompts/get' ? r.arguments : undefined);
  } catch (e) {
    const reason = e instanceof ArgumentsError ? e.error_description : `MCP arguments cannot be decided: ${e instanceof Error ? e.message : String(e)}`;
    return { verdict: 'invalid_arguments', allow: false, forbidden: false, policies: [], reason };
  }
  const d = policy.authorizeMCP(r, args);
  return { ...d, verdict: d.allow ? 'allow' : 'deny' };
}
