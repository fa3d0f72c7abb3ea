/**
 * Where a verifier learns revocations (Go's chain/verifier feed.go,
 * revset.go, and the JWKS follower of discover.go):
 *
 * - RevocationSet: a set the caller fills, always current (tests, tools, the
 *   conformance vectors).
 * - Feed: follows Mandate's revocation feed — long-polled with a cursor,
 *   `reset` and `more` honoured, `revoked_keys` dropped from the key set at
 *   once, each page read by the grammar every language shares
 *   (readFeedPage: a page that breaks it is refused whole) — and fails
 *   closed (StaleRevocationsError) when its last sync is older than the
 *   staleness bound. It only ever adds: a reset never makes it forget a
 *   revocation it knew.
 * - RemoteKeys: the issuer's JWKS, refetched on an unknown kid (at most once
 *   per interval) and when older than its maximum age.
 */
import { FeedCredentialsError, MandateError, ProtocolError, StaleRevocationsError } from './errors.js';
import { type FetchLike, getJSON, getText, safeURL } from './http.js';
import { JObj, JSONError, type JVal, parseJSON } from './gojson.js';
import { excerpt, goNumericDate } from './jwt.js';
import { KeySet, type KeyResolver, type PublicKeyInfo } from './keys.js';

/** What a verifier learns revocations from. */
export interface RevocationSource {
  /** The first of jtis known to be revoked, or undefined. */
  firstRevoked(jtis: readonly string[]): string | undefined;
  /** Throws StaleRevocationsError when the source cannot vouch for its data at now (ms). */
  current(nowMs: number): void;
}

/** A revocation source the caller fills: revoked jtis, always current. */
export class RevocationSet implements RevocationSource {
  private readonly set: Set<string>;
  constructor(jtis: Iterable<string> = []) {
    this.set = new Set(jtis);
  }
  add(...jtis: string[]): void {
    for (const j of jtis) this.set.add(j);
  }
  firstRevoked(jtis: readonly string[]): string | undefined {
    for (const j of jtis) if (this.set.has(j)) return j;
    return undefined;
  }
  current(): void {}
}

const MAX_DOCUMENT = 1 << 20;
const MAX_FEED_ANSWER = 16 << 20;

/** The issuer's JWKS, followed. */
export class RemoteKeys implements KeyResolver {
  private set: KeySet | null = null;
  private withdrew = 0;
  private readonly revoked = new Set<string>();
  private last = -Infinity;
  private inflight: Promise<boolean> | null = null;

  constructor(
    private readonly uri: string,
    private readonly fetchFn: FetchLike,
    private readonly nowMs: () => number,
    private readonly intervalMs: number,
    private readonly maxAgeMs: number,
  ) {}

  /** Fetches the JWKS (the first time, at start): throws on failure. */
  async start(): Promise<void> {
    await this.fetch();
    this.last = this.nowMs();
  }

  /** The number of fetches that dropped a key: verifications cached before one are checked again. */
  withdrawals(): number {
    return this.withdrew;
  }

  resolveKey(kid: string): PublicKeyInfo | undefined {
    return this.set?.resolveKey(kid);
  }

  /** Refetches after an unknown kid, at most once per interval; whether it got a new set. */
  refresh(): Promise<boolean> {
    if (this.inflight) return this.inflight;
    const now = this.nowMs();
    if (now - this.last < this.intervalMs) return Promise.resolve(false);
    this.last = now;
    this.inflight = this.fetch()
      .then(() => true, () => false)
      .finally(() => {
        this.inflight = null;
      });
    return this.inflight;
  }

  /** Refetches once the set is older than its maximum age; a failure keeps the current set. */
  async refreshStale(): Promise<void> {
    const now = this.nowMs();
    if (now - this.last < this.maxAgeMs || this.inflight) return;
    try {
      await this.fetch();
      this.last = now;
    } catch {
      // retried after the next poll
    }
  }

