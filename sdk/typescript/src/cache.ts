/**
 * The bounded cache of verified tokens (Go's tokens.VerifiedCache): keyed by
 * the token itself (only tokens that verified are stored, so keys are genuine
 * tokens of bounded size), bounded in entries and in bytes, and an entry is
 * never returned after the expiry it was stored with. When full it drops
 * expired entries, then the oldest, until an eighth of the room is free.
 */

/** An entry costs twice its token's length plus this. */
const ENTRY_OVERHEAD = 512;
/** The default memory bound: 32 MiB. */
export const DEFAULT_CACHE_BYTES = 32 << 20;

interface Entry<V> {
  v: V;
  exp: number;
  cost: number;
}

export class VerifiedCache<V> {
  private readonly max: number;
  private readonly maxBytes: number;
  private bytes = 0;
  private readonly m = new Map<string, Entry<V>>();

  /** At most max entries (0 or less: remembers nothing) and about maxBytes of memory. */
  constructor(max: number, maxBytes = 0) {
    this.max = max > 0 ? max : 0;
    this.maxBytes = maxBytes > 0 ? maxBytes : DEFAULT_CACHE_BYTES;
  }

  /** What was stored for token, unless it has expired at now (seconds). */
  get(token: string, now: number): V | undefined {
    if (this.max === 0) return undefined;
    const e = this.m.get(token);
    if (e === undefined || !(now < e.exp)) return undefined;
    return e.v;
  }

  /** Stores v for token until exp (seconds). */
  put(token: string, v: V, exp: number, now: number): void {
    if (this.max === 0 || !(now < exp)) return;
    const cost = 2 * token.length + ENTRY_OVERHEAD;
    if (cost > this.maxBytes / 8) return;
    const old = this.m.get(token);
    if (old !== undefined) {
      this.bytes -= old.cost;
      this.m.delete(token);
    }
    if (this.m.size >= this.max || this.bytes + cost > this.maxBytes) {
      for (const [k, e] of this.m) {
        if (!(now < e.exp)) this.drop(k, e);
      }
      for (const [k, e] of this.m) {
        if (this.m.size < this.max - Math.floor(this.max / 8) && this.bytes + cost <= this.maxBytes - this.maxBytes / 8) break;
        this.drop(k, e);
      }
    }
    this.m.set(token, { v, exp, cost });
    this.bytes += cost;
  }

  private drop(k: string, e: Entry<V>): void {
    this.m.delete(k);
    this.bytes -= e.cost;
  }

  get size(): number {
    return this.m.size;
  }

  get byteSize(): number {
    return this.bytes;
  }

  clear(): void {
    this.m.clear();
    this.bytes = 0;
  }
}