  private async fetch(): Promise<void> {
    const r = await getJSON(this.uri, { fetch: this.fetchFn, limit: MAX_DOCUMENT, timeoutMs: 5000 });
    if (r.status !== 200) throw new ProtocolError(`JWKS: ${safeURL(this.uri)}: HTTP ${r.status}`, r.status);
    let s = KeySet.fromJWKS(r.body);
    if (this.revoked.size > 0) s = s.without(this.revoked); // a stale JWKS must not bring one back
    const old = this.set;
    this.set = s;
    if (old && old.withdrawn(s)) this.withdrew++;
  }

  /** Drops keys the feed names compromised, at once and for good. */
  revoke(kids: readonly string[]): void {
    let fresh = false;
    for (const k of kids) {
      if (!this.revoked.has(k)) {
        this.revoked.add(k);
        fresh = true;
      }
    }
    if (!fresh) return;
    this.last = -Infinity; // the replacement signs at once: the next unknown kid may refetch now
    if (this.set) {
      const next = this.set.without(this.revoked);
      if (this.set.withdrawn(next)) this.withdrew++;
      this.set = next;
    }
  }
}

export interface FeedOptions {
  url: string;
  clientId: string;
  clientSecret: string;
  fetch: FetchLike;
  nowMs: () => number;
  /** Seconds past exp a revocation is kept (the verifier's leeway). */
  leewaySeconds: number;
  maxStalenessMs: number;
  waitMs: number;
  retryMaxMs: number;
  onSync?: (err: Error | null) => void;
  afterPoll?: () => Promise<void>;
  onRevokedKeys?: (kids: string[]) => void;
}

/** One page of the revocation feed, as read by readFeedPage. */
export interface FeedPage {
  revocations: Array<{ jti: string; exp: number }>;
  cursor: string;
  reset: boolean;
  more: boolean;
  revoked_keys: string[];
}

/** The members of a JSON object by their exact names, a member given twice counting by its last value. */
function members(o: JObj): Map<string, JVal> {
  const m = new Map<string, JVal>();
  for (let k = 0; k < o.keys.length; k++) m.set(o.keys[k], o.vals[k]);
  return m;
}

/**
 * Reads a page of the revocation feed (its body, as text) by the one grammar
 * every Mandate follower shares (testdata/vectors/README.md, "Feed files";
 * Go's feedAnswer.UnmarshalJSON): a JSON object and nothing after it (read
 * as Go reads JSON, numbers as written, nesting at most 10,000 deep);
 * `cursor` a non-empty string; `revocations` absent, null or an array of
 * objects, each with `jti` a non-empty string and `exp` a NumericDate read
 * as a token's exp is (a number within ±2^53 compared exactly on its text, a
 * fraction read as its whole second), neither 0 nor null; `more` and `reset`
 * absent, null or booleans; `revoked_keys` absent, null or an array of
 * strings (a null element refuses the page, as Go's reader does). Names are
 * matched exactly, unknown members ignored, a member given twice counts by
 * its last value. A page that breaks the grammar is refused whole: a
 * ProtocolError, and nothing of it applies.
 */
export function readFeedPage(text: string): FeedPage {
  const refuse = (why: string): never => {
    throw new ProtocolError(`revocation feed: the answer is not a feed page: ${why}`);
  };
  let root: JVal;
  try {
    root = parseJSON(text);
  } catch (e) {
    return refuse(e instanceof JSONError ? `not JSON (${e.message})` : 'not JSON');
  }
  if (!(root instanceof JObj)) return refuse('not a JSON object');
  const m = members(root);
  const cursor = m.get('cursor');
  if (typeof cursor !== 'string' || cursor === '') return refuse('no cursor (a non-empty string)');
  const flag = (name: string): boolean => {
    const v = m.get(name);
    if (v === undefined || v === null) return false;
    if (typeof v !== 'boolean') return refuse(`${name} is not a boolean`);
    return v;
  };
  const page: FeedPage = { revocations: [], cursor, reset: flag('reset'), more: flag('more'), revoked_keys: [] };
  const keys = m.get('revoked_keys');
  if (keys !== undefined && keys !== null) {
    if (!Array.isArray(keys) || keys.some((k) => typeof k !== 'string')) return refuse('revoked_keys is not an array of strings');
    page.revoked_keys = keys as string[];
  }
  const revs = m.get('revocations');
  if (revs === undefined || revs === null) return page;
  if (!Array.isArray(revs)) return refuse('revocations is not an array of objects');
  for (let i = 0; i < revs.length; i++) {
    const r = revs[i];
    if (!(r instanceof JObj)) {
      if (r === null) return refuse(`revocations[${i}]: no jti (a non-empty string)`); // Go: a null entry is an empty one
      return refuse('revocations is not an array of objects');
    }
    const e = members(r);
    const jti = e.get('jti');
    if (typeof jti !== 'string' || jti === '') return refuse(`revocations[${i}]: no jti (a non-empty string)`);
    const raw = e.get('exp');
    let exp = 0;
    if (raw !== undefined) {
      try {
        exp = goNumericDate(raw, 0);
      } catch {
        exp = 0;
      }
    }
    if (exp === 0) return refuse(`revocations[${i}]: exp is not a NumericDate (a number within ±2^53, not zero)`);
    page.revocations.push({ jti, exp });
  }
  return page;
}

/** Follows Mandate's revocation feed; see the module documentation. */
export class Feed implements RevocationSource {
  private readonly o: FeedOptions;
  private readonly auth: string;
  private readonly revoked = new Map<string, number>(); // jti → exp (seconds)
  private cursor = '';
  private lastPrune = -Infinity;
  private lastSync: number | null = null;
  private readonly stop = new AbortController();
  private loop: Promise<void> | null = null;
  private readonly syncListeners = new Set<() => void>();

  constructor(o: FeedOptions, authorization: string) {
    this.o = o;
    this.auth = authorization;
  }

  firstRevoked(jtis: readonly string[]): string | undefined {
    for (const j of jtis) if (this.revoked.has(j)) return j;
    return undefined;
  }

  current(nowMs: number): void {
    if (this.lastSync === null) throw new StaleRevocationsError('the revocation feed has never been synced');
    const age = nowMs - this.lastSync;
    if (age > this.o.maxStalenessMs) {
      throw new StaleRevocationsError(`last synced ${Math.round(age / 1000)}s ago (bound ${Math.round(this.o.maxStalenessMs / 1000)}s)`);
    }
  }

  /** When the feed last caught up (ms), or null if never. */
  lastSyncedAt(): number | null {
    return this.lastSync;
  }

  /** How many revoked jtis the feed currently holds. */
  get size(): number {
    return this.revoked.size;
  }

  /** Whether jti is currently known revoked. */
  has(jti: string): boolean {
    return this.revoked.has(jti);
  }

  /**
   * Resolves once the feed has caught up after now (the next sync that
   * completes): for tests and tools that must see a revocation applied,
   * without sleeping.
   */
  nextSync(): Promise<void> {
    return new Promise((resolve) => {
      const f = (): void => {
        this.syncListeners.delete(f);
        resolve();
      };
      this.syncListeners.add(f);
    });
  }

  /**
   * Resolves true as soon as pred() holds (checked now and after every sync),
   * or false after timeoutMs: waiting on the feed's events, not sleeping.
   */
  waitUntil(pred: () => boolean, timeoutMs: number): Promise<boolean> {
    if (pred()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const f = (): void => {
        if (!pred()) return;
        finish(true);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      const finish = (v: boolean): void => {
        clearTimeout(timer);
        this.syncListeners.delete(f);
        resolve(v);
      };
      this.syncListeners.add(f);
    });
  }

  /** Syncs once, then follows in the background until close(); throws FeedCredentialsError at once. */
  async start(): Promise<void> {
    let err: Error | null = null;
    try {
      await this.sync();
    } catch (e) {
      err = e instanceof Error ? e : new Error(String(e));
    }
    this.o.onSync?.(err);
    if (err instanceof FeedCredentialsError) throw err;
    this.loop = this.follow();
  }

  /** Stops following the feed and waits for the follower to exit. */
  async close(): Promise<void> {
    this.stop.abort();
    if (this.loop) await this.loop;
  }

  /** Polls without waiting, page after page, until caught up. */
  async sync(): Promise<void> {
    for (;;) {
      const { more } = await this.poll(0);
      if (!more) return;
    }
  }

  private async follow(): Promise<void> {
    const retryMin = 50;
    const minInterval = 100;
    let backoff = retryMin;
    let err: Error | null = null;
    let more = false;
    let entries = 0;
    while (!this.stop.signal.aborted) {
      const wait = err !== null || more || this.lastSync === null ? 0 : this.o.waitMs;
      const started = Date.now();
      try {
        ({ more, entries } = await this.poll(wait));
        err = null;
      } catch (e) {
        err = e instanceof Error ? e : new Error(String(e));
        more = false;
        entries = 0;
      }
      if (this.stop.signal.aborted) return;
      if (this.o.afterPoll) await this.o.afterPoll();
      if (!more) this.o.onSync?.(err);
      let pause = 0;
      if (err !== null) {
        pause = backoff;
        backoff = Math.min(2 * backoff, this.o.retryMaxMs);
      } else if (wait > 0 && entries === 0 && Date.now() - started < minInterval) {
        pause = minInterval - (Date.now() - started);
        backoff = retryMin;
      } else backoff = retryMin;
      if (pause > 0) await this.sleep(pause);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      const signal = this.stop.signal;
      function done(): void {
        clearTimeout(t);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done, { once: true });
    });
  }

  private async poll(waitMs: number): Promise<{ more: boolean; entries: number }> {
    const cursor = this.cursor;
    const q = new URLSearchParams();
    if (cursor !== '') q.set('since', cursor);
    if (waitMs > 0) q.set('wait', String(Math.floor(waitMs / 1000)));
    let r: { status: number; body: string };
    try {
      r = await getText(`${this.o.url}?${q.toString()}`, {
        fetch: this.o.fetch,
        authorization: this.auth,
        limit: MAX_FEED_ANSWER,
        timeoutMs: waitMs + 10000,
        signal: this.stop.signal,
      });
    } catch (e) {
      if (e instanceof MandateError) throw new ProtocolError(`revocation feed: ${e.error_description}`, undefined, { cause: e });
      throw e;
    }
    if (r.status === 401 || r.status === 403) {
      throw new FeedCredentialsError(`HTTP ${r.status}: ${excerpt(r.body)}`);
    }
    if (r.status !== 200) throw new ProtocolError(`revocation feed: HTTP ${r.status}: ${excerpt(r.body)}`, r.status);
    const a = readFeedPage(r.body); // a page that breaks the grammar is refused whole: nothing below happens
    if (a.revoked_keys.length > 0) this.o.onRevokedKeys?.(a.revoked_keys);
    this.apply(cursor, a, this.o.nowMs());
    return { more: a.more, entries: a.revocations.length };
  }

  private apply(cursor: string, a: FeedPage, nowMs: number): void {
    if (this.cursor !== cursor) return; // another poll applied first: this answer may be older
    for (const r of a.revocations) this.revoked.set(r.jti, r.exp);
    if (nowMs - this.lastPrune > 30000) {
      const nowS = Math.floor(nowMs / 1000);
      for (const [jti, exp] of this.revoked) if (exp + this.o.leewaySeconds < nowS) this.revoked.delete(jti);
      this.lastPrune = nowMs;
    }
    this.cursor = a.cursor;
    if (!a.more) {
      this.lastSync = nowMs;
      for (const f of [...this.syncListeners]) f();
    }
  }
}
